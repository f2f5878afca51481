"""``python -m benchmarks ablation``: NARS variants ranked against a recorded baseline grid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main as bench_main
from benchmarks.suite.ablation import (
    REFERENCE,
    calibration,
    pooled_runs,
    rank_table,
    regret_gap,
    trials_to_tpe,
    variant_runs,
)
from benchmarks.suite.runner import load_runs


def _grid(out: Path, *samplers: str) -> None:
    out.mkdir()
    (out / "harness_check.json").write_text("[]")  # no harness check: not what is tested here
    assert bench_main(["run", "--problems", "nasbench201-cifar10", "--samplers", *samplers,
                       "--seeds", "2", "--n-trials", "25", "--jobs", "1", "--out", str(out),
                       "--no-report"]) == 0


def test_ablation_ranks_variants_against_the_baseline_and_reports_calibration(
    tmp_path: Path, capsys
) -> None:
    _grid(tmp_path / "base", "random", "qmc")
    _grid(tmp_path / "v", 'nars[acquisition="ei",trust_region=0,predictor={"bootstrap":true}]')
    variants = variant_runs([tmp_path / "v"])
    (label,) = variants
    assert label.startswith("v: nars[")
    table = rank_table(load_runs(tmp_path / "base"), variants)[label]
    assert table["seeds"] == [0, 1]
    rank = table["overall"][25][label]
    assert 1.0 <= rank <= 3.0  # among random and QMC: out of 3
    cal = calibration(variants[label])
    # Every proposal after the warm start carries a prediction: 5 QMC trials, since the
    # table's model size pretrains the encoder.
    assert cal["n"] == 2 * 20
    assert 0.0 <= cal["coverage"][1.0] <= cal["coverage"][2.0] <= 1.0
    assert cal["n_95"] == 0 and cal["within_95"] is None  # 25 trials: too few for one
    md = tmp_path / "ablation.md"
    assert bench_main(["ablation", str(tmp_path / "v"), "--baseline", str(tmp_path / "base"),
                       "--markdown", str(md)]) == 0
    assert f"| {label} | 0-1 | {rank:.2f} |" in capsys.readouterr().out
    assert "Prediction-interval calibration" in md.read_text()
    assert "Trials to reach TPE" not in md.read_text()  # the baseline has no TPE runs
    assert bench_main(["ablation", str(tmp_path / "base")]) == 2  # no NARS runs there


def test_calibration_counts_the_recorded_95_percent_intervals() -> None:
    run = {"value": [1.0, 2.0, 3.0, 4.0, None],
           "nars": {"predicted": [None, 2.5, 3.0, 1.0, 4.0],
                    "predicted_std": [None, 1.0, 0.1, 1.0, 1.0],
                    "interval_95": [None, None, [2.0, 4.0], [0.0, 3.5], [3.0, 5.0]]}}
    older = {"value": [1.0], "nars": {"predicted": [1.5], "predicted_std": [1.0]}}
    cal = calibration([run, older])
    assert cal["n"] == 4  # trials with a prediction and a finite value
    assert cal["coverage"][1.0] == 3 / 4  # |4 - 1| > 1 std
    assert cal["n_95"] == 2 and cal["within_95"] == 1 / 2  # 4.0 lies above [0.0, 3.5]


def _run(problem: str, sampler: str, seed: int, best: list[float], regret: list[float]) -> dict:
    return {"problem": problem, "sampler": sampler, "seed": seed, "n_trials": len(best),
            "direction": "maximize", "optimum": 5.0, "best": best, "regret": regret}


def test_trials_to_tpe_times_each_variant_against_tpe_on_its_seeds() -> None:
    tpe = [_run("p", "tpe", s, [1, 2, 3, 4], [3, 2, 1, 0.5]) for s in (0, 1)]
    committed = [_run("p", "nars", s, [1, 1, 1, 1], [3, 3, 3, 3]) for s in (0, 1)]
    # Seed 1 reaches TPE's best only at trial 3; its regret rises again after trial 2 (a lucky
    # evaluation replaced the incumbent), so the mean regret stays under TPE's from trial 4.
    variant = [_run("p", "nars[x]", 0, [1, 4, 4, 4], [3, 0.5, 0.5, 0.5]),
               _run("p", "nars[x]", 1, [1, 2, 4, 4], [3, 0.5, 1.0, 0.5]),
               _run("q", "nars[x]", 0, [1, 1, 1, 1], [1, 1, 1, 1])]  # no TPE runs of q
    trials = trials_to_tpe([*tpe, *committed], {"v": variant}, budget=4)
    assert trials == {"v": {"v": {"p": (3, 4)}, REFERENCE: {"p": (None, None)}}}
    # On seeds where TPE ran fewer trials than the budget, nothing to time against.
    assert trials_to_tpe([*tpe, *committed], {"v": variant}, budget=5) == {
        "v": {"v": {}, REFERENCE: {}}}


def _write(directory: Path, *runs: dict) -> Path:
    directory.mkdir(parents=True)
    (directory / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    return directory


def test_baselines_of_different_seeds_pool_and_the_same_run_twice_is_refused(
    tmp_path: Path, capsys
) -> None:
    def runs(sampler: str, seeds: range) -> list[dict]:
        # 200 trials, as TPE's result is its 200th; NARS's first 150 values equal TPE's last.
        best = [1.0] * 50 + [4.0] * 150 if sampler == "nars" else [1.0] * 199 + [4.0]
        regret = [5.0 - b for b in best]
        return [{**_run("p", sampler, s, best, regret), "value": best} for s in seeds]

    first = _write(tmp_path / "a", *runs("tpe", range(2)))
    second = _write(tmp_path / "b", *runs("tpe", range(2, 4)))
    assert sorted(r["seed"] for r in pooled_runs([first, second])) == [0, 1, 2, 3]
    # Variant directories of one name are one variant: its seeds 0-3 meet TPE's seeds 0-3.
    v0 = _write(tmp_path / "0-1" / "v", *runs("nars", range(2)))
    v1 = _write(tmp_path / "2-3" / "v", *runs("nars", range(2, 4)))
    assert bench_main(["ablation", str(v0), str(v1), "--baseline", str(first),
                       str(second)]) == 0
    out = capsys.readouterr().out
    assert "| v | 0-3 |" in out
    assert "| v | 51 / 51 |" in out  # TPE's 200-trial result, over all 4 seeds
    overlap = _write(tmp_path / "c", *runs("tpe", range(1, 3)))
    with pytest.raises(ValueError, match="tpe on p, seed 1, is recorded in both"):
        pooled_runs([first, overlap])
    assert bench_main(["ablation", str(v0), "--baseline", str(first), str(overlap)]) == 2
    assert "pool baseline grids of different seeds only" in capsys.readouterr().err


def test_regret_gap_measures_the_variant_at_the_issues_budget_against_tpe_at_200() -> None:
    def run(problem: str, sampler: str, seed: int, regret: list[float]) -> dict:
        return _run(problem, sampler, seed, [5.0 - r for r in regret], regret)

    tpe = [run(p, "tpe", s, [2.0] * 199 + [1.0 + s]) for p in ("p", "macro") for s in (0, 1)]
    # The variant's regret is 0.5 from trial 100 on "macro" (a NAS table: timed at 100) and
    # from trial 141 on "p" (another table: timed at 140, where it is still 3).
    variant = [run("macro", "nars[x]", s, [3.0] * 99 + [0.5] * 101) for s in (0, 1)]
    variant += [run("p", "nars[x]", s, [3.0] * 140 + [0.5] * 60) for s in (0, 1)]
    gaps = regret_gap(tpe, {"v": variant})["v"]
    assert gaps[REFERENCE] == {}  # no committed NARS runs in this baseline
    macro, other = gaps["v"]["macro"], gaps["v"]["p"]
    assert (macro["trials"], other["trials"]) == (100, 140)
    assert macro["gap"] == -1.0 and other["gap"] == 1.5  # TPE's mean regret at 200: 1.5
    assert macro["se"] == other["se"] == 0.5  # TPE's seeds differ by 1: sqrt(0.5 / 2)
    assert macro["level"] == 1.0 and other["level"] == 0.0
