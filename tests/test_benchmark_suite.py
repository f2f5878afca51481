"""The sampler benchmark suite (``python -m benchmarks``): problems, runner, report, check."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import optuna
import pytest
import torch
from optuna.samplers import RandomSampler, TPESampler
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.__main__ import main as bench_main
from benchmarks.suite.check import random_best_of_n
from benchmarks.suite.layerwise import NEAR, first_optimum, random_law, stage_summary
from benchmarks.suite.problems import (
    PROBLEMS,
    TABULAR,
    TabularProblem,
    get_problem,
    problem_names,
)
from benchmarks.suite.report import ProblemRuns, ranks_at, summarize
from benchmarks.suite.runner import make_sampler, run_study, space_facts
from benchmarks.suite.width5x8 import WIDTH5X8_PATH, TableError, load_width_table
from benchmarks.width_table import WIDTHS, build_mlp, digits_split, train_chunk
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


def test_architecture_only_fashion_mnist_trains_the_default_recipe() -> None:
    from optuna_nars import Recipe

    joint, arch = get_problem("fashion-mnist"), get_problem("fashion-mnist-arch")
    assert arch.budgets == joint.budgets  # the same FLOPs budget
    assert set(arch.distributions) == {n for n in joint.distributions
                                       if not n.startswith("recipe.")}
    study = optuna.create_study()
    assert arch.space.suggest(study.ask()).recipe == Recipe()
    assert "fashion-mnist-arch" not in TABULAR


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
    # Free metrics (FLOPs, parameters) pretrain the encoder: a warm start of 5 QMC trials.
    assert nars["nars"]["stage"][:5] == ["qmc"] * 5
    assert nars["nars"]["stage"][5] == "predictor"
    assert nars["nars"]["predicted"][5] is not None


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


def _hand_run(sampler: str, seed: int, regret: list[float]) -> dict:
    best = [-r for r in regret]  # any observed values; only the regrets matter here
    return {"problem": "hand", "sampler": sampler, "seed": seed, "n_trials": len(regret),
            "direction": "maximize", "optimum": 0.0, "wall_s": 0.1, "value": best,
            "best": best, "regret": regret, "feasible": [1.0] * len(regret),
            "sampler_s": [0.0] * len(regret), "eval_s": [0.0] * len(regret)}


def test_trials_to_tpe_regret_counts_from_where_the_regret_stays_under() -> None:
    # TPE ends at mean regret 0.2. "a" dips under it at trial 2, rises (a lucky evaluation
    # replaced a truly better incumbent), and stays under from trial 5; "b" never does.
    runs = [_hand_run("tpe", s, [1.0, 0.8, 0.6, 0.4, 0.3, 0.2]) for s in (0, 1)]
    runs += [_hand_run("a", 0, [0.5, 0.1, 0.5, 0.5, 0.2, 0.1]),
             _hand_run("a", 1, [0.5, 0.1, 0.3, 0.3, 0.2, 0.1]),
             _hand_run("b", 0, [0.5, 0.4, 0.3, 0.3, 0.3, 0.3]),
             _hand_run("b", 1, [0.5, 0.4, 0.3, 0.3, 0.3, 0.3])]
    pr = ProblemRuns("hand", runs)
    assert pr.trials_to_regret("a", 0.2) == 5
    assert pr.trials_to_regret("tpe", 0.2) == 6
    assert pr.trials_to_regret("b", 0.2) is None
    hand = summarize(runs, checkpoints=(3, 6))["problems"]["hand"]
    assert hand["tpe_regret"] == pytest.approx(0.2)
    assert [hand["samplers"][s]["to_tpe_regret"] for s in ("a", "b", "tpe")] == [5, None, 6]


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
    assert "trials to TPE@25 regret" in report
    assert "Harness check" in report
    assert (tmp_path / "plots" / "nasbench201-cifar10.png").stat().st_size > 1000


def test_cli_rejects_bad_arguments(tmp_path) -> None:
    assert bench_main(["run", "--problems", "nope", "--out", str(tmp_path)]) == 2
    assert bench_main(["run", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert bench_main(["report", "--out", str(tmp_path / "empty")]) == 1


# ---- width5x8: the LayerNAS paper's 5 layers x 8 widths under half the largest FLOPs ---------


def test_width5x8_loads_with_half_the_largest_flops_and_its_optimum() -> None:
    problem = get_problem("width5x8-flops-half")
    assert isinstance(problem, TabularProblem)
    assert problem.runs.shape[0] == 8**5 and problem.runs.shape[1] >= 2
    assert problem.layers == tuple((f"width{i}",) for i in range(5))
    # The largest model, built and counted by torch: its FLOPs set the budget.
    widest = build_mlp((max(WIDTHS),) * 5)
    with FlopCounterMode(display=False) as counter:
        widest(torch.zeros(1, 64))
    largest = {f"width{i}": len(WIDTHS) - 1 for i in range(5)}
    assert problem.proxy_metrics(largest)["flops"] == counter.get_total_flops()
    assert problem.proxy_metrics(largest)["params"] == sum(p.numel() for p in widest.parameters())
    assert problem.budgets == {"flops": 0.5 * counter.get_total_flops()}
    # The optimum: the best mean over runs among the models within the budget, found by
    # checking every configuration through the problem's own lookups.
    configs = list(itertools.product(range(len(WIDTHS)), repeat=5))
    truth, feasible = [], []
    for c in configs[::7]:  # a sample through the per-config API agrees with the arrays
        params = {f"width{i}": w for i, w in enumerate(c)}
        truth.append(problem.true_value(params))
        feasible.append(all(v <= 0 for v in problem.violations(params).values()))
    rows = np.arange(0, len(configs), 7)
    assert np.allclose(truth, problem.runs[rows].mean(axis=1))
    flops = problem.proxy[:, 0]
    assert np.array_equal(feasible, flops[rows] <= flops.max() / 2)
    assert problem.optimum == pytest.approx(problem.runs.mean(axis=1)[flops <= flops.max() / 2]
                                            .max())
    assert problem.optimum < problem.runs.mean(axis=1).max()  # the budget binds


def test_width5x8_table_is_validated_on_load(tmp_path) -> None:
    with pytest.raises(TableError, match="not at .*python -m benchmarks.width_table"):
        load_width_table(tmp_path / "missing.npz")
    with np.load(WIDTH5X8_PATH) as f:
        arrays = {k: f[k] for k in f.files}
    bad = {**arrays, "flops": arrays["flops"] + 1}
    np.savez(tmp_path / "flops.npz", **bad)
    with pytest.raises(TableError, match="flops / params columns do not match"):
        load_width_table(tmp_path / "flops.npz")
    np.savez(tmp_path / "short.npz", **{**arrays, "configs": arrays["configs"][:-1]})
    with pytest.raises(TableError, match="not all 8\\^5 width choices"):
        load_width_table(tmp_path / "short.npz")
    np.savez(tmp_path / "seeds.npz", **{**arrays, "val_acc": arrays["val_acc"][:, :1]})
    with pytest.raises(TableError, match=">= 2 seeds"):
        load_width_table(tmp_path / "seeds.npz")


def test_runner_counts_distinct_candidates_and_records_stages() -> None:
    problem = get_problem("width5x8-flops-half")
    study = optuna.create_study(direction="maximize", sampler=RandomSampler(seed=0))
    repeated = {f"width{i}": 3 for i in range(5)}
    for _ in range(3):  # the same candidate three times: trained once
        study.enqueue_trial(repeated)
    rec = run_study(problem, study.sampler, 12, seed=0, study=study)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert rec["distinct"] == [len(set(keys[: i + 1])) for i in range(12)]
    assert rec["distinct"][:3] == [1, 1, 1]
    assert rec["true"] == [pytest.approx(problem.true_value(t.params), 1e-5)
                           for t in study.trials]
    assert "stage" not in rec  # Optuna's samplers expose none
    layernas = run_study(problem, make_sampler("layernas", problem, 0), 10, seed=0)
    assert layernas["stage"] == ["layer"] * 10 and layernas["layer"][0] == 0
    assert space_facts(problem) == {"layerwise": True, "space_size": 8**5, "n_optimal": int(
        np.sum(problem.feasible_rows() & np.isclose(problem.truth, problem.optimum)))}


def test_layernas_on_width5x8_never_breaks_the_budget() -> None:
    problem = get_problem("width5x8-flops-half")
    rec = run_study(problem, make_sampler("layernas", problem, 1), 60, seed=1)
    assert all(rec["feasible"])
    assert rec["distinct"][-1] == 60  # LayerNAS never trains a candidate twice
    # Layer by layer: the expanded layer never goes back while the search runs.
    layers = [x for x in rec["layer"] if x is not None]
    assert layers == sorted(layers) and layers[-1] >= 1
    stages = stage_summary([{**rec, "direction": "maximize"}], 60)
    assert set(stages) == {"layer"} and stages["layer"]["trials"] == 60
    assert stages["layer"]["best_true"] == pytest.approx(max(rec["true"]))


def test_candidates_to_the_optimum_and_random_law() -> None:
    problem = get_problem("width5x8-flops-half")
    best_row = int(np.flatnonzero(problem.feasible_rows()
                                  & np.isclose(problem.truth, problem.optimum))[0])
    best = dict(zip(problem.grid, next(k for k, v in problem.index.items() if v == best_row),
                    strict=True))
    runs = []
    for seed, at in ((0, 5), (1, None)):  # seed 0 meets the optimum at trial 6, seed 1 never
        study = optuna.create_study(direction="maximize", sampler=RandomSampler(seed=seed))
        for _ in range(2):
            study.enqueue_trial({f"width{i}": 0 for i in range(5)})  # a repeat: 1 candidate
        if at is not None:
            for _ in range(at - 2):
                study.enqueue_trial({f"width{i}": 1 for i in range(5)})
            study.enqueue_trial(best)
        rec = run_study(problem, study.sampler, 20, seed=seed, study=study)
        runs.append({"problem": problem.name, "sampler": "random", "seed": seed,
                     "n_trials": 20, "direction": "maximize", "optimum": problem.optimum,
                     "wall_s": 0.1, **space_facts(problem), **rec})
    assert first_optimum(runs[0]) == 5 and runs[0]["distinct"][5] == 3
    assert first_optimum(runs[0], NEAR) <= 5  # the optimum is near itself
    # Minimising: at the optimum means at most it; "near" reaches a little above it.
    run = {"optimum": 10.0, "direction": "minimize", "true": [12.0, 10.1, 9.99999],
           "feasible": [True, True, True]}
    assert first_optimum(run) == 2 and first_optimum(run, 0.02) == 1
    assert first_optimum({**run, "feasible": [True, False, False]}, 0.1) is None
    lw = summarize(runs, checkpoints=(10, 20))["problems"][problem.name]["layerwise"]
    r = lw["samplers"]["random"]
    # Median of {3, never}: infinite, so "not found"; found by half the seeds.
    assert r["found"] == 0.5 and r["candidates_to_optimum"] is None
    assert r["distinct"][20] == pytest.approx(np.mean([x["distinct"][19] for x in runs]))
    law = random_law(100, 1, 10)
    assert law["median_candidates"] == 50 and law["p_found"] == pytest.approx(1 - 0.99**10)
    assert random_law(100, 2, 1)["median_candidates"] == 30  # P(none of 29) > .5 > P(none of 30)


def test_width5x8_generator_reproduces_a_shipped_chunk() -> None:
    """The table is what its generator trains: one chunk (512 models, seed 1) retrained. Exact
    on the machine that made it; the tolerance is far below the seed-to-seed difference (mean
    |acc seed 0 - acc seed 1| is about 0.07) for CPUs that round differently."""
    table = load_width_table()
    chunk = slice(512 * 40, 512 * 41)
    widths = np.asarray(WIDTHS)[table["configs"][chunk]]
    acc = train_chunk(widths, digits_split(), seed=1000 + 40, steps=150, batch=32, lr=5e-3)
    assert np.mean(np.abs(acc - table["val_acc"][chunk, 1])) < 0.01


def test_runner_never_prunes_a_problem_that_reports_every_epoch() -> None:
    """The real-training problem reports every epoch and asks ``should_prune``: the runner's
    study must not prune (Optuna's default MedianPruner would, and lose the labels)."""

    class Reporting(TabularProblem):
        def evaluate(self, trial: optuna.Trial, rng: np.random.Generator) -> float:
            value = super().evaluate(trial, rng)
            for step in range(3):
                trial.report(value - trial.number, step)  # later trials look worse and worse
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return value

    toy = _toy()
    problem = Reporting(name="toy", direction="maximize", grid=toy.grid, ordinal=(),
                        index=toy.index, runs=toy.runs)
    rec = run_study(problem, RandomSampler(seed=0), 12, seed=0)
    assert rec["state"] == ["COMPLETE"] * 12
