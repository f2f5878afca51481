"""``benchmarks/lucky_incumbents.py``: the best observed value's luck over the incumbent's truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks.lucky_incumbents import luck_rows, main


def _run(sampler: str, seed: int, best: float, true: float, direction: str) -> dict:
    return {"problem": "p", "sampler": sampler, "seed": seed, "n_trials": 2,
            "direction": direction, "optimum": 0.0, "best": [best - 1, best],
            "incumbent_true": [true - 1, true], "regret": [1.0, 1.0], "distinct": [1, 1 + seed],
            "true": [true + 1, true], "feasible": [True, True]}


def test_luck_is_the_best_observed_above_the_incumbents_truth_in_the_studys_direction() -> None:
    runs = [_run("tpe", s, 3.0 + s, 2.0, "maximize") for s in (0, 1)]
    (row,) = luck_rows(runs, ["tpe"], [2])
    # distinct: seeds 1 and 2; the first trial measured a better configuration (true 3.0)
    # than the incumbent (true 2.0), but its observed value was lower.
    assert row == ["p", "tpe", 2, 2, "2", "3.5", "2", "1.5", "3"]
    minimize = [_run("tpe", s, 1.0, 2.0, "minimize") for s in (0, 1)]
    # 1.0 observed, 2.0 true: lucky; the best measured is the incumbent itself.
    assert luck_rows(minimize, ["tpe"], [2])[0][-2:] == ["1", "2"]
    infeasible = [{**r, "feasible": [False, True]} for r in runs]
    assert luck_rows(infeasible, ["tpe"], [2])[0][-1] == "2"  # an infeasible find is none
    assert luck_rows(runs, ["tpe"], [3]) == []  # no run that long


def test_the_command_lists_variants_beside_the_baseline(tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    for name, sampler in (("v", "nars"), ("base", "tpe")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "p.jsonl").write_text(
            json.dumps(_run(sampler, 0, 3.0, 2.0, "maximize")) + "\n")
    argv = ["lucky_incumbents.py", str(tmp_path / "v"), "--baseline", str(tmp_path / "base"),
            "--samplers", "tpe", "--trials", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    out = capsys.readouterr().out
    assert "| p | v | 2 | 1 | 1 | 3 | 2 | 1 | 3 |" in out and "| p | tpe | 2 |" in out
    monkeypatch.setattr(sys, "argv", [*argv[:3], str(tmp_path / "missing")])
    with pytest.raises(SystemExit):
        main()
    assert "not a results directory" in capsys.readouterr().err
