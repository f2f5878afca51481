"""NARSSampler in two-objective studies: one learned objective, one free metric
(``objective_metrics``, :mod:`optuna_nars.samplers.nars._pareto`)."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase

from optuna_nars import ClassificationObjective, SearchSpace
from optuna_nars._keys import CLAIM_KEPT_KEY
from optuna_nars.cost import count_flops, space_costs
from optuna_nars.labels import trial_labels
from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers import NARSSampler
from optuna_nars.samplers.nars._pareto import improvement

FAST = dict(n_members=2, frozen_epochs=10, finetune_epochs=10, pretrain_epochs=10)


def fast_sampler(**kwargs) -> NARSSampler:
    defaults = dict(seed=0, n_startup_trials=4, batch_size=4, n_rounds=2, pool_size=512,
                    n_pretrain=256, predictor=NARSPredictor(**FAST))
    return NARSSampler(**{**defaults, **kwargs})


def _size(params: dict) -> dict:
    return {"size": float(params.get("layers", 1) * params.get("units", 1))}


class TestOptunaMultiObjectiveContract(MultiObjectiveSamplerTestCase):
    """Optuna's multi-objective sampler tests (sample_independent in a two-objective study);
    its other sampler tests create single-objective studies."""

    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: fast_sampler(objective_metrics=[None, "size"], proxy_metrics=_size,
                                    warn_independent_sampling=False)


def _tiny_objective(space: SearchSpace) -> Callable[[optuna.Trial], tuple[float, float]]:
    """FLOPs first (minimised), then a synthetic accuracy that grows with FLOPs and peaks at
    lr = 0.03: the order and directions of ``objective_metrics=["flops", None]``."""

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        space.suggest(trial)
        candidate = space.from_params(trial.params)
        flops = float(count_flops(candidate.architecture, space.in_channels, space.num_classes))
        lr_penalty = 0.05 * (math.log10(candidate.recipe.lr) + 1.5) ** 2
        accuracy = 0.5 + 0.05 * math.log(flops) - lr_penalty
        return flops, accuracy

    return objective


def test_two_objective_study_respects_the_budget_and_never_repeats() -> None:
    space = SearchSpace.tiny()
    flops = space_costs(space, space.sample_values(2000, seed=0))["flops"]
    budget = float(np.quantile(flops, 0.5))
    sampler = fast_sampler(search_space=space, constraints={"flops": budget},
                           objective_metrics=["flops", None])
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    study.optimize(_tiny_objective(space), n_trials=24)
    stages = [t.user_attrs["nars:stage"] for t in study.trials]
    assert stages[:4] == ["qmc"] * 4 and set(stages[12:]) == {"evolution"}
    assert "predictor" in stages[4:12]
    keys = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(keys) == len(study.trials)  # never the same candidate twice
    for t in study.trials:
        assert t.values[0] <= budget and t.constraints["flops"] <= 0
    # The prediction is of the learned objective (accuracy, the second), on its scale (not
    # the FLOPs'): near the measured accuracies, possibly beyond the best (not clipped there).
    accuracies = [t.values[1] for t in study.trials]
    predicted = study.trials[-1].user_attrs["nars:predicted"]
    span = max(accuracies) - min(accuracies)
    assert min(accuracies) - span <= predicted <= max(accuracies) + span
    assert trial_labels(study, objective=1) == {t.number: t.values[1] for t in study.trials}
    assert study.best_trials  # Optuna's Pareto front of the study


def test_workers_sharing_a_storage_never_propose_the_same_candidate() -> None:
    storage = optuna.storages.InMemoryStorage()
    space = SearchSpace.tiny()
    sampler = fast_sampler(search_space=space, objective_metrics=[None, "params"])
    studies = [
        optuna.create_study(study_name="mo", storage=storage, sampler=sampler,
                            directions=["maximize", "minimize"]),
        optuna.load_study(study_name="mo", storage=storage,
                          sampler=pickle.loads(pickle.dumps(sampler))),  # a fresh process
    ]
    objective = _tiny_objective(space)
    # Asked in pairs: the second worker sees the first one's claim while it runs.
    for _ in range(7):
        trials = [s.ask() for s in studies]
        for s, trial in zip(studies, trials, strict=True):
            flops_value, accuracy = objective(trial)
            params = space_costs(space, space.param_space.params_to_values([trial.params]))
            s.tell(trial, (accuracy, float(params["params"][0])))
    keys = [tuple(sorted(t.params.items())) for t in studies[0].trials]
    assert len(set(keys)) == len(keys) == 14


def _toy_table() -> tuple[dict, Callable[[dict], dict], Callable[[optuna.Trial], tuple]]:
    """Six layers of width 0..4: cost is the total width; accuracy saturates with width and
    rewards depth in the first layers (a front a predictor can learn from few labels)."""
    distributions = {f"w{i}": optuna.distributions.IntDistribution(0, 4) for i in range(6)}
    weights = np.array([1.0, 0.9, 0.8, 0.3, 0.2, 0.1])

    def proxy(params: dict) -> dict:
        return {"cost": float(sum(params[f"w{i}"] for i in range(6)))}

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        w = np.array([trial.suggest_int(f"w{i}", 0, 4) for i in range(6)], dtype=float)
        accuracy = float(np.sum(weights * np.sqrt(w)))
        return accuracy, proxy(trial.params)["cost"]

    return distributions, proxy, objective


def _hypervolume(study: optuna.Study) -> float:
    losses = np.array([[-t.values[0] / 6.0, t.values[1] / 24.0] for t in study.trials])
    return float(compute_hypervolume(losses, np.array([0.0, 1.0])))


def test_front_beats_random_on_a_toy_table() -> None:
    distributions, proxy, objective = _toy_table()
    wins = 0
    for seed in range(3):
        nars = fast_sampler(search_space=distributions, proxy_metrics=proxy, seed=seed,
                            objective_metrics=[None, "cost"], warn_independent_sampling=False)
        random = optuna.samplers.RandomSampler(seed=seed)
        hv = []
        for sampler in (nars, random):
            study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
            study.optimize(objective, n_trials=24)
            hv.append(_hypervolume(study))
        wins += hv[0] > hv[1]
    assert wins >= 2


def test_improvement_is_exact_and_ranks_dominated_points_by_distance() -> None:
    front = np.array([[0.2, 0.6], [0.5, 0.3]])
    ref = np.array([1.0, 1.0])
    points = np.array([[0.1, 0.1], [0.6, 0.7], [0.9, 0.9], [0.4, 0.5]])
    got = improvement(points, front, ref)
    base = compute_hypervolume(front, ref)
    for p, g in zip(points, got, strict=True):
        exact = compute_hypervolume(np.vstack([front, p]), ref) - base
        if exact > 0:
            assert g == pytest.approx(exact)
    assert got[1] == pytest.approx(-0.1) and got[2] == pytest.approx(-0.4)  # additive epsilon
    assert got[0] > got[3] > 0 > got[1] > got[2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(objective_metrics=[None, None]), "exactly one None"),
        (dict(objective_metrics=["flops", "params"]), "exactly one None"),
        (dict(objective_metrics=[None]), "at least two"),
        (dict(objective_metrics="flops"), "one entry per objective"),
        (dict(objective_metrics=[None, "latency"]), "Unknown objective metric"),
        (dict(objective_metrics=[None, "flops", "flops"]), "twice"),
    ],
)
def test_bad_objective_metrics_are_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fast_sampler(search_space=SearchSpace.tiny(), **kwargs)


def test_generic_space_needs_proxy_metrics_naming_the_objective() -> None:
    with pytest.raises(ValueError, match="proxy_metrics"):
        fast_sampler(objective_metrics=[None, "size"])
    distributions, proxy, objective = _toy_table()
    sampler = fast_sampler(search_space=distributions, proxy_metrics=proxy,
                           objective_metrics=[None, "size"])
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with pytest.raises(ValueError, match=r"names \['size'\].*give \['cost'\]"):
        study.optimize(objective, n_trials=1)


def test_studies_that_do_not_match_are_clear_errors() -> None:
    space = SearchSpace.tiny()
    two = optuna.create_study(directions=["maximize", "minimize"], sampler=fast_sampler())
    with pytest.raises(ValueError, match="multi-objective.*objective_metrics"):
        two.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1)
    three = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        sampler=fast_sampler(search_space=space, objective_metrics=[None, "flops"]),
    )
    with pytest.raises(ValueError, match="describes 2 objectives but the study has 3"):
        three.optimize(lambda t: (space.suggest(t), (0.0, 0.0, 0.0))[1], n_trials=1)
    single = optuna.create_study(
        sampler=fast_sampler(search_space=space, objective_metrics=[None, "flops"])
    )
    with pytest.raises(ValueError, match="the study has 1"):
        single.optimize(lambda t: (space.suggest(t), 0.0)[1], n_trials=1)


def test_classification_objective_trains_in_a_two_objective_study() -> None:
    """Real training: Optuna refuses intermediate values in multi-objective studies, so the
    objective reports no epochs there; the FLOPs it records are the cost model's."""
    space = SearchSpace.tiny()
    train = ClassificationObjective(space, dataset="digits", epochs=1, max_train_samples=200)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=fast_sampler(
        search_space=space, objective_metrics=[None, "flops"], pool_size=64))
    study.optimize(lambda t: (train(t), t.user_attrs["flops"]), n_trials=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    for t in study.trials:
        assert not t.intermediate_values and 0.0 <= t.values[0] <= 1.0
        row = space.param_space.params_to_values([t.params])
        assert t.values[1] == space_costs(space, row)["flops"][0]


def test_benchmark_hypervolume_grows_to_at_most_the_tables_front() -> None:
    from benchmarks.suite.multi_objective import PROBLEMS, markdown, run_one, summarize

    verbosity = optuna.logging.get_verbosity()
    try:  # run_one quiets Optuna, as in a benchmark worker process
        runs = [run_one("macro", s, seed, 12) for s in ("random", "nsga2") for seed in (0, 1)]
    finally:
        optuna.logging.set_verbosity(verbosity)
    optimum = PROBLEMS["macro"]().optimum()
    assert 0.0 < optimum <= 1.0
    for run in runs:
        hv = np.array(run["hypervolume"])
        assert np.all(np.diff(hv) >= 0) and hv[-1] <= optimum + 1e-9 and run["distinct"] >= 10
    summary = summarize(runs)["macro"]
    assert summary["checkpoints"] == [12]
    ranks = [summary["samplers"][s]["rank"][12] for s in ("random", "nsga2")]
    assert sum(ranks) == pytest.approx(3.0)  # two samplers: ranks 1 and 2 per seed
    assert "### macro" in markdown({"macro": summary})


def test_an_objective_that_is_not_its_metric_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    space = SearchSpace.tiny()
    objective = _tiny_objective(space)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=fast_sampler(
        search_space=space, objective_metrics=["flops", None]))
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            study.optimize(lambda t: (2.0 * objective(t)[0], objective(t)[1]), n_trials=6)
    finally:
        optuna.logging.disable_propagation()
    warnings = [r for r in caplog.records if "differs from the free metric 'flops'" in r.message]
    assert len({id(r) for r in warnings}) == 1  # once per process (caplog may list it twice)


