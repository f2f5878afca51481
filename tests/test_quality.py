"""Search quality at small budgets (issue 12): predictions that rank beyond the best label, an
ensemble spread that flags extrapolation, an acquisition that uses it."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution

from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers import NARSSampler
from optuna_nars.samplers.nars._acquisition import Acquisition
from optuna_nars.samplers.nars._model import Fit, normal_scores
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


def test_a_fit_reports_predictions_with_the_same_monotone_map() -> None:
    # The multi-objective proposals report through Fit.to_value: beyond the best label they
    # must not saturate there (ties) any more than the single-objective ones do.
    y = np.array([0.2, 0.4, 0.7, 0.8])
    labels = (np.sort(y), np.sort(normal_scores(y)))
    fit = Fit(None, np.zeros(0), np.zeros(0), None, labels, np.zeros((4, 1)))  # type: ignore[arg-type]
    top = labels[1][-1]
    (v1, s1), (v2, _) = fit.to_value(top + 0.5, 0.1), fit.to_value(top + 1.0, 0.1)
    assert 0.8 < v1 < v2
    expected = scores_to_values(labels, np.array([top + 0.5]), np.array([0.1]))
    assert (v1, s1) == pytest.approx((expected[0][0], expected[1][0]))


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


def test_bootstrap_ensemble_spread_grows_away_from_the_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 0.3, size=(24, 2))
    y = x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.01, 24)
    predictor = NARSPredictor(n_members=8, bootstrap=True, frozen_epochs=0, finetune_epochs=60,
                              hidden=32, embedding_dim=16, seed=0).fit(x, None, y)
    near = rng.uniform(0.0, 0.3, size=(64, 2))
    far = rng.uniform(2.0, 3.0, size=(64, 2))
    _, std_near = predictor.predict(near)
    _, std_far = predictor.predict(far)
    assert np.median(std_far) > 3 * np.median(std_near)
    # Off by default: the settings say so, and a clone keeps it.
    assert NARSPredictor().get_params()["bootstrap"] is False
    assert predictor.clone().bootstrap is True


def test_expected_improvement_prefers_the_uncertain_candidate_when_means_tie() -> None:
    labels = (np.array([0.1, 0.2, 0.3]), np.array([-1.0, 0.0, 1.0]))
    fit = Fit(None, np.zeros(0), np.zeros(0), None, labels, np.zeros((0, 2)))  # type: ignore[arg-type]
    values = np.zeros((3, 2))
    mean, std = np.array([0.5, 0.5, 2.0]), np.array([0.1, 1.0, 0.0])
    ei = Acquisition(fit, None, 0.0, 0.0, "ei").score(values, mean, std)  # type: ignore[arg-type]
    assert ei[1] > ei[0] > 0  # same mean, below the best label's score 1.0: spread wins
    assert ei[2] == pytest.approx(1.0)  # certain improvement of 1.0
    plain = Acquisition(fit, None, 0.0, 0.0).score(values, mean, std)  # type: ignore[arg-type]
    assert plain[0] == plain[1]  # pure exploitation cannot tell them apart
    with pytest.raises(ValueError, match="acquisition must be one of 'ucb', 'ei'"):
        NARSSampler(acquisition="thompson")
