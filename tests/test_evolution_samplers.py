"""RegularizedEvolutionSampler and REINFORCESampler: Optuna's contract, storage-derived state,
workers sharing a study, budgets, and the mechanics of aging, tournaments and the policy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)
from optuna.trial import TrialState

from optuna_nars import RegularizedEvolutionSampler, REINFORCESampler, SearchSpace
from optuna_nars._keys import LABEL_STEP_KEY, STAGE_KEY
from optuna_nars.samplers._context import SpaceContext, read_rows
from optuna_nars.samplers._history import completed_history
from optuna_nars.samplers.evolution._aging import population, tournament_winners
from optuna_nars.samplers.reinforce._policy import Bins, Policy
from optuna_nars.space import ParamSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

SAMPLERS = {
    "evolution": lambda **kw: RegularizedEvolutionSampler(
        **{"population_size": 4, "sample_size": 2, **kw}),
    "reinforce": lambda **kw: REINFORCESampler(**{"learning_rate": 0.05, **kw}),
}

# 4 parameters x 4 choices (256 rows) and a float outside nothing: small, fast, not exhausted.
SPACE = {f"x{i}": CategoricalDistribution([0, 1, 2, 3]) for i in range(4)}


def objective(trial: optuna.Trial) -> float:
    return float(sum(trial.suggest_categorical(f"x{i}", [0, 1, 2, 3]) for i in range(4)))


class TestEvolutionContract(BasicSamplerTestCase, RelativeSamplerTestCase,
                            SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: RegularizedEvolutionSampler(population_size=3, sample_size=2,
                                                   warn_independent_sampling=False)


class TestReinforceContract(BasicSamplerTestCase, RelativeSamplerTestCase,
                            SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: REINFORCESampler(warn_independent_sampling=False)


# ---- storage-derived state ----------------------------------------------------------------------

NEXT_PROPOSALS = textwrap.dedent(
    """
    import json, sys, optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    sys.path.insert(0, {tests!r})
    from test_evolution_samplers import SAMPLERS, SPACE
    out = {{}}
    for kind in SAMPLERS:
        storage = JournalStorage(JournalFileBackend({path!r}))
        study = optuna.load_study(study_name=kind, storage=storage,
                                  sampler=SAMPLERS[kind](search_space=SPACE, seed=7))
        out[kind] = study.ask().params
    print(json.dumps(out))
    """
)


def test_a_fresh_process_makes_the_same_next_proposal(tmp_path: Path) -> None:
    path, copy = tmp_path / "journal.log", tmp_path / "copy.log"
    studies = {}
    for kind, make in SAMPLERS.items():
        studies[kind] = optuna.create_study(
            study_name=kind, direction="maximize", sampler=make(search_space=SPACE, seed=7),
            storage=JournalStorage(JournalFileBackend(str(path))))
        studies[kind].optimize(objective, n_trials=12)
    shutil.copy(path, copy)
    original = {kind: study.ask().params for kind, study in studies.items()}  # warm caches
    script = NEXT_PROPOSALS.format(tests=str(Path(__file__).parent), path=str(copy))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == original


def test_history_is_in_completion_order_and_uses_the_label_step() -> None:
    study = optuna.create_study(direction="minimize")
    trials = [study.ask({"x": CategoricalDistribution([0, 1, 2])}) for _ in range(3)]
    for t, early in zip(trials, [1.0, 3.0, 2.0], strict=True):
        t.report(early, step=1)
    for i in (2, 0, 1):  # finish out of number order
        study.tell(trials[i], [5.0, 6.0, 7.0][i])
    ctx = SpaceContext(ParamSpace.from_distributions({"x": CategoricalDistribution([0, 1, 2])}),
                       None, [], lambda v: np.zeros((len(v), 0)), None)
    history = completed_history(study, ctx, read_rows(study, ctx, exclude=None))
    assert history.numbers == [2, 0, 1]
    assert history.y.tolist() == [-7.0, -5.0, -6.0]  # signed: larger is better
    study._storage.set_study_system_attr(study._study_id, LABEL_STEP_KEY, 1)
    history = completed_history(study, ctx, read_rows(study, ctx, exclude=None))
    assert history.y.tolist() == [-2.0, -1.0, -3.0]  # the values at the label step


# ---- workers sharing a study --------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys, time, optuna
    sys.path.insert(0, {tests!r})
    from test_evolution_samplers import SAMPLERS, SPACE, objective
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def slow(trial):
        time.sleep(0.02)  # overlap with the other workers
        return objective(trial)

    for kind in SAMPLERS:
        study = optuna.load_study(study_name={name!r} + kind, storage=make_storage(),
                                  sampler=SAMPLERS[kind](search_space=SPACE, seed=3))
        study.optimize(slow, n_trials={n_trials})
    """
)