def test_benchmark_grid_resumes_from_its_log(tmp_path) -> None:
    from benchmarks.suite.multi_objective import run_grid

    log = tmp_path / "mo.jsonl"
    verbosity = optuna.logging.get_verbosity()
    try:
        first = run_grid(["macro"], ["random"], 2, 3, jobs=1, log=log)
        again = run_grid(["macro"], ["random"], 2, 3, jobs=1, log=log)  # nothing left to run
    finally:
        optuna.logging.set_verbosity(verbosity)
    assert len(log.read_text().splitlines()) == 2
    assert sorted(r["seed"] for r in again) == [0, 1] and first == again


def test_benchmark_sampler_names_and_nars_variants() -> None:
    from benchmarks.suite.multi_objective import PROBLEMS, make_sampler

    problem = PROBLEMS["macro"]()
    assert isinstance(make_sampler("nsga2", problem, 0), optuna.samplers.NSGAIISampler)
    variant = make_sampler("nars[exploration=1]", problem, 0)
    assert isinstance(variant, NARSSampler) and variant._exploration == 1.0
    with pytest.raises(ValueError, match="Unknown sampler 'tpe\\[x=1\\]'"):
        make_sampler("tpe[x=1]", problem, 0)


def test_enqueued_trial_is_claimed_in_a_two_objective_study() -> None:
    space = SearchSpace.tiny()
    fixed = space.param_space.values_to_params(space.sample_values(1, seed=3))[0]
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=fast_sampler(
        search_space=space, objective_metrics=["flops", None]))
    study.enqueue_trial(fixed)
    study.optimize(_tiny_objective(space), n_trials=6)
    assert study.trials[0].params == fixed
    assert CLAIM_KEPT_KEY in study.trials[0].system_attrs  # claimed before it ran
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 6
