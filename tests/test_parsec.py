"""PARSECSampler: Optuna's contract, storage-derived state across processes, budgets, the update
rule, FP-NAS's adaptive sample counts, and the distribution's transfer."""

from __future__ import annotations

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
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)

from optuna_nars import PARSECSampler, SearchSpace
from optuna_nars.samplers.parsec._distribution import Distribution, Structure
from optuna_nars.samplers.parsec._update import step
from optuna_nars.space import ParamSpace

CHOICES = ("a", "b", "c")
SPACE = {f"layer{i}": CategoricalDistribution(CHOICES) for i in range(6)}


def count_a(trial: optuna.Trial) -> float:
    """The number of layers set to ``"a"``: the rewarded choice."""
    return float(sum(trial.suggest_categorical(name, CHOICES) == "a" for name in SPACE))


class TestOptunaSamplerContract(
    BasicSamplerTestCase, RelativeSamplerTestCase, SingleOnlySamplerTestCase
):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: PARSECSampler(seed=0, n_samples=2, warn_independent_sampling=False)


# ---- the update rule ------------------------------------------------------------------------


def test_step_moves_probability_toward_the_rewarded_choice() -> None:
    structure = Structure.of(ParamSpace.from_distributions(SPACE))
    dist = Distribution.uniform(structure)
    indices = np.array([[0] * 6, [1] * 6, [2] * 6, [1] * 6])
    step(dist, indices, np.array([3.0, 1.0, 0.0, 1.0]), learning_rate=1.0, temperature=1.0,
         coarse=False)
    for p in dist.probabilities():
        assert p[0] > 1 / 3 > p[2]
    before = [v.copy() for v in dist.logits]
    step(dist, indices, np.ones(4), learning_rate=1.0, temperature=1.0, coarse=False)
    assert all(np.array_equal(a, b) for a, b in zip(before, dist.logits, strict=True))


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_study_learns_the_rewarded_choice(direction: str) -> None:
    sampler = PARSECSampler(SPACE, n_samples=4, seed=1)
    study = optuna.create_study(direction=direction, sampler=sampler)
    sign = 1.0 if direction == "maximize" else -1.0
    study.optimize(lambda t: sign * count_a(t), n_trials=60)
    dist = sampler.distribution(study)
    assert set(dist) == set(SPACE)
    assert np.mean([dist[name]["a"] for name in SPACE]) > 0.6
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in dist.values())


# ---- FP-NAS ---------------------------------------------------------------------------------


