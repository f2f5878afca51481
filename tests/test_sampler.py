from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)

from optuna_nars import SearchSpace
from optuna_nars.cost import count_flops, space_costs
from optuna_nars.evolution.operators import VariationOperators
from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers import PREDICTOR_QUALITY_KEY, NARSSampler

FAST = dict(n_members=2, frozen_epochs=10, finetune_epochs=10, pretrain_epochs=10)


def fast_sampler(**kwargs) -> NARSSampler:
    defaults = dict(
        seed=0,
        n_startup_trials=4,
        batch_size=4,
        n_rounds=2,
        pool_size=512,
        n_pretrain=256,
        predictor=NARSPredictor(**FAST),
    )
    return NARSSampler(**{**defaults, **kwargs})


class TestOptunaSamplerContract(
    BasicSamplerTestCase, RelativeSamplerTestCase, SingleOnlySamplerTestCase
):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: fast_sampler(warn_independent_sampling=False, n_startup_trials=2,
                                    batch_size=2, n_rounds=1)


def synthetic_accuracy(space: SearchSpace, params: dict) -> float:
    """A smooth, known function of architecture and recipe: bigger models and lr near 0.03
    are better."""
    candidate = space.from_params(params)
    flops = count_flops(candidate.architecture, space.in_channels, space.num_classes)
    lr = candidate.recipe.lr
    return 0.5 + 0.05 * math.log(flops) - 0.05 * (math.log10(lr) + 1.5) ** 2


def synthetic_objective(space: SearchSpace) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        space.suggest(trial)
        return synthetic_accuracy(space, trial.params)

    return objective


def test_constraints_hold_on_every_proposal_and_stages_advance() -> None:
    space = SearchSpace.tiny()
    flops = space_costs(space, space.sample_values(2000, seed=0))["flops"]
    budget = float(np.quantile(flops, 0.3))
    sampler = fast_sampler(search_space=space, constraints={"flops": budget})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(synthetic_objective(space), n_trials=80)
    stages = [t.user_attrs["nars:stage"] for t in study.trials]
    assert stages[:4] == ["qmc"] * 4
    assert set(stages[4:12]) == {"predictor"}
    # From trial 50 every 10th measures a pair again (remeasure_every), the others evolve.
    again = [50, 60, 70]
    assert [n for n, s in enumerate(stages) if s == "remeasure"] == again
    assert {s for n, s in enumerate(stages[12:], 12) if n not in again} == {"evolution"}
    keys = []
    for t in study.trials:
        candidate = space.from_params(t.params)
        assert count_flops(candidate.architecture, 1, 10) <= budget
        assert t.constraints["flops"] <= 0  # recorded the Optuna way
        key = tuple(sorted(t.params.items()))
        assert (key in keys) == (t.number in again)  # else never the same candidate twice
        keys.append(key)
    assert "nars:predicted" in study.trials[-1].user_attrs
    quality = study._storage.get_study_system_attrs(study._study_id)[PREDICTOR_QUALITY_KEY]
    assert quality["n_labels"] >= 70 and -1.0 <= quality["kendall_tau"] <= 1.0


def test_predictor_stages_beat_the_qmc_warm_start() -> None:
    space = SearchSpace.tiny()
    study = optuna.create_study(
        direction="maximize", sampler=fast_sampler(search_space=space, n_startup_trials=10)
    )
    study.optimize(synthetic_objective(space), n_trials=40)
    values = np.array([t.value for t in study.trials])
    assert values[10:].mean() > values[:10].mean()
    assert values.max() > np.median(values[:10])


def test_minimize_direction_and_failed_trials() -> None:
    space = SearchSpace.tiny()
    failed: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        space.suggest(trial)
        if trial.number % 7 == 3:
            failed.append(dict(trial.params))
            raise RuntimeError("a diverging recipe")
        return -synthetic_accuracy(space, trial.params)

    study = optuna.create_study(direction="minimize", sampler=fast_sampler(search_space=space))
    study.optimize(objective, n_trials=30, catch=(RuntimeError,))
    assert len(study.trials) == 30  # failing trials never kill the study
    fail_keys = {tuple(sorted(p.items())) for p in failed}
    later = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(later)) == len(later)
    assert fail_keys <= set(later)
    warm = [t.value for t in study.trials[:4] if t.value is not None]
    assert study.best_value < np.median(warm)
    assert all(t.state.name == "FAIL" for t in study.trials if t.number % 7 == 3)


