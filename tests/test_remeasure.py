"""NARSSampler's ``remeasure_every``: the best-looking pairs measured again, when noisy."""

from __future__ import annotations

import threading
import time

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

from optuna_nars.samplers import NARSSampler
from optuna_nars.samplers.nars._remeasure import DETERMINISTIC_AFTER

SPACE = {"x": IntDistribution(0, 30), "act": CategoricalDistribution(["relu", "gelu", "silu"])}


def _truth(params: dict) -> float:
    return -abs(params["x"] - 17) + (0.5 if params["act"] == "gelu" else 0.0)


def _sampler(**kwargs) -> NARSSampler:
    return NARSSampler(SPACE, seed=0, pool_size=512, **kwargs)


def _stages(study: optuna.Study) -> list[str | None]:
    return [t.user_attrs.get("nars:stage") for t in study.trials]


def _upper_bound_choice(measures: dict[tuple, list[float]], bonus: float) -> tuple:
    """The pair with the best mean plus ``bonus`` times the pooled noise over sqrt(count)."""
    repeated = [v for v in measures.values() if len(v) > 1]
    dof = sum(len(v) - 1 for v in repeated)
    noise = np.sqrt(sum(np.sum((np.array(v) - np.mean(v)) ** 2) for v in repeated) / dof) \
        if dof else 0.0
    return max(measures, key=lambda k: np.mean(measures[k]) + bonus * noise
               / np.sqrt(len(measures[k])))


def test_every_kth_trial_measures_the_best_mean_pair_again_and_the_others_are_new() -> None:
    rng = np.random.default_rng(0)
    study = optuna.create_study(direction="maximize",
                                sampler=_sampler(remeasure_every=3, remeasure_from=12))
    measures: dict[tuple, list[float]] = {}
    for _ in range(30):
        trial = study.ask(SPACE)
        key = tuple(sorted(trial.params.items()))
        if trial.number in range(12, 30, 3):
            assert key == _upper_bound_choice(measures, bonus=1.0)
        else:
            assert key not in measures  # proposals of the search never repeat a pair
        value = _truth(trial.params) + rng.normal(0, 1.0)
        measures.setdefault(key, []).append(value)
        study.tell(trial, value)
    stages = _stages(study)
    assert [n for n, s in enumerate(stages) if s == "remeasure"] == list(range(12, 30, 3))
    # The first one, before any pair has been measured twice, is the best single measure.
    first = study.trials[12]
    assert first.params == max(study.trials[:12], key=lambda t: t.value).params


def test_a_deterministic_objective_stops_being_measured_again() -> None:
    study = optuna.create_study(direction="maximize",
                                sampler=_sampler(remeasure_every=2, remeasure_from=12))
    for _ in range(12 + 2 * DETERMINISTIC_AFTER + 6):
        trial = study.ask(SPACE)
        study.tell(trial, _truth(trial.params))
    again = [n for n, s in enumerate(_stages(study)) if s == "remeasure"]
    assert again == list(range(12, 12 + 2 * DETERMINISTIC_AFTER, 2))


def test_a_pair_a_running_trial_holds_is_not_measured_again_beside_it() -> None:
    study = optuna.create_study(direction="maximize",
                                sampler=_sampler(remeasure_every=1, remeasure_from=6,
                                                 n_startup_trials=5))
    for _ in range(6):
        trial = study.ask(SPACE)
        study.tell(trial, _truth(trial.params))
    ranked = sorted(study.trials, key=lambda t: t.value, reverse=True)
    study.enqueue_trial(ranked[0].params)  # the best pair, running in another worker
    running = study.ask(SPACE)
    assert running.params == ranked[0].params
    beside = study.ask(SPACE)
    assert study.trials[beside.number].user_attrs["nars:stage"] == "remeasure"
    assert beside.params == ranked[1].params
    study.tell(running, _truth(running.params))
    study.tell(beside, _truth(beside.params))


def test_threads_never_run_one_pair_twice_at_once() -> None:
    lock = threading.Lock()
    spans: list[tuple[float, float, tuple]] = []
    rng = np.random.default_rng(1)

    def objective(trial: optuna.Trial) -> float:
        params = {"x": trial.suggest_int("x", 0, 30),
                  "act": trial.suggest_categorical("act", ["relu", "gelu", "silu"])}
        start = time.monotonic()
        time.sleep(0.01)
        with lock:
            spans.append((start, time.monotonic(), tuple(sorted(params.items()))))
            return _truth(params) + float(rng.normal(0, 1.0))

    study = optuna.create_study(direction="maximize",
                                sampler=_sampler(remeasure_every=2, remeasure_from=8))
    study.optimize(objective, n_trials=40, n_jobs=2)
    assert _stages(study).count("remeasure") >= 10
    for i, (s1, e1, p1) in enumerate(spans):
        for s2, e2, p2 in spans[i + 1:]:
            assert not (p1 == p2 and s1 < e2 and s2 < e1), "one pair ran twice at once"


@pytest.mark.parametrize("kwargs", [{"remeasure_every": -1}, {"remeasure_from": 0},
                                    {"remeasure_bonus": -0.5}])
def test_bad_remeasure_settings_are_clear_errors(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        NARSSampler(**kwargs)
