"""Regression tests for defects found by trying the library from outside (issue: reliability).

Each test reproduces one defect through the public API and asserts the repaired behaviour.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time

import numpy as np
import optuna
import optuna.distributions as D
import pytest
from optuna.trial import TrialState, create_trial

from optuna_nars import (
    FloatRange,
    IntRange,
    NARSPredictor,
    NARSSampler,
    RecipeSpec,
    SearchSpace,
    StageSpec,
)
from optuna_nars.cost import space_costs
from optuna_nars.pruner import LABEL_STEP_KEY

SMALL = dict(n_members=2, pretrain_epochs=3, frozen_epochs=5, finetune_epochs=5, hidden=32,
             embedding_dim=16)


def small_sampler(space=None, **kwargs) -> NARSSampler:
    args = dict(n_startup_trials=4, batch_size=3, n_rounds=2, pool_size=1024, n_pretrain=128,
                predictor=NARSPredictor(**SMALL), seed=0)
    args.update(kwargs)
    return NARSSampler(space, **args)


def flops_of(space: SearchSpace, params: dict) -> float:
    return float(space_costs(space, space.params_to_values([params]))["flops"][0])


def synthetic(space: SearchSpace):
    """Cheap and deterministic: bigger is better, lr near 0.03 is better."""

    def objective(trial: optuna.Trial) -> float:
        c = space.suggest(trial)
        return float(np.log(flops_of(space, trial.params)) - (np.log10(c.recipe.lr) + 1.5) ** 2)

    return objective


# ---- the predictor stage with nothing to learn from ---------------------------------------------


def test_all_warm_start_trials_failed_then_warm_start_continues() -> None:
    space = SearchSpace.tiny()
    study = optuna.create_study(sampler=small_sampler(space, n_startup_trials=4))
    study.optimize(lambda t: (space.suggest(t), float("nan"))[1], n_trials=4)
    assert all(t.state == TrialState.FAIL for t in study.trials)
    study.optimize(lambda t: (space.suggest(t), 1.0)[1], n_trials=2)
    assert [t.state for t in study.trials[4:]] == [TrialState.COMPLETE] * 2
    assert all(t.user_attrs["nars:stage"] == "qmc" for t in study.trials[4:])


def test_more_trials_running_than_the_warm_start_get_distinct_candidates() -> None:
    space = SearchSpace.tiny()
    study = optuna.create_study(sampler=small_sampler(space, n_startup_trials=4))
    trials = [study.ask() for _ in range(7)]
    for t in trials:
        space.suggest(t)
    keys = {tuple(sorted(t.params.items())) for t in trials}
    assert len(keys) == 7


# ---- constraints are recorded from what the trial really runs ------------------------------------


def test_enqueued_trials_record_the_constraints_of_their_own_params() -> None:
    space = SearchSpace.tiny()
    budget = 1.0e6
    study = optuna.create_study(direction="maximize",
                                sampler=small_sampler(space, constraints={"flops": budget}))
    values = space.sample_values(4000, seed=3, method="random")
    big = space.values_to_params(values[np.argmax(space_costs(space, values)["flops"])])[0]
    assert flops_of(space, big) > budget
    study.enqueue_trial(big)  # every parameter fixed
    study.enqueue_trial({k: v for k, v in big.items() if not k.startswith("recipe.")})
    study.optimize(synthetic(space), n_trials=8)
    for t in study.trials:
        assert t.constraints["flops"] == pytest.approx(flops_of(space, t.params) - budget)
    assert study.trials[0].constraints["flops"] > 0  # infeasible, and recorded as such
    assert flops_of(space, study.best_trial.params) <= budget


def test_inferred_space_records_the_constraint_from_the_first_trial() -> None:
    def constraint(params: dict) -> list[float]:
        return [params["x"] - 0.2]

    study = optuna.create_study(sampler=small_sampler(None, constraints=constraint))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=6)
    for t in study.trials:
        assert t.constraints, f"trial {t.number} ran with no constraint recorded"
        (value,) = t.constraints.values()
        assert value == pytest.approx(t.params["x"] - 0.2)
    assert all(t.params["x"] <= 0.2 for t in study.trials[1:])


# ---- the search space keeps what it declares ---------------------------------------------------


@pytest.mark.parametrize("make_sampler", [lambda s: optuna.samplers.RandomSampler(seed=0),
                                          lambda s: small_sampler(s)])
def test_suggest_keeps_float_step_and_int_log(make_sampler) -> None:
    space = SearchSpace.tiny().replace(
        recipe=RecipeSpec(dropout=FloatRange(0.0, 0.3, step=0.1)),
        head_channels=IntRange(64, 512, log=True),
    )
    study = optuna.create_study(direction="maximize", sampler=make_sampler(space))
    study.optimize(synthetic(space), n_trials=6)
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        assert t.distributions["recipe.dropout"] == D.FloatDistribution(0.0, 0.3, step=0.1)
        assert t.distributions["head.channels"] == D.IntDistribution(64, 512, log=True)
        assert round(t.params["recipe.dropout"] * 10) == pytest.approx(
            t.params["recipe.dropout"] * 10, abs=1e-9)


def test_recipe_only_search_space() -> None:
    space = SearchSpace(stages=(StageSpec(3, 2, 16, 1, 1, False), StageSpec(3, 2, 24, 1, 2, False)),
                        resolution=16, stem_channels=8, stem_stride=1, head_channels=64,
                        in_channels=1, num_classes=10)
    assert all(name.startswith("recipe.") for name in space.names)
    study = optuna.create_study(direction="maximize", sampler=small_sampler(space))

    def objective(trial: optuna.Trial) -> float:
        c = space.suggest(trial)
        return -(np.log10(c.recipe.lr) + 1.5) ** 2 - c.recipe.dropout

    study.optimize(objective, n_trials=10)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert {t.user_attrs["nars:stage"] for t in study.trials} >= {"qmc", "predictor"}


def test_generic_space_without_architecture_params() -> None:
    sampler = small_sampler({"lr": D.FloatDistribution(1e-3, 1, log=True),
                             "wd": D.FloatDistribution(1e-6, 1e-3, log=True)},
                            architecture_params=[])
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (np.log10(t.suggest_float("lr", 1e-3, 1, log=True)) + 1) ** 2
                   + t.suggest_float("wd", 1e-6, 1e-3, log=True), n_trials=10)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


# ---- a fit is keyed by what it was fitted on -----------------------------------------------------


def _labelled_study(sampler: NARSSampler, space: SearchSpace) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists = space.distributions()
    for i, params in enumerate(space.values_to_params(space.sample_values(8, seed=1))):
        # The final value ranks the trials one way, the value at step 1 the opposite way.
        study.add_trial(create_trial(params=params, distributions=dists, value=float(i),
                                     intermediate_values={1: float(-i), 2: float(i)}))
    return study


def _next_proposal(study: optuna.Study, space: SearchSpace) -> tuple[dict, float]:
    trial = study.ask()
    space.suggest(trial)
    study.tell(trial, state=TrialState.FAIL)  # keep the labelled set unchanged
    frozen = study.trials[trial.number]
    return frozen.params, frozen.user_attrs["nars:predicted"]


def test_a_changed_label_step_refits_like_a_fresh_worker() -> None:
    space = SearchSpace.tiny()
    settings = dict(n_startup_trials=2, batch_size=3)
    study = _labelled_study(small_sampler(space, **settings), space)
    _next_proposal(study, space)  # trial 8: fitted on the final values
    study._storage.set_study_system_attr(study._study_id, LABEL_STEP_KEY, 1)  # the pruner's write
    long_lived = _next_proposal(study, space)  # trial 9

    # A fresh worker on the same trials (trial 8 failed, as above) and the same label step.
    fresh_study = _labelled_study(small_sampler(space, **settings), space)
    fresh_study.add_trial(create_trial(params=study.trials[8].params,
                                       distributions=space.distributions(),
                                       state=TrialState.FAIL))
    fresh_study._storage.set_study_system_attr(fresh_study._study_id, LABEL_STEP_KEY, 1)
    fresh = _next_proposal(fresh_study, space)  # trial 9
    assert long_lived[0] == fresh[0]
    assert long_lived[1] == pytest.approx(fresh[1])
    assert -7.0 <= long_lived[1] <= 0.0  # on the scale of the step-1 labels (0 .. -7)


def test_one_sampler_for_two_studies_fits_each_on_its_own_labels() -> None:
    space = SearchSpace.tiny()
    settings = dict(n_startup_trials=4, batch_size=3, n_rounds=3)
    shared = small_sampler(space, **settings)
    a = optuna.create_study(direction="maximize", sampler=shared)
    a.optimize(synthetic(space), n_trials=5)
    objective = synthetic(space)
    b = optuna.create_study(direction="maximize", sampler=shared)
    b.optimize(lambda t: -objective(t), n_trials=5)
    alone = optuna.create_study(direction="maximize", sampler=small_sampler(space, **settings))
    alone.optimize(lambda t: -objective(t), n_trials=5)
    assert b.trials[4].params == alone.trials[4].params
    assert b.trials[4].user_attrs["nars:predicted"] == pytest.approx(
        alone.trials[4].user_attrs["nars:predicted"])
    assert b.trials[4].user_attrs["nars:predicted"] <= max(t.value for t in b.trials[:4])


# ---- re-targeting --------------------------------------------------------------------------------


def test_search_defaults_to_the_sampler_budget_and_rejects_bad_budgets() -> None:
    space = SearchSpace.tiny()
    budget = 1.5e6
    sampler = small_sampler(space, constraints={"flops": budget})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(synthetic(space), n_trials=10)
    assert all(p.costs["flops"] <= budget for p in sampler.search(study, n=5))
    # {} is no budget; the objective rewards FLOPs, so the best predicted pairs break this one.
    assert any(p.costs["flops"] > budget for p in sampler.search(study, constraints={}, n=5))
    with pytest.raises(ValueError, match="finite"):
        sampler.search(study, constraints={"flops": float("nan")})
    with pytest.raises(ValueError, match="Unknown constraint"):
        sampler.search(study, constraints={"latency": 1.0})

    generic = small_sampler({"x": D.FloatDistribution(0, 1)})
    other = optuna.create_study(sampler=generic)
    other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=6)
    with pytest.raises(ValueError, match="proxy_metrics"):
        generic.search(other, constraints={"size": 1.0})


def test_search_on_an_empty_study_says_what_is_missing() -> None:
    space = SearchSpace.tiny()
    sampler = small_sampler(space)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with pytest.raises(ValueError, match="labelled trials"):
        sampler.search(study)
    study.enqueue_trial(space.values_to_params(space.sample_values(1, seed=0))[0])
    study.optimize(lambda t: (space.suggest(t), float("nan"))[1], n_trials=1)
    with pytest.raises(ValueError, match="at least two labelled trials"):
        sampler.search(study)


# ---- global state and shared storage -------------------------------------------------------------


def test_torch_thread_count_survives_interleaved_fits() -> None:
    import torch

    from optuna_nars.predictor._plumbing import torch_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

        def first() -> None:
            with torch_threads(1):
                a_in.set()
                b_in.wait(5)
            a_out.set()

        def second() -> None:
            a_in.wait(5)
            with torch_threads(1):
                b_in.set()
                a_out.wait(5)

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_shorter_rewrite_of_a_chunked_attribute_leaves_nothing_stale() -> None:
    from optuna_nars._storage import get_chunked, set_trial_chunked

    study = optuna.create_study()
    trial = study.ask()
    storage = study._storage
    set_trial_chunked(storage, trial._trial_id, "k", "a" * 5000)
    set_trial_chunked(storage, trial._trial_id, "k", "[1, 2]")
    assert get_chunked(storage.get_trial_system_attrs(trial._trial_id), "k") == "[1, 2]"


def test_an_unreadable_claim_of_another_worker_does_not_break_sampling() -> None:
    space = SearchSpace.tiny()
    study = optuna.create_study(direction="maximize", sampler=small_sampler(space))
    other = study.ask()
    study._storage.set_trial_system_attr(other._trial_id, "nars:x", 1)
    study._storage.set_trial_system_attr(other._trial_id, "nars:x:0", "[0.1, 0.2")  # torn write
    study.optimize(synthetic(space), n_trials=3)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3


def test_constraint_values_are_finite_numbers() -> None:
    space = SearchSpace.tiny()
    study = optuna.create_study(direction="maximize",
                                sampler=small_sampler(space, constraints={"flops": 1.5e6}))
    study.optimize(synthetic(space), n_trials=3)
    assert all(math.isfinite(v) for t in study.trials for v in t.constraints.values())


# ---- sampler correctness: claims, constraints, spaces without an architecture --------------------


def test_more_jobs_than_warm_start_trials_fail_no_trial() -> None:
    space = SearchSpace.tiny()
    study = optuna.create_study(direction="maximize",
                                sampler=small_sampler(space, n_startup_trials=4))
    objective = synthetic(space)

    def slow(trial: optuna.Trial) -> float:
        value = objective(trial)
        time.sleep(0.2)  # keeps six trials running while none has a label
        return value

    study.optimize(slow, n_trials=12, n_jobs=6)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 12
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 12


def test_a_fully_enqueued_trial_is_claimed_with_its_constraints_before_it_runs() -> None:
    space = SearchSpace.tiny()
    budget = 1.5e6
    study = optuna.create_study(direction="maximize",
                                sampler=small_sampler(space, constraints={"flops": budget}))
    params = space.values_to_params(space.sample_values(1, seed=5))[0]
    study.enqueue_trial(params)
    trial = study.ask()
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.constraints["flops"] == pytest.approx(flops_of(space, params) - budget)
    follower = study.ask()
    space.suggest(follower)
    assert follower.params != params  # the enqueued row is taken while it runs


def test_a_callable_constraint_with_several_values_records_each() -> None:
    def two(params: dict) -> list[float]:
        return [params["x"] - 0.5, params["y"] - 0.5]

    def one(params: dict) -> list[float]:
        return [params["x"] - 0.5]

    dists = {"x": D.FloatDistribution(0, 1), "y": D.FloatDistribution(0, 1)}
    for constraint, names in [(two, ["constraint_0", "constraint_1"]), (one, ["constraint"])]:
        study = optuna.create_study(sampler=small_sampler(dists, constraints=constraint))
        study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1),
                       n_trials=3)
        for t in study.trials:
            assert t.state == TrialState.COMPLETE
            assert sorted(t.constraints) == names
            assert list(t.constraints.values()) == pytest.approx(constraint(t.params))


def test_generic_recipe_only_space_with_proxy_metrics_reaches_the_genetic_search() -> None:
    sampler = small_sampler({"lr": D.FloatDistribution(1e-3, 1, log=True),
                             "wd": D.FloatDistribution(1e-6, 1e-3, log=True)},
                            architecture_params=[], proxy_metrics=lambda p: {"size": 1.0},
                            n_rounds=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (np.log10(t.suggest_float("lr", 1e-3, 1, log=True)) + 1) ** 2
                   + t.suggest_float("wd", 1e-6, 1e-3, log=True), n_trials=9)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert {t.user_attrs["nars:stage"] for t in study.trials} == {"qmc", "predictor", "evolution"}


def test_a_claim_waits_for_a_higher_numbered_rival_s_verdict() -> None:
    from optuna_nars.samplers._claims import keeps

    def reads(*answers: list[tuple[int, bool]]):
        return iter(answers).__next__

    assert keeps(reads([]), 3)  # alone
    assert not keeps(reads([(2, False)]), 3)  # a lower-numbered rival keeps it
    assert not keeps(reads([(5, True)]), 3)  # a higher-numbered rival settled before seeing it
    assert keeps(reads([(5, False)], [(5, False)], []), 3)  # the higher one moved off


def _lockstep_sampler(barrier: threading.Barrier, space: SearchSpace, **settings) -> NARSSampler:
    """A sampler whose claims go in lockstep with another's: both read the study before either
    writes its claim, both write before either re-reads (two workers ranking alike)."""

    def wait() -> None:
        # Broken once the other worker is done: no more lockstep.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()

    class Lockstep(NARSSampler):
        def _publish(self, *args):
            wait()
            super()._publish(*args)

        def _holders(self, *args):
            wait()
            return super()._holders(*args)

    return Lockstep(space, **settings)


def test_workers_ranking_alike_in_lockstep_never_share_a_candidate() -> None:
    space = SearchSpace.tiny()
    settings = dict(constraints={"flops": 1.5e6}, pool_size=1024, seed=0)
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="lockstep", storage=storage)
    barrier = threading.Barrier(2, timeout=10)
    studies = [optuna.load_study(study_name="lockstep", storage=storage,
                                 sampler=_lockstep_sampler(barrier, space, **settings))
               for _ in range(2)]
    trials = [study.ask() for study in studies]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            space.suggest(trials[i])
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)
        finally:
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a claim never settled"
    assert not errors
    assert trials[0].params != trials[1].params
    # Of the two, the lower-numbered trial kept the candidate both wanted.
    alone = optuna.create_study(sampler=NARSSampler(space, **settings)).ask()
    space.suggest(alone)
    assert trials[0].params == alone.params
