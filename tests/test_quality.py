"""Search quality at small budgets (issue 12): predictions that rank beyond the best label."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import FloatDistribution

from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers import NARSSampler
from optuna_nars.samplers.nars._model import normal_scores
from optuna_nars.samplers.nars._scale import scores_to_values

FAST = dict(n_members=2, frozen_epochs=10, finetune_epochs=30, pretrain_epochs=10)


def test_scores_map_back_monotone_and_beyond_the_measured_range() -> None:
    y = np.array([0.1, 0.5, 0.5, 0.6, 0.9, 0.9])  # ties at the top: a flat last segment
    labels = (np.sort(y), np.sort(normal_scores(y)))
    z = np.linspace(-4, 4, 81)
    values, spread = scores_to_values(labels, z, np.full_like(z, 0.1))
    assert np.all(np.diff(values) >= 0)
    above, below = values[z > labels[1][-1]], values[z < labels[1][0]]
    # Strictly increasing past both ends: no two candidates predicted beyond the labels tie.
    assert np.all(np.diff(above) > 0) and above[0] > 0.9 - 1e-12
    assert np.all(np.diff(below) > 0) and below[-1] < 0.1 + 1e-12
    inside = (z >= labels[1][0]) & (z <= labels[1][-1])
    np.testing.assert_allclose(values[inside], np.interp(z[inside], labels[1], labels[0]))
    assert np.all(spread >= 0) and spread[-1] > 0


def test_retarget_top_candidates_do_not_tie_above_the_best_label() -> None:
    # Labels only where x <= 0.4; the objective grows with x, so the predictor ranks the
    # unmeasured x > 0.4 above the best label. Those proposals must keep distinct predictions.
    space = {"x": FloatDistribution(0.0, 1.0), "w": FloatDistribution(0.0, 1.0)}
    sampler = NARSSampler(space, seed=0, n_startup_trials=100, pool_size=512,
                          predictor=NARSPredictor(**FAST), warn_independent_sampling=False)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rng = np.random.default_rng(0)
    for x, w in zip(rng.uniform(0, 0.4, 16), rng.uniform(0, 1, 16), strict=True):
        study.enqueue_trial({"x": float(x), "w": float(w)})
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + 0.1 * t.suggest_float("w", 0, 1),
                   n_trials=16)
    proposals = sampler.search(study, constraints={}, n=5)
    predicted = [p.predicted for p in proposals]
    assert predicted[0] > study.best_value  # predicted above the best measured label
    assert len(set(predicted)) == len(predicted)  # and not tied there
    assert predicted == sorted(predicted, reverse=True)
    assert all(p.params["x"] > 0.4 for p in proposals[:3])