def test_same_seed_same_sequence_and_pickle(tmp_path: Path) -> None:
    space = SearchSpace.tiny()

    def run(sampler: NARSSampler) -> list[dict]:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(synthetic_objective(space), n_trials=14)
        return [t.params for t in study.trials]

    first = run(fast_sampler(search_space=space, seed=7))
    assert first == run(fast_sampler(search_space=space, seed=7))
    assert first != run(fast_sampler(search_space=space, seed=8))
    restored = pickle.loads(pickle.dumps(fast_sampler(search_space=space, seed=7)))
    assert run(restored) == first

    script = textwrap.dedent(
        """
        import json, optuna, sys
        sys.path.insert(0, {tests!r})
        from test_sampler import fast_sampler, synthetic_objective
        from optuna_nars import SearchSpace
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space = SearchSpace.tiny()
        study = optuna.create_study(direction="maximize",
                                    sampler=fast_sampler(search_space=space, seed=7))
        study.optimize(synthetic_objective(space), n_trials=14)
        print(json.dumps([t.params for t in study.trials]))
        """
    ).format(tests=str(Path(__file__).parent))
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True)
    import json

    assert json.loads(out.stdout.strip().splitlines()[-1]) == first


def test_retarget_to_a_tighter_budget_without_training() -> None:
    space = SearchSpace.tiny()
    sampler = fast_sampler(search_space=space)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(synthetic_objective(space), n_trials=16)
    flops = space_costs(space, space.sample_values(2000, seed=0))["flops"]
    for quantile in (0.1, 0.5):
        budget = float(np.quantile(flops, quantile))
        n_before = len(study.trials)
        proposals = sampler.search(study, constraints={"flops": budget}, n=5)
        assert len(study.trials) == n_before  # nothing was trained
        assert len(proposals) == 5
        for p in proposals:
            assert p.costs["flops"] <= budget
            assert count_flops(p.candidate.architecture, 1, 10) <= budget
            assert math.isfinite(p.predicted) and p.predicted_std >= 0
        predicted = [p.predicted for p in proposals]
        assert predicted == sorted(predicted, reverse=True)


def test_budget_no_candidate_meets_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"flops <= 1000: the cheapest candidate needs"):
        NARSSampler(SearchSpace.tiny(), constraints={"flops": 1000}, pool_size=256)
    with pytest.raises(ValueError, match="Unknown constraint"):
        NARSSampler(SearchSpace.tiny(), constraints={"latency": 1.0})
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        NARSSampler(SearchSpace.tiny(), batch_size=0)


def test_generic_space_with_proxy_metrics_and_callable_constraint() -> None:
    def objective(trial: optuna.Trial) -> float:
        layers = trial.suggest_int("layers", 1, 8)
        units = trial.suggest_int("units", 16, 256, log=True)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        act = trial.suggest_categorical("act", ["relu", "tanh"])
        size = layers * units
        return math.log(size) - (math.log10(lr) + 2.5) ** 2 + (0.3 if act == "relu" else 0.0)

    def proxy(params: dict) -> dict:
        return {"size": params["layers"] * params["units"]}

    sampler = fast_sampler(
        proxy_metrics=proxy,
        architecture_params=["layers", "units", "act"],
        constraints=lambda p: [p["layers"] * p["units"] - 600],
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=24)
    for t in study.trials[1:]:  # the first trial is sampled before the space is known
        assert t.params["layers"] * t.params["units"] <= 600
    assert {t.user_attrs.get("nars:stage") for t in study.trials[1:]} >= {"qmc", "predictor"}


def test_enqueued_trials_are_respected() -> None:
    space = SearchSpace.tiny()
    study = optuna.create_study(direction="maximize", sampler=fast_sampler(search_space=space))
    fixed = space.values_to_params(space.sample_values(1, seed=99))[0]
    study.enqueue_trial(fixed)
    study.optimize(synthetic_objective(space), n_trials=3)
    assert study.trials[0].params == fixed
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 3