def test_adaptive_sample_counts_shrink_as_the_distribution_sharpens() -> None:
    sampler = PARSECSampler(SPACE, n_samples=8, min_samples=2, fpnas=True, coarse_updates=2,
                            seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(count_a, n_trials=80)
    history = sampler.history(study)
    sizes = [u.n_samples for u in history]
    entropies = [u.entropy for u in history]
    assert sizes[0] == 8 and sizes[-1] < sizes[0]
    assert entropies[-1] < entropies[0]
    # The batch size never grows while the entropy falls: it is a function of the entropy.
    order = np.argsort(entropies)
    assert all(np.diff(np.array(sizes)[order]) >= 0)
    assert [u.coarse for u in history[:3]] == [True, True, False]
    # PARSEC's fixed count, on the same study.
    fixed = PARSECSampler(SPACE, n_samples=8, seed=0)
    assert {u.n_samples for u in fixed.history(study)} == {8}


def test_coarse_phase_shares_one_distribution_across_layers() -> None:
    sampler = PARSECSampler(SPACE, n_samples=4, coarse_to_fine=True, coarse_updates=100,
                            seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(count_a, n_trials=24)
    dist = sampler.distribution(study)
    first = dist["layer0"]
    assert first["a"] > 1 / 3
    assert all(dist[name] == pytest.approx(first) for name in SPACE)


# ---- the distribution's transfer ------------------------------------------------------------


def test_distribution_round_trips_through_prior() -> None:
    sampler = PARSECSampler(SPACE, n_samples=4, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(count_a, n_trials=20)
    learnt = sampler.distribution(study)
    fresh = PARSECSampler(SPACE, prior=learnt, seed=0)
    new_study = optuna.create_study(direction="maximize", sampler=fresh)
    carried = fresh.distribution(new_study)
    for name in SPACE:
        assert carried[name] == pytest.approx(learnt[name])


def test_prior_gives_missing_choices_a_uniform_share() -> None:
    sampler = PARSECSampler({"x": CategoricalDistribution(CHOICES), "y": SPACE["layer0"]},
                            prior={"x": {"a": 0.9, "b": 0.1, "z": 5.0}, "other": {"q": 1.0}})
    dist = sampler.distribution(optuna.create_study(sampler=sampler))
    assert dist["x"] == pytest.approx({"a": 0.6, "b": 0.2 / 3, "c": 1 / 3})
    assert dist["y"] == pytest.approx(dict.fromkeys(CHOICES, 1 / 3))


@pytest.mark.parametrize(
    "prior", [[("x", 1)], {"x": {"a": -1.0}}, {"x": dict.fromkeys(CHOICES, 0)}]
)
def test_bad_priors_are_refused(prior: object) -> None:
    with pytest.raises(ValueError, match="prior"):
        sampler = PARSECSampler({"x": CategoricalDistribution(CHOICES)}, prior=prior)
        sampler.distribution(optuna.create_study(sampler=sampler))


# ---- budgets --------------------------------------------------------------------------------

WIDTHS = {f"w{i}": IntDistribution(0, 3) for i in range(5)}


def width_cost(params: dict) -> dict[str, float]:
    return {"cost": float(sum(params[name] for name in WIDTHS))}


def test_budget_is_never_violated_while_reward_pulls_against_it() -> None:
    sampler = PARSECSampler(WIDTHS, constraints={"cost": 6}, proxy_metrics=width_cost,
                            fpnas=True, n_samples=4, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: sum(t.suggest_int(n, 0, 3) for n in WIDTHS), n_trials=60)
    assert all(width_cost(t.params)["cost"] <= 6 for t in study.trials)
    assert all(t.system_attrs["constraints:cost"] <= 0 for t in study.trials)
    assert max(t.value for t in study.trials) == 6
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == len(keys)


def test_no_feasible_mass_is_an_error_naming_the_budget() -> None:
    # Feasible models need w0 = 0; the prior gives it probability 0.
    prior = {"w0": {0: 0.0, 1: 0.5, 2: 0.25, 3: 0.25}}
    sampler = PARSECSampler(WIDTHS, constraints=lambda p: [p["w0"] - 0.5], prior=prior)
    study = optuna.create_study(sampler=sampler)
    with pytest.raises(ValueError, match=r"prior gives probability 0.*constraint"):
        study.optimize(lambda t: sum(t.suggest_int(n, 0, 3) for n in WIDTHS), n_trials=1)
    with pytest.raises(ValueError, match="flops"):
        PARSECSampler(SearchSpace.tiny(), constraints={"flops": 1.0})


def test_bad_arguments_name_the_fix() -> None:
    with pytest.raises(ValueError, match="n_samples"):
        PARSECSampler(n_samples=0)
    with pytest.raises(ValueError, match="min_samples"):
        PARSECSampler(n_samples=4, min_samples=5)
    with pytest.raises(ValueError, match="learning_rate"):
        PARSECSampler(learning_rate=0)
    with pytest.raises(ValueError, match="adaptive_samples"):
        PARSECSampler(adaptive_samples="yes")  # type: ignore[arg-type]


def test_other_parameters_are_sampled_independently() -> None:
    space = {**SPACE, "lr": FloatDistribution(1e-4, 1e-1, log=True)}
    sampler = PARSECSampler(space, n_samples=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: count_a(t) - abs(np.log10(t.suggest_float("lr", 1e-4, 1e-1,
                                                                       log=True)) + 2),
                   n_trials=10)
    assert set(sampler.distribution(study)) == set(SPACE)
    assert len({t.params["lr"] for t in study.trials}) == 10


# ---- several processes on one storage -------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys, time, optuna
    from optuna.distributions import CategoricalDistribution
    from optuna_nars import PARSECSampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    {storage}
    SPACE = {{f"layer{{i}}": CategoricalDistribution(("a", "b", "c")) for i in range(6)}}

    def objective(trial):
        time.sleep(0.02)  # overlap with the other workers
        return sum(trial.suggest_categorical(n, ("a", "b", "c")) == "a" for n in SPACE)

    sampler = PARSECSampler(SPACE, n_samples=4, fpnas=True, seed=0)
    study = optuna.load_study(study_name={name!r}, storage=make_storage(), sampler=sampler)
    if {n_trials}:
        study.optimize(objective, n_trials={n_trials})
    else:  # print the next proposal and the distribution
        print(study.ask(SPACE).params, sorted(sampler.distribution(study)["layer0"].items()))
    """
)


def _journal(path: Path) -> str:
    return ("from optuna.storages import JournalStorage\n"
            "from optuna.storages.journal import JournalFileBackend\n"
            f"def make_storage(): return JournalStorage(JournalFileBackend({str(path)!r}))")


def _run(storage_code: str, name: str, n_workers: int, n_trials: int, tmp_path: Path) -> list[str]:
    script = tmp_path / f"worker-{uuid.uuid4().hex}.py"
    script.write_text(WORKER.format(storage=storage_code, name=name, n_trials=n_trials))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(n_workers)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outs.append(out)
    return outs


def _three_workers_then_resume(storage_code: str, storage: optuna.storages.BaseStorage,
                               tmp_path: Path, copy: Callable[[], str] | None = None) -> None:
    """Three workers share a study, then a new process proposes what a new sampler in this
    process proposes (on a copy of the storage, when ``copy`` makes one), and the study goes
    on from where it stands."""
    name = f"parsec-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=storage, direction="maximize")
    _run(storage_code, name, n_workers=3, n_trials=8, tmp_path=tmp_path)
    study = optuna.load_study(study_name=name, storage=storage, sampler=_worker_sampler())
    if copy is not None:
        other = _run(copy(), name, n_workers=1, n_trials=0, tmp_path=tmp_path)[0]
        here = study.ask(SPACE).params
        sampler = study.sampler
        assert isinstance(sampler, PARSECSampler)
        assert other == f"{here} {sorted(sampler.distribution(study)['layer0'].items())}\n"
        study.tell(study.trials[-1].number, count_a(optuna.trial.FixedTrial(here)))
    study.optimize(count_a, n_trials=4)
    trials = study.trials
    assert len(trials) == 28 + (copy is not None)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    keys = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(keys)) == len(keys), "two workers evaluated the same candidate"
    assert sum(u.n_samples for u in _worker_sampler().history(study)) >= len(trials) - 4


def _worker_sampler() -> PARSECSampler:
    return PARSECSampler(SPACE, n_samples=4, fpnas=True, seed=0)


def test_journal_three_workers_then_a_new_process_resumes(tmp_path: Path) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path, copied = tmp_path / "journal.log", tmp_path / "copy.log"

    def copy() -> str:
        shutil.copy(path, copied)
        return _journal(copied)

    storage = JournalStorage(JournalFileBackend(str(path)))
    _three_workers_then_resume(_journal(path), storage, tmp_path, copy)


def test_postgres_three_workers_then_resume(tmp_path: Path) -> None:
    url = os.environ.get("OPTUNA_NARS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("OPTUNA_NARS_TEST_POSTGRES_URL is not set")
    code = f"def make_storage(): return {url!r}"
    _three_workers_then_resume(code, optuna.storages.RDBStorage(url), tmp_path)