def _run_workers(code: str, name: str, n_workers: int, n_trials: int, tmp_path: Path) -> None:
    script = code + WORKER.format(tests=str(Path(__file__).parent), name=name, n_trials=n_trials)
    path = tmp_path / f"worker-{uuid.uuid4().hex}.py"
    path.write_text(script)
    procs = [subprocess.Popen([sys.executable, str(path)], stderr=subprocess.PIPE, text=True)
             for _ in range(n_workers)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


def _check(storage: optuna.storages.BaseStorage, name: str, expected: int) -> list[str]:
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert len(trials) == expected
    assert all(t.state == TrialState.COMPLETE for t in trials)
    keys = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(keys)) == len(keys), "two workers evaluated the same candidate"
    return [t.user_attrs.get(STAGE_KEY) for t in trials]


def _three_workers_then_resume(code: str, storage: optuna.storages.BaseStorage,
                               tmp_path: Path) -> None:
    name = f"evo-{uuid.uuid4().hex[:8]}-"
    for kind in SAMPLERS:
        optuna.create_study(study_name=name + kind, storage=storage, direction="maximize")
    _run_workers(code, name, n_workers=3, n_trials=6, tmp_path=tmp_path)
    for kind in SAMPLERS:
        _check(storage, name + kind, 18)
    _run_workers(code, name, n_workers=1, n_trials=4, tmp_path=tmp_path)  # a fresh process
    stages = _check(storage, name + "evolution", 22)
    assert stages[-1] == "evolution"  # the population (4) has long been full
    _check(storage, name + "reinforce", 22)


