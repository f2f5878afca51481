"""``benchmarks/interval_replay.py``: prediction intervals replayed on recorded runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from benchmarks.interval_replay import coverage, main, multiple, ratios


def test_the_conformal_rule_gives_no_interval_before_its_quantile_exists() -> None:
    previous = np.arange(1.0, 19.0)  # 18 ratios: ceil(19 * 0.95) = 19 > 18
    assert multiple(previous, 0.95, "conformal") is None
    assert multiple(np.append(previous, 19.0), 0.95, "conformal") == 19.0
    assert multiple(previous, 0.95, "plain") == np.quantile(previous, 0.95)


def test_replayed_intervals_cover_exchangeable_errors_as_claimed() -> None:
    rng = np.random.default_rng(0)
    runs = [np.abs(rng.standard_t(2, size=200)) for _ in range(20)]  # heavy tails
    for level in (0.6827, 0.95):
        assert abs(coverage(runs, 40, level, "conformal") - level) < 0.02
    assert coverage(runs, 20, 0.95, "plain") < coverage(runs, 20, 0.95, "conformal")


def test_replay_reads_a_grid_and_writes_its_table(tmp_path: Path, monkeypatch, capsys) -> None:
    run = {"problem": "p", "sampler": "nars", "seed": 0, "value": [1.0, 2.0, 3.0, None],
           "true": [1.0, 2.0, 3.0, 4.0],
           "nars": {"predicted": [None, 2.5, 2.0, 1.0], "predicted_std": [None, 1.0, 0.5, 1.0]}}
    assert list(ratios(run)) == [0.5, 2.0]  # a proposal without a value is left out
    grid = tmp_path / "grid"
    grid.mkdir()
    rows = [{**run, "seed": s, "value": list(range(30)), "true": list(range(30)),
             "nars": {"predicted": [v + 0.5 for v in range(30)], "predicted_std": [1.0] * 30}}
            for s in range(2)]
    (grid / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    monkeypatch.setattr("benchmarks.interval_replay.RESULTS_DIR", tmp_path)
    assert main(["--runs", str(grid), "--windows", "20"]) == 0
    assert "| 20 | conformal | 1.000 | 1.000 |" in capsys.readouterr().out  # all ratios 0.5
    out = json.loads((tmp_path / "interval_replay.json").read_text())
    assert out["n_proposals"] == 60 and not math.isnan(out["results"][0]["coverage"]["0.95"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--runs", str(empty)]) == 2
