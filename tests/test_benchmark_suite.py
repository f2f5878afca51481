"""The sampler benchmark suite (``python -m benchmarks``): problems, runner, report, check."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
from optuna.samplers import RandomSampler, TPESampler

from benchmarks.__main__ import main as bench_main
from benchmarks.suite.check import random_best_of_n
from benchmarks.suite.problems import (
    PROBLEMS,
    TABULAR,
    TabularProblem,
    get_problem,
    problem_names,
)
from benchmarks.suite.report import ProblemRuns, ranks_at, summarize
from benchmarks.suite.runner import make_sampler, run_study
from optuna_nars.samplers import NARSSampler


def _toy(direction: str = "maximize") -> TabularProblem:
    # Two configurations with two runs each: one evaluation is uniform on {0, 1, 2, 3}.
    return TabularProblem(
        name="toy", direction=direction, grid={"x": ["a", "b"]}, ordinal=(),
        index={(0,): 0, (1,): 1}, runs=np.array([[0.0, 1.0], [2.0, 3.0]]),
    )


def test_expected_best_of_matches_hand_computation() -> None:
    toy = _toy()
    assert toy.expected_best_of(1) == pytest.approx(1.5)
    # E[max of 2] = sum_v v (F(v)^2 - F(v-)^2) = (1*3 + 2*5 + 3*7) / 16.
    assert toy.expected_best_of(2) == pytest.approx(34 / 16)
    # E[min of 2] = 3 - E[max of 2] by symmetry of {0, 1, 2, 3}.
    assert _toy("minimize").expected_best_of(2) == pytest.approx(3 - 34 / 16)
    assert toy.optimum == 2.5 and toy.worst == 0.0


def test_tables_load_with_their_documented_shapes() -> None:
    sizes = {"hpolib-protein-structure": (62208, 4), "hpobench-kc1": (30000, 5),
             "nasbench201-cifar10": (15625, 3), "macro": (6561, 3)}
    for name, shape in sizes.items():
        problem = get_problem(name)
        assert isinstance(problem, TabularProblem)
        assert problem.runs.shape == shape
        # Every grid point is a table row.
        assert len(problem.index) == math.prod(len(v) for v in problem.grid.values())
    macro = get_problem("macro")
    assert macro.optimum == pytest.approx(93.1267, abs=1e-3)  # SOURCE.md: best mean 93.13
    assert macro.true_value({f"layer{i}": "mbv2_k5_e6" if c == "2" else "mbv2_k3_e3"
                             if c == "1" else "identity"
                             for i, c in enumerate("22212220")}) == pytest.approx(93.1267, 1e-4)
    q25 = get_problem("macro-flops-q25")
    assert q25.optimum < macro.optimum
    assert np.mean(q25.feasible_rows()) == pytest.approx(0.25, abs=0.02)


def test_problem_names_expand_and_reject_unknown() -> None:
    assert problem_names(["tabular"]) == list(TABULAR)
    assert problem_names(["all"]) == list(PROBLEMS)
    with pytest.raises(ValueError, match="Unknown problem 'nope'"):
        problem_names(["nope"])


def test_harness_reproduces_random_search_law() -> None:
    """RandomSampler through run_study matches E[best of N] = sum v dF(v)^N within 4 se, and
    the check has the power to reject a wrong N."""
    problem = get_problem("hpobench-kc1")
    assert isinstance(problem, TabularProblem)
    rows = random_best_of_n(problem, (10, 40), seeds=60)
    for r in rows:
        assert abs(r["z"]) < 4, r
    wrong = problem.expected_best_of(4)
    assert abs(rows[1]["mean"] - wrong) / rows[1]["se"] > 4


def test_budgeted_problem_nars_stays_feasible_and_baselines_pay() -> None:
    problem = get_problem("macro-flops-q25")
    nars = run_study(problem, make_sampler("nars", problem, 0), 14, seed=0)
    tpe = run_study(problem, TPESampler(seed=0), 14, seed=0)
    assert all(nars["feasible"])  # NARS is told the budget and never proposes beyond it
    assert not all(tpe["feasible"])  # the baseline learns it only after evaluation
    for rec in (nars, tpe):
        assert len(rec["value"]) == 14
        best = np.array(rec["best"])
        assert np.all(np.diff(best) >= 0)  # best-so-far never worsens (maximise)
        # Only feasible values count towards best-so-far.
        feasible_values = [v for v, f in zip(rec["value"], rec["feasible"], strict=True) if f]
        assert best[-1] == pytest.approx(max(feasible_values, default=problem.worst), 1e-5)
        assert all(r >= 0 for r in rec["regret"])
        assert all(s >= 0 for s in rec["sampler_s"])
    assert nars["nars"]["stage"][:10] == ["qmc"] * 10
    assert nars["nars"]["stage"][10] == "predictor"
    assert nars["nars"]["predicted"][10] is not None


def test_baselines_record_constraints_the_optuna_way() -> None:
    problem = get_problem("macro-flops-q25")
    study = optuna.create_study(direction="maximize", sampler=RandomSampler(seed=1))
    rec = run_study(problem, study.sampler, 8, seed=1, study=study)
    for trial, feasible in zip(study.trials, rec["feasible"], strict=True):
        assert set(trial.constraints) == {"flops"}
        assert (trial.constraints["flops"] <= 0) == feasible
        assert trial.constraints["flops"] == pytest.approx(
            problem.proxy_metrics(trial.params)["flops"] - problem.budgets["flops"])


def test_nars_gets_only_free_proxies() -> None:
    for name in ("hpolib-protein-structure", "nasbench201-cifar10", "macro-flops-q25"):
        problem = get_problem(name)
        kwargs = problem.nars_kwargs()
        params = {k: d.to_external_repr(0) for k, d in problem.distributions.items()}
        proxies = kwargs["proxy_metrics"](params)
        assert set(proxies) == set(problem.proxy_names)
        assert all(k in ("params", "flops") for k in proxies)
    assert "proxy_metrics" not in get_problem("hpobench-credit-g").nars_kwargs()
    sampler = make_sampler("nars", get_problem("macro-flops-q25"), 0)
    assert isinstance(sampler, NARSSampler)


def test_sampler_variants_parse_and_reject_typos() -> None:
    problem = get_problem("macro")
    sampler = make_sampler("nars[trust_region=0,exploration=1.5]", problem, 3)
    assert isinstance(sampler, NARSSampler)
    assert (sampler._trust_region, sampler._exploration, sampler._seed) == (0.0, 1.5, 3)
    assert sampler._proxy_metrics is not None  # the problem's proxies are kept
    with pytest.raises(ValueError, match="Unknown sampler 'nasr'"):
        make_sampler("nasr", problem, 0)
    with pytest.raises(ValueError, match="expected key=value"):
        make_sampler("nars[trust_region]", problem, 0)
    with pytest.raises(TypeError):
        make_sampler("nars[no_such_option=1]", problem, 0)


def test_ranks_and_summary_on_a_small_grid() -> None:
    problem = get_problem("macro")
    runs = []
    for sampler in ("random", "tpe", "qmc"):
        for seed in range(3):
            rec = run_study(problem, make_sampler(sampler, problem, seed), 30, seed)
            runs.append({"problem": "macro", "sampler": sampler, "seed": seed, "n_trials": 30,
                         "direction": "maximize", "optimum": problem.optimum, "wall_s": 0.1,
                         **rec})
    pr = ProblemRuns("macro", runs)
    ranks = ranks_at(pr, 25)
    assert sum(ranks.values()) == pytest.approx(6.0)  # 1 + 2 + 3, ties averaged
    summary = summarize(runs, checkpoints=(10, 25))
    macro = summary["problems"]["macro"]
    assert macro["checkpoints"] == [10, 25]
    assert macro["tpe_trials"] == 30
    tpe = macro["samplers"]["tpe"]
    assert tpe["to_reach_tpe"] is not None and tpe["to_reach_tpe"] <= 30
    mean, se = tpe["best"][25]
    assert mean == pytest.approx(np.mean([r["best"][24] for r in runs if r["sampler"] == "tpe"]))


def test_cli_runs_resumes_and_reports(tmp_path, capsys) -> None:
    args = ["run", "--problems", "nasbench201-cifar10", "--samplers", "random", "tpe",
            "--seeds", "2", "--n-trials", "25", "--jobs", "1", "--out", str(tmp_path)]
    assert bench_main(args) == 0
    lines = (tmp_path / "nasbench201-cifar10.jsonl").read_text().splitlines()
    assert len(lines) == 4
    run = json.loads(lines[0])
    assert len(run["value"]) == 25 and {"best", "regret", "sampler_s", "eval_s"} <= set(run)
    assert bench_main(args) == 0  # resumes: nothing left to run
    assert len((tmp_path / "nasbench201-cifar10.jsonl").read_text().splitlines()) == 4
    assert "0 run(s) recorded" in capsys.readouterr().out
    report = (tmp_path / "RESULTS.md").read_text()
    assert "### nasbench201-cifar10" in report and "best @ 25" in report
    assert "Harness check" in report
    assert (tmp_path / "plots" / "nasbench201-cifar10.png").stat().st_size > 1000


def test_cli_rejects_bad_arguments(tmp_path) -> None:
    assert bench_main(["run", "--problems", "nope", "--out", str(tmp_path)]) == 2
    assert bench_main(["run", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert bench_main(["report", "--out", str(tmp_path / "empty")]) == 1
