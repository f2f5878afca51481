"""``python -m benchmarks compare``: identical runs pass, any per-trial difference is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main as bench_main
from benchmarks.suite.compare import compare_grids


def _write(directory: Path, runs: list[dict]) -> Path:
    directory.mkdir()
    (directory / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    return directory


def _run(seed: int, values: list[float], wall: float = 1.0) -> dict:
    return {"problem": "p", "sampler": "nars", "seed": seed, "value": values,
            "wall_s": wall, "sampler_s": [wall] * len(values), "commit": "abc", "date": "d"}


def test_timings_may_differ_values_may_not(tmp_path: Path) -> None:
    before = _write(tmp_path / "a", [_run(0, [1.0, 2.0]), _run(1, [3.0])])
    same = _write(tmp_path / "b", [_run(1, [3.0], wall=9.0), _run(0, [1.0, 2.0], wall=5.0)])
    assert compare_grids(before, same) == (2, [])
    changed = _write(tmp_path / "c", [_run(0, [1.0, 2.5]), _run(1, [3.0])])
    n, differences = compare_grids(before, changed)
    assert n == 2 and differences == ["('p', 'nars', 0): value differs"]
    missing = _write(tmp_path / "d", [_run(0, [1.0, 2.0])])
    assert compare_grids(before, missing)[1] == [f"('p', 'nars', 1): recorded only in {before}"]
    assert bench_main(["compare", str(before), str(same)]) == 0
    assert bench_main(["compare", str(before), str(changed)]) == 1
    assert bench_main(["compare", str(tmp_path / "nothing"), str(same)]) == 2


def _tabular(seed: int, regret: list[float], best: list[float], sampler_s: float) -> dict:
    n = len(regret)
    return {"problem": "p", "sampler": "nars", "seed": seed, "n_trials": n,
            "direction": "maximize", "regret": regret, "best": best,
            "sampler_s": [sampler_s / n] * n}


def test_budgets_tabulate_mean_regret_over_shared_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.suite.compare import compare_at_budgets

    before = _write(tmp_path / "a", [_tabular(0, [3.0, 2.0, 1.0], [0.0] * 3, 6.0),
                                     _tabular(1, [5.0, 4.0, 3.0], [0.0] * 3, 2.0),
                                     _tabular(2, [9.0, 9.0, 9.0], [0.0] * 3, 1.0)])
    after = _write(tmp_path / "b", [_tabular(0, [3.0, 1.0, 0.0], [0.0] * 3, 3.0),
                                    _tabular(1, [5.0, 2.0, 1.0], [0.0] * 3, 1.0)])
    text = compare_at_budgets(before, after, [1, 2, 3, 4])
    # Seed 2 is only in one grid: left out. Budget 4 is past every run: "-".
    assert "| p | nars | 2 | 4 / 4 | 3 / 1.5 | 2 / 0.5 | - | - / - | 4.0 / 2.0 |" in text
    # Without an optimum, the negated best-so-far of a maximised problem.
    no_optimum = _write(tmp_path / "c", [{**_tabular(0, [None] * 2, [0.5, 0.75], 1.0)}])
    assert "| -0.5 / -0.5 | -0.75 / -0.75 |" in compare_at_budgets(no_optimum, no_optimum, [1, 2])
    assert bench_main(["compare", str(before), str(after), "--budgets", "2"]) == 0
    assert "3 / 1.5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no run of the same problem"):
        compare_at_budgets(before, _write(tmp_path / "d", [{**_tabular(0, [1.0], [0.0], 1.0),
                                                            "problem": "q"}]), [1])


def test_budgets_report_when_the_optimum_was_first_evaluated(tmp_path: Path) -> None:
    """The median trial at which a feasible run of the optimum's configuration was first
    measured: the incumbent may be another one, observed luckier."""
    from benchmarks.suite.compare import compare_at_budgets

    def run(seed: int, true: list[float], feasible: list[bool]) -> dict:
        return {**_tabular(seed, [1.0] * len(true), [0.0] * len(true), 1.0), "optimum": 5.0,
                "true": true, "feasible": feasible}

    before = _write(tmp_path / "a", [run(0, [1, 5.000001, 5, 2], [True] * 4),
                                     run(1, [1, 2, 3, 5], [True] * 4),
                                     run(2, [5, 1, 1, 1], [False, True, True, True])])
    after = _write(tmp_path / "b", [run(0, [5, 1, 1, 1], [True] * 4),
                                    run(1, [1, 1, 1, 1], [True] * 4),
                                    run(2, [1, 1, 1, 1], [True] * 4)])
    # Before: trials 3 (5.000001 is another configuration), 4 and never (seed 2's optimum
    # was infeasible there): median 4.
    # After: trial 1 and twice never: the median is past the run.
    assert "| 4 / > 4 |" in compare_at_budgets(before, after, [4])
    # Recorded values are rounded to 6 significant digits: the optimum is found all the same.
    rounded = _write(tmp_path / "c", [{**run(0, [1, 91.94], [True] * 2),
                                       "optimum": 91.93999735514323}])
    assert "| 2 / 2 |" in compare_at_budgets(rounded, rounded, [2])
