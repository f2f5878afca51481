"""LayerNASSampler: Optuna's contract, the budget, the memo table, several processes."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)

from optuna_nars import LayerNASSampler, SearchSpace, trial_labels
from optuna_nars._keys import LABEL_STEP_KEY, LAYER_ATTR, STAGE_KEY
from optuna_nars.cost import space_costs

# A synthetic layer-wise problem with a known optimum: 4 layers x 4 widths. Wider layers are
# better with diminishing returns, earlier layers matter more, and cost is the total width.
N_LAYERS = 4
WIDTHS = (1, 2, 3, 4)
LAYERS = [[f"l{i}"] for i in range(N_LAYERS)]
DISTRIBUTIONS = {f"l{i}": CategoricalDistribution(WIDTHS) for i in range(N_LAYERS)}
BUDGET = 10.0


def synthetic_cost(params: dict) -> float:
    return float(sum(params[f"l{i}"] for i in range(N_LAYERS)))


def synthetic_reward(params: dict) -> float:
    return float(sum((N_LAYERS - i) * np.sqrt(params[f"l{i}"]) for i in range(N_LAYERS)))


def synthetic_optimum(budget: float) -> float:
    rows = [dict(zip(DISTRIBUTIONS, ws, strict=True))
            for ws in itertools.product(WIDTHS, repeat=N_LAYERS)]
    return max(synthetic_reward(p) for p in rows if synthetic_cost(p) <= budget)


def synthetic_objective(trial: optuna.Trial) -> float:
    params = {name: trial.suggest_categorical(name, WIDTHS) for name in DISTRIBUTIONS}
    return synthetic_reward(params)


def synthetic_sampler(**kwargs) -> LayerNASSampler:
    defaults = dict(search_space=DISTRIBUTIONS, layers=LAYERS, cost=synthetic_cost,
                    constraints={"cost": BUDGET}, seed=0)
    return LayerNASSampler(**{**defaults, **kwargs})


class TestOptunaSamplerContract(
    BasicSamplerTestCase, RelativeSamplerTestCase, SingleOnlySamplerTestCase
):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: LayerNASSampler(warn_independent_sampling=False, max_layer_options=16)


def test_reaches_the_known_optimum_layer_by_layer() -> None:
    study = optuna.create_study(direction="maximize", sampler=synthetic_sampler())
    study.optimize(synthetic_objective, n_trials=60)
    assert study.best_value == pytest.approx(synthetic_optimum(BUDGET))
    layers = [t.user_attrs[LAYER_ATTR] for t in study.trials if LAYER_ATTR in t.user_attrs]
    # Sequentially, a layer starts once the one before is done.
    assert layers == sorted(layers) and set(layers) == set(range(N_LAYERS))
    # Polynomial, not exponential: far fewer candidates than the 4^4 models.
    assert len(layers) < 4**N_LAYERS / 2
    # The first trial is the default model: every layer at its cheapest option.
    assert study.trials[0].params == {name: 1 for name in DISTRIBUTIONS}


def test_a_log_int_layer_offers_every_value() -> None:
    # The options were once the values at the cells' centres on a linear scale, which on a log
    # range repeat some values and leave others out (34 of 1..64): a random fallback met them.
    space = {"units": optuna.distributions.IntDistribution(1, 64, log=True)}
    sampler = LayerNASSampler(search_space=space, layers=[["units"]], seed=0,
                              cost=lambda p: float(p["units"]), constraints={"cost": 64.0},
                              max_layer_options=64)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: -abs(t.suggest_int("units", 1, 64, log=True) - 40), n_trials=64)
    assert {t.params["units"] for t in study.trials} == set(range(1, 65))
    assert {t.user_attrs[STAGE_KEY] for t in study.trials} == {"layer"}


def test_the_budget_is_never_broken_and_recorded() -> None:
    study = optuna.create_study(direction="maximize", sampler=synthetic_sampler(
        constraints={"cost": 7.0}))
    # Past the layer-wise search (random fallback) and past the feasible space (repeats).
    study.optimize(synthetic_objective, n_trials=40)
    assert all(synthetic_cost(t.params) <= 7.0 for t in study.trials)
    assert all(t.system_attrs["constraints:cost"] <= 0 for t in study.trials)
    n_feasible = sum(synthetic_cost(dict(zip(DISTRIBUTIONS, ws, strict=True))) <= 7.0
                     for ws in itertools.product(WIDTHS, repeat=N_LAYERS))
    keys = [tuple(t.params.values()) for t in study.trials]
    assert len(set(keys[:n_feasible])) == n_feasible  # every feasible model once, then repeats
    assert {t.user_attrs[STAGE_KEY] for t in study.trials[n_feasible:]} == {"repeat"}


def test_search_space_stages_are_layers_under_a_flops_budget() -> None:
    space = SearchSpace.tiny()
    flops = space_costs(space, space.param_space.sample_values(2000, seed=0))["flops"]
    budget = float(np.quantile(flops, 0.3))
    sampler = LayerNASSampler(space, constraints={"flops": budget}, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        candidate = space.suggest(trial)
        return float(sum(s.channels * s.depth for s in candidate.architecture.stages))

    study.optimize(objective, n_trials=30)
    values = space.params_to_values([t.params for t in study.trials])
    assert np.all(space_costs(space, values)["flops"] <= budget)
    first = [t.user_attrs[LAYER_ATTR] for t in study.trials]
    assert first[0] == 0 and max(first) >= 1
    # The recipe is not a stage: it holds one default while the stages are searched.
    lrs = {t.params["recipe.lr_factor"] for t in study.trials}
    assert len(lrs) == 1


def test_an_impossible_budget_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="meets the constraints"):
        synthetic_sampler(constraints={"cost": 3.0})  # the cheapest model costs 4
    with pytest.raises(ValueError, match="meets the constraints"):
        LayerNASSampler(SearchSpace.tiny(), constraints={"flops": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(layers="l0"), "list of parameter-name groups"),
        (dict(layers=[["l0"], ["l0", "l1"]]), "more than one group"),
        (dict(layers=[["nope"]]), "not in the search space"),
        (dict(cost=3), "cost must be"),
        (dict(cost="latency", constraints=None), "no cost model"),
        (dict(n_buckets=0), "n_buckets"),
        (dict(candidates_per_bucket=0), "candidates_per_bucket"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        synthetic_sampler(**kwargs)


def test_same_seed_same_trials() -> None:
    def run(seed: int) -> list[dict]:
        sampler = LayerNASSampler(SearchSpace.tiny(), seed=seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(lambda t: len(str(SearchSpace.tiny().suggest(t))), n_trials=12)
        return [t.params for t in study.trials]

    assert run(3) == run(3)
    assert run(3) != run(4)  # the sampled recipe options come from the seed


def test_pickled_sampler_continues_the_same_search() -> None:
    import pickle

    study = optuna.create_study(direction="maximize", sampler=synthetic_sampler())
    study.optimize(synthetic_objective, n_trials=10)
    reference = optuna.create_study(direction="maximize", sampler=synthetic_sampler())
    reference.optimize(synthetic_objective, n_trials=15)
    study.sampler = pickle.loads(pickle.dumps(study.sampler))
    study.optimize(synthetic_objective, n_trials=5)
    assert [t.params for t in study.trials] == [t.params for t in reference.trials]


def test_labels_follow_the_early_stopping_pruners_label_step() -> None:
    """Candidates are kept by their label at the label step (what EarlyStoppingPruner fixes),
    not by their final value."""
    study = optuna.create_study(direction="maximize", sampler=synthetic_sampler())
    study._storage.set_study_system_attr(study._study_id, LABEL_STEP_KEY, 2)

    def objective(trial: optuna.Trial) -> float:
        value = synthetic_objective(trial)
        for step in range(4):
            trial.report(value * (step + 1), step)
        return -value  # a final value that disagrees with the curve

    study.optimize(objective, n_trials=60)
    labels = trial_labels(study)
    best = max(labels, key=labels.__getitem__)
    assert synthetic_reward(study.trials[best].params) == pytest.approx(
        synthetic_optimum(BUDGET))
    assert study.best_value > -synthetic_optimum(BUDGET)  # the final values were not chased


WORKER = textwrap.dedent(
    """
    import sys, time, optuna
    sys.path.insert(0, {tests!r})
    from test_layernas import synthetic_objective, synthetic_sampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        time.sleep(0.02)  # overlap with the other workers
        return synthetic_objective(trial)

    study = optuna.load_study(study_name={name!r}, storage=make_storage(),
                              sampler=synthetic_sampler())
    study.optimize(objective, n_trials={n_trials})
    """
)


def _run_workers(code: str, name: str, n_workers: int, n_trials: int, tmp_path: Path) -> None:
    script = code + WORKER.format(tests=str(Path(__file__).parent), name=name, n_trials=n_trials)
    path = tmp_path / f"worker-{uuid.uuid4().hex}.py"
    path.write_text(script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, str(path)], stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(n_workers)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


def _three_workers_then_resume(code: str, storage: optuna.storages.BaseStorage,
                               tmp_path: Path) -> None:
    name = f"layernas-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=storage, direction="maximize")
    _run_workers(code, name, n_workers=3, n_trials=6, tmp_path=tmp_path)
    _run_workers(code, name, n_workers=1, n_trials=12, tmp_path=tmp_path)  # a new process
    study = optuna.load_study(study_name=name, storage=storage)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(keys) == 30 and len(set(keys)) == 30, "a child was trained twice"
    layers = [t.user_attrs.get(LAYER_ATTR) for t in study.trials]
    assert layers[18:] == sorted(layers[18:]) and max(layers[:18]) <= layers[18]  # resumed
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all(synthetic_cost(t.params) <= BUDGET for t in study.trials)
    # The resumed process carried the layer-wise search on to the known optimum.
    assert study.best_value == pytest.approx(synthetic_optimum(BUDGET))
    stages = {t.user_attrs[STAGE_KEY] for t in study.trials}
    assert "layer" in stages


def test_journal_storage_three_workers_then_resume(tmp_path: Path) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = str(tmp_path / "journal.log")
    code = (
        "from optuna.storages import JournalStorage\n"
        "from optuna.storages.journal import JournalFileBackend\n"
        f"def make_storage(): return JournalStorage(JournalFileBackend({path!r}))\n"
    )
    _three_workers_then_resume(code, JournalStorage(JournalFileBackend(path)), tmp_path)


def test_postgresql_three_workers_then_resume(tmp_path: Path) -> None:
    url = os.environ.get("OPTUNA_NARS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("OPTUNA_NARS_TEST_POSTGRES_URL is not set")
    code = f"def make_storage(): return {url!r}\n"
    _three_workers_then_resume(code, optuna.storages.RDBStorage(url), tmp_path)
