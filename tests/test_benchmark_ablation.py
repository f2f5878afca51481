"""``python -m benchmarks ablation``: NARS variants ranked against a recorded baseline grid."""

from __future__ import annotations

from pathlib import Path

from benchmarks.__main__ import main as bench_main
from benchmarks.suite.ablation import (
    REFERENCE,
    calibration,
    rank_table,
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