def test_journal_three_workers_and_a_resume(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    code = (
        "from optuna.storages import JournalStorage\n"
        "from optuna.storages.journal import JournalFileBackend\n"
        f"def make_storage(): return JournalStorage(JournalFileBackend({str(path)!r}))\n"
    )
    _three_workers_then_resume(code, JournalStorage(JournalFileBackend(str(path))), tmp_path)


def test_postgres_three_workers_and_a_resume(tmp_path: Path) -> None:
    url = os.environ.get("OPTUNA_NARS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("OPTUNA_NARS_TEST_POSTGRES_URL is not set")
    code = f"def make_storage(): return {url!r}\n"
    _three_workers_then_resume(code, optuna.storages.RDBStorage(url), tmp_path)


# ---- budgets and arguments ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SAMPLERS))
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_constraints_are_never_violated(kind: str, direction: str) -> None:
    def budget(params: dict) -> list[float]:
        return [sum(params[f"x{i}"] for i in range(4)) - 5.0]

    sampler = SAMPLERS[kind](search_space=SPACE, constraints=budget, seed=1)
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(objective, n_trials=40)
    assert all(budget(t.params)[0] <= 0 for t in study.trials)
    recorded = [t.system_attrs["constraints:constraint"] for t in study.trials]
    assert recorded == [budget(t.params)[0] for t in study.trials]


@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_a_budget_no_candidate_meets_fails_at_construction(kind: str) -> None:
    with pytest.raises(ValueError, match="constraint"):
        SAMPLERS[kind](search_space=SearchSpace.tiny(), constraints={"flops": 1000})


@pytest.mark.parametrize(("cls", "kwargs", "match"), [
    (RegularizedEvolutionSampler, {"population_size": 3, "sample_size": 5}, "sample_size"),
    (RegularizedEvolutionSampler, {"population_size": 0}, "population_size"),
    (REINFORCESampler, {"learning_rate": 0.0}, "learning_rate"),
    (REINFORCESampler, {"baseline_momentum": 1.0}, "baseline_momentum"),
    (REINFORCESampler, {"n_bins": 1}, "n_bins"),
])
def test_bad_arguments_name_the_problem(cls: type, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


# ---- the mechanics ------------------------------------------------------------------------------

CUBE = {f"x{i}": CategoricalDistribution([0, 1, 2, 3, 4]) for i in range(3)}


def _hamming(a: dict, b: tuple) -> int:
    return sum(a[f"x{i}"] != v for i, v in enumerate(b))


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_aging_removes_the_oldest_even_when_it_is_the_best(direction: str) -> None:
    sign = 1.0 if direction == "maximize" else -1.0
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(direction=direction, storage=storage)
    # The oldest member is by far the best; no neighbour of it is a neighbour of the others.
    best, others = (0, 0, 0), [(4, 4, 4), (4, 4, 3), (4, 3, 4)]

    def tell(row: tuple, value: float) -> None:
        study.enqueue_trial({f"x{i}": v for i, v in enumerate(row)})
        study.tell(study.ask(CUBE), sign * value)

    for row, value in [(best, 100.0), (others[0], 1.0), (others[1], 2.0)]:
        tell(row, value)

    def children(n_seeds: int) -> list[dict]:
        out = []
        for seed in range(n_seeds):
            sampler = RegularizedEvolutionSampler(CUBE, population_size=3, sample_size=3,
                                                  seed=seed)
            trial = optuna.load_study(study_name=study.study_name, storage=storage,
                                      sampler=sampler).ask(CUBE)
            out.append(trial.params)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return out

    # While it lives, the best wins most tournaments (it is in 1 - (2/3)^3 of the samples).
    assert sum(_hamming(c, best) == 1 for c in children(10)) >= 4
    tell(others[2], 0.0)  # the best ages out
    for child in children(10):
        assert _hamming(child, best) >= 2  # never again a parent
        assert min(_hamming(child, o) for o in others) == 1  # a mutation of a living member


def test_population_is_the_latest_trials() -> None:
    from optuna_nars.samplers._history import History

    history = History(list(range(7)), np.zeros((7, 1)), np.arange(7.0), np.ones(7, bool))
    assert population(history, 3).tolist() == [4, 5, 6]
    assert population(history, 10).tolist() == list(range(7))


def test_a_tournament_picks_the_best_of_its_sample() -> None:
    rng = np.random.default_rng(0)
    fitness = rng.normal(size=20)
    samples = rng.integers(20, size=(200, 3))
    winners = tournament_winners(fitness, samples)
    for sample, winner in zip(samples, winners, strict=True):
        assert winner in sample and fitness[winner] == fitness[sample].max()


def test_the_policy_moves_toward_a_rewarded_choice() -> None:
    space = ParamSpace.from_distributions({"a": CategoricalDistribution(["p", "q", "r"]),
                                           "b": FloatDistribution(0.0, 1.0)})
    policy = Policy.uniform(space, n_bins=4, learning_rate=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(30):
        row = policy.sample(1, rng)[0]
        # choice "r" (index 2) and the top quarter of b are rewarded
        policy.update(row, float(row[0] == 2) + float(row[1] >= 0.75))
    p_a, p_b = policy.probabilities()
    assert p_a[2] > 0.5 and p_a.argmax() == 2
    assert p_b[3] > 0.4 and p_b.argmax() == 3


def test_bins_cover_values_and_ranges() -> None:
    small = Bins(ParamSpace.from_distributions({"n": IntDistribution(2, 8, step=2)}).params[0].dim,
                 n_bins=10)
    assert small.k == 4 and small.actions(np.array([2.0, 8.0])).tolist() == [0, 3]
    wide = Bins(ParamSpace.from_distributions(
        {"lr": FloatDistribution(1e-4, 1.0, log=True)}).params[0].dim, n_bins=4)
    values = wide.values(np.array([0, 3]), np.random.default_rng(0))
    assert 1e-4 <= values[0] <= 1e-3 and 0.1 <= values[1] <= 1.0
    assert wide.actions(values).tolist() == [0, 3]


def test_reinforce_learns_on_a_tiny_problem() -> None:
    sampler = REINFORCESampler(SPACE, learning_rate=0.1, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=40)
    probabilities = sampler.policy_probabilities(study)
    assert set(probabilities) == set(SPACE)
    # sum of choices is rewarded: the top choice gains on every parameter
    assert all(p[3] > 0.25 and p[3] > p[0] for p in probabilities.values())
    fresh = REINFORCESampler(SPACE, learning_rate=0.1, seed=0)
    for name, p in fresh.policy_probabilities(study).items():  # derived from the storage
        np.testing.assert_allclose(p, probabilities[name])