def test_multi_objective_is_a_clear_error() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=fast_sampler())
    with pytest.raises(ValueError, match="multi-objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1)


def _heavy_tailed_objective(trial: optuna.Trial) -> float:
    x = [trial.suggest_int(f"x{i}", 0, 9) for i in range(4)]
    loss = sum((v - 6) ** 2 for v in x) / 100.0
    # A quarter of the space "diverges": losses five orders of magnitude above the rest.
    return loss + (1e5 if x[0] <= 1 else 0.0)


def test_predictions_stay_on_the_measured_scale_despite_outliers() -> None:
    # The label scale is what is tested, so the acquisition is the predicted score itself (the
    # expected improvement may try an uncertain candidate predicted to diverge).
    study = optuna.create_study(
        sampler=fast_sampler(n_rounds=4, acquisition="ucb", trust_region=1.0))
    study.optimize(_heavy_tailed_objective, n_trials=16)
    labelled = [t.value for t in study.trials]
    predicted = [t.user_attrs["nars:predicted"] for t in study.trials
                 if "nars:predicted" in t.user_attrs]
    assert predicted
    # Rank-based labels: predictions are mapped back onto the measured scale, never onto the
    # outliers'; beyond the best label they extrapolate (to keep ranking) by less than the
    # spread of the non-diverged labels.
    ordinary = [v for v in labelled if v < 1e4]
    assert min(predicted) > min(labelled) - (max(ordinary) - min(ordinary))
    assert max(predicted) < 1e4
    assert sum(t.value < 1e4 for t in study.trials[4:]) >= 10  # it learned to avoid x0 <= 1


def test_trust_region_keeps_every_other_proposal_near_measured_pairs() -> None:
    def distance_to_measured(study: optuna.Study) -> tuple[float, float]:
        xs = np.array([[t.params[f"x{i}"] for i in range(4)] for t in study.trials], float)
        d = [np.abs(xs[:n] - xs[n]).sum(axis=1).min() for n in range(4, len(xs))]
        even = [v for n, v in zip(range(4, len(xs)), d, strict=True) if n % 2 == 0]
        odd = [v for n, v in zip(range(4, len(xs)), d, strict=True) if n % 2 == 1]
        return float(np.mean(even)), float(np.mean(odd))

    trusted = optuna.create_study(sampler=fast_sampler(n_rounds=6, trust_region=3.0))
    trusted.optimize(_heavy_tailed_objective, n_trials=28)
    even, odd = distance_to_measured(trusted)
    assert even < odd
    with pytest.raises(ValueError, match="trust_region must be a number >= 0"):
        NARSSampler(trust_region=-1)


def test_gp_labels_fit_a_gaussian_process_only_without_pretraining(gp_fits: list[int]) -> None:
    from optuna.distributions import FloatDistribution, IntDistribution

    fitted = gp_fits
    # An HPO space with no free metrics: nothing to pretrain the encoder on.
    space = {"x": FloatDistribution(-2, 2), "n": IntDistribution(1, 9)}

    def objective(trial: optuna.Trial) -> float:
        return -((trial.suggest_float("x", -2, 2) - 0.5) ** 2) - 0.1 * trial.suggest_int("n", 1, 9)

    sampler = fast_sampler(search_space=space, gp_labels=10)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=16)
    refits = [t.n_labels for t in sampler.timings if t.step == "refit"]
    # The fits below 10 labels (with their 5-fold cross-validated tau) are GPs, then the MLP.
    assert set(fitted) <= set(range(1, 10)) and {4, 8} & set(fitted)
    assert any(n >= 10 for n in refits)
    predicted = [t.user_attrs.get("nars:predicted") for t in study.trials[4:]]
    assert all(p is not None and np.isfinite(p) for p in predicted)
    # With free metrics (a SearchSpace pretrains the encoder) the option changes nothing.
    fitted.clear()
    tiny = SearchSpace.tiny()
    with_gp = optuna.create_study(direction="maximize",
                                  sampler=fast_sampler(search_space=tiny, gp_labels=10))
    with_gp.optimize(synthetic_objective(tiny), n_trials=10)
    plain = optuna.create_study(direction="maximize",
                                sampler=fast_sampler(search_space=tiny, gp_labels=0))
    plain.optimize(synthetic_objective(tiny), n_trials=10)
    assert fitted == []
    assert [t.params for t in with_gp.trials] == [t.params for t in plain.trials]
    with pytest.raises(ValueError, match="gp_labels"):
        NARSSampler(gp_labels=-1)


def test_without_pretraining_the_default_fits_a_gaussian_process_past_50_labels(
    gp_fits: list[int],
) -> None:
    from optuna.distributions import FloatDistribution

    space = {"x": FloatDistribution(-2, 2), "y": FloatDistribution(-2, 2)}

    def objective(trial: optuna.Trial) -> float:
        return -(trial.suggest_float("x", -2, 2) - 0.5) ** 2 - trial.suggest_float("y", -2, 2) ** 2

    sampler = fast_sampler(search_space=space, batch_size=20, n_rounds=3)
    optuna.create_study(direction="maximize", sampler=sampler).optimize(objective, n_trials=62)
    refits = [t.n_labels for t in sampler.timings if t.step == "refit"]
    # Every fit, 60 labels included, is a Gaussian process (HPOBench: benchmarks/RESULTS.md).
    assert 60 in refits and set(refits) <= set(gp_fits)


def test_neighbours_move_a_few_parameters_of_the_best_measured_pairs() -> None:
    from optuna_nars.samplers.nars._neighbours import MIN_STEP, N_PARENTS, neighbours

    space = SearchSpace.tiny()
    param_space = space.param_space
    x = param_space.sample_values(30, seed=1, method="random")
    y = np.arange(30.0)
    flops = space_costs(space, x)["flops"]
    budget = float(np.median(flops))

    def feasible(values: np.ndarray) -> np.ndarray:
        return space_costs(space, values)["flops"] <= budget

    near = neighbours(param_space, x, y, feasible, 200, np.random.default_rng(0))
    assert 100 <= len(near) <= 200
    assert feasible(near).all()
    assert len({tuple(row) for row in near}) == len(near)
    # Each is one to a few parameters away from one of the best rows, none from the others.
    changed = (near[:, None, :] != x[None, :, :]).sum(axis=2)
    closest = changed.argmin(axis=1)
    assert set(closest) <= set(range(30 - N_PARENTS, 30))
    assert changed.min(axis=1).min() >= 1 and np.median(changed.min(axis=1)) <= 3
    # A continuous parameter moves by at least MIN_STEP of its range (in the unit cube):
    # otherwise the trust region, which favours the nearest, proposes measured pairs again.
    continuous = VariationOperators(param_space, sigma=0.1).continuous
    assert continuous.any()
    parents = x[closest]
    moves = np.abs(param_space.to_unit(near) - param_space.to_unit(parents))[:, continuous]
    moved = near[:, continuous] != parents[:, continuous]
    assert moved.any() and (moves[moved] >= MIN_STEP - 1e-9).all()
    again = neighbours(param_space, x, y, feasible, 200, np.random.default_rng(0))
    np.testing.assert_array_equal(near, again)
    assert len(neighbours(param_space, x, y, feasible, 0, np.random.default_rng(0))) == 0


def test_no_neighbour_repeats_a_measured_pair_but_for_a_few_digits() -> None:
    from optuna_nars.samplers.nars._neighbours import MIN_STEP, neighbours

    param_space = SearchSpace.tiny().param_space
    continuous = VariationOperators(param_space, sigma=0.1).continuous
    column = int(np.flatnonzero(continuous)[0])
    x = param_space.sample_values(30, seed=2, method="random")
    # The best pair's twin, one least move up a continuous parameter: its children that take
    # that move again would land on the twin, up to a few digits.
    unit = param_space.to_unit(x)
    unit[28] = unit[29]
    unit[29, column] = min(unit[29, column], 0.8)
    unit[28, column] = unit[29, column] + 1.2 * MIN_STEP
    x = param_space.from_unit(unit)
    y = np.arange(30.0)
    near = neighbours(param_space, x, y, lambda v: np.ones(len(v), dtype=bool), 3000,
                      np.random.default_rng(0))
    same = (near[:, None, ~continuous] == x[None, :, ~continuous]).all(axis=2)
    gap = np.abs(param_space.to_unit(near)[:, None, continuous]
                 - param_space.to_unit(x)[None, :, continuous]).max(axis=2)
    assert not (same & (gap < MIN_STEP / 2)).any()
    # The twin's and the best pair's other neighbours are still there.
    assert (same[:, 28] | same[:, 29]).sum() > 100


def test_trust_region_proposals_take_neighbours_of_the_best_measured_pairs() -> None:
    def parameters_from_best(study: optuna.Study) -> list[int]:
        """Per trust-region proposal of stage 2: parameters it changed from the nearest of
        the 5 best trials measured before it."""
        out = []
        for t in study.trials:
            if t.user_attrs["nars:stage"] != "predictor" or t.number % 2:
                continue
            done = sorted(study.trials[: t.number], key=lambda s: -s.value)[:5]
            out.append(min(sum(t.params[k] != s.params[k] for k in t.params) for s in done))
        return out

    space = SearchSpace.tiny()
    objective = synthetic_objective(space)
    settings = dict(search_space=space, n_rounds=4, constraints={"flops": _median_flops(space)})
    near = optuna.create_study(direction="maximize", sampler=fast_sampler(**settings))
    near.optimize(objective, n_trials=20)
    pool_only = optuna.create_study(direction="maximize",
                                    sampler=fast_sampler(neighbours=0, **settings))
    pool_only.optimize(objective, n_trials=20)
    # With neighbours, the trust region's proposals sit a few parameters from a good pair;
    # from the pool alone, nothing is that close in 24 parameters.
    assert np.median(parameters_from_best(near)) <= 3
    assert np.median(parameters_from_best(pool_only)) > 6
    with pytest.raises(ValueError, match="neighbours"):
        NARSSampler(neighbours=-1)


def _median_flops(space: SearchSpace) -> float:
    values = space.param_space.sample_values(2000, seed=0, method="random")
    return float(np.median(space_costs(space, values)["flops"]))


def test_warm_start_is_shorter_with_a_pretrained_encoder() -> None:
    """By default 5 QMC trials when free metrics pretrain the encoder, 10 without; an explicit
    n_startup_trials holds either way."""
    from optuna_nars.samplers import STAGE_KEY
    from optuna_nars.samplers.nars._schedule import startup_trials

    assert (startup_trials(None, True), startup_trials(None, False)) == (5, 10)
    assert startup_trials(7, True) == startup_trials(7, False) == 7
    tiny = SearchSpace.tiny()
    cases = [  # (sampler arguments, warm start before any trial, warm start of the study)
        (dict(search_space=tiny), 5, 5),
        (dict(search_space=tiny, n_pretrain=0), 10, 10),  # nothing pretrained
        (dict(search_space=tiny, n_startup_trials=3), 3, 3),
        (dict(search_space=tiny.distributions()), 10, 10),  # no free metric
    ]
    for kwargs, before, after in cases:
        sampler = fast_sampler(**{"n_startup_trials": None, "batch_size": 2, **kwargs})
        assert sampler.plan.n_startup_trials == before
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(synthetic_objective(tiny), n_trials=after + 1)
        assert sampler.plan.n_startup_trials == after
        stages = [t.user_attrs[STAGE_KEY] for t in study.trials]
        assert stages[:after] == ["qmc"] * after and stages[after] == "predictor", kwargs
    with pytest.raises(ValueError, match="n_startup_trials must be an integer >= 1"):
        NARSSampler(n_startup_trials=0)


def test_genetic_search_starts_after_200_trials_by_default() -> None:
    """20 predictor rounds of 10 follow the warm start (5 or 10 trials) before the genetic
    search: up to 200 trials the rounds did as well on the benchmark tables (RESULTS.md)."""
    tiny = SearchSpace.tiny()
    for kwargs, first_evolution in [(dict(search_space=tiny), 205),
                                    (dict(search_space=tiny.distributions()), 210)]:
        plan = NARSSampler(**kwargs).plan
        assert (plan.n_rounds, plan.batch_size) == (20, 10)
        assert plan.stage(first_evolution - 1) == "predictor", kwargs
        assert plan.stage(first_evolution) == "evolution", kwargs
