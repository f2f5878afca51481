"""Prediction intervals that cover what they claim: NARSSampler scales its spreads by the
recent errors of its own recorded proposals (``samplers/nars/_intervals``)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from optuna_nars import SearchSpace
from optuna_nars.predictor import NARSPredictor
from optuna_nars.predictor.metrics import out_of_fold, ranking_tau
from optuna_nars.samplers.nars._intervals import (
    COVERAGE,
    COVERAGE_95,
    MIN_PAIRS,
    MIN_PAIRS_95,
    WINDOW,
    interval_95,
    interval_scales,
)
from optuna_nars.samplers.nars._ranked import Part, Ranked, decode, encode

sys.path.insert(0, str(Path(__file__).parent))
from test_sampler import FAST, fast_sampler, synthetic_accuracy  # noqa: E402


def test_the_scales_are_the_conformal_quantiles_of_the_latest_errors() -> None:
    rng = np.random.default_rng(0)
    n = WINDOW + 15
    y = rng.normal(size=n)
    spread = rng.uniform(0.5, 2.0, size=n)
    predicted = y + rng.standard_t(2, size=n) * 3 * spread  # heavy tails, as measured errors
    predicted[:3] = np.nan  # warm start: no prediction
    spread[5] = 0.0  # unusable
    usable = np.flatnonzero(np.isfinite(predicted) & (spread > 0))[-WINDOW:]
    ratios = np.sort(np.abs(y - predicted)[usable] / spread[usable])
    scale, scale_95 = interval_scales(y, predicted, spread)  # type: ignore[misc]
    # The ceil((n + 1) * coverage)-th smallest of the n = WINDOW latest ratios.
    assert scale == ratios[math.ceil((WINDOW + 1) * COVERAGE) - 1]
    assert scale_95 == ratios[math.ceil((WINDOW + 1) * COVERAGE_95) - 1]
    for level, s in ((COVERAGE, scale), (COVERAGE_95, scale_95)):
        assert level <= np.mean(ratios <= s) <= level + 2 / WINDOW
    assert scale_95 > 2 * scale  # heavy tails: two spreads would not cover 95%
    # Older pairs do not count: a huge early error leaves the scales alone.
    y_old = y.copy()
    y_old[3] += 1e6
    assert interval_scales(y_old, predicted, spread) == (scale, scale_95)


def test_no_95_percent_scale_before_its_conformal_quantile_exists() -> None:
    errors = np.array([0.5, 3.0, 1.0, 0.25, 2.0, 8.0, 1.5])
    scale, scale_95 = interval_scales(errors, np.zeros(7), np.ones(7))  # type: ignore[misc]
    assert scale == 3.0  # the ceil(8 * 0.6827) = 6th smallest
    assert math.isnan(scale_95)  # ceil(8 * 0.95) = 8 > 7 pairs
    errors = np.arange(1.0, MIN_PAIRS_95 + 1)
    _, scale_95 = interval_scales(errors, np.zeros(len(errors)), np.ones(len(errors)))  # type: ignore[misc]
    assert scale_95 == MIN_PAIRS_95  # ceil(20 * 0.95) = 19: the largest of 19
    _, scale_95 = interval_scales(errors[1:], np.zeros(len(errors) - 1),  # type: ignore[misc]
                                  np.ones(len(errors) - 1))
    assert math.isnan(scale_95)


def test_the_95_percent_interval_follows_the_reported_spread() -> None:
    assert interval_95(0.0, 0.3, 2.0, 10.0) == pytest.approx((-1.5, 1.5))  # raw 0.15, times 10
    assert interval_95(0.0, 0.0, 0.0, 3.0) is None  # the raw spread is lost
    assert interval_95(0.0, 0.3, 2.0, math.nan) is None  # no 95% scale
    assert interval_95(1.0, 0.5, 1.0, 1.0) == (0.5, 1.5)
    assert interval_95(math.nan, 0.5, 1.0, 1.0) is None


def test_no_scale_before_enough_measured_proposals() -> None:
    y = np.arange(10.0)
    predicted = np.full(10, np.nan)
    predicted[-(MIN_PAIRS - 1):] = 0.0
    assert interval_scales(y, predicted, np.ones(10)) is None
    predicted[-MIN_PAIRS:] = 0.0
    assert interval_scales(y, predicted, np.ones(10)) is not None


# A hand-made study (minimised): trials 2-11 proposed with predictions, spreads and the scale
# their spreads carried; trials 0 and 1 without a prediction (warm start).
_VALUES = [5.0, -5.0, 0.0, 1.5, 2.0, 2.5, 4.0, 5.0, 6.5, 7.0, 11.0, 8.0]
_PREDICTED = [None, None, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
_STD = [None, None, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
_SCALE = [None, None, 4.0, 4.0, 4.0, 4.0, 1.0, 1.0, 1.0, 1.0, None, None]  # None: older study


def test_a_study_scales_spreads_by_its_recorded_errors_over_the_raw_spreads() -> None:
    space = SearchSpace.tiny()

    def objective(trial: optuna.Trial) -> float:
        space.suggest(trial)
        if trial.number < 12:
            for key, column in (("predicted", _PREDICTED), ("predicted_std", _STD),
                                ("interval_scale", _SCALE)):
                if column[trial.number] is not None:
                    trial.set_user_attr(f"nars:{key}", column[trial.number])
            return _VALUES[trial.number]
        return 0.0

    sampler = fast_sampler(search_space=space, n_startup_trials=12, batch_size=12)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(objective, n_trials=13)
    proposal = study.trials[12].user_attrs
    assert proposal["nars:stage"] == "predictor"
    raw = np.array(_STD[2:]) / np.array([s or 1.0 for s in _SCALE[2:]])
    errors = np.abs(np.array(_VALUES[2:]) - np.array(_PREDICTED[2:]))
    ratios = np.sort(errors / raw)
    assert proposal["nars:interval_scale"] == pytest.approx(ratios[7])  # ceil(11 * 0.6827)
    assert "nars:interval_95" not in proposal  # 10 measured proposals: too few for 95%
    assert proposal["nars:predicted_std"] > 0
    # Re-targeting reports spreads scaled the same way.
    (answer,) = sampler.search(study, n=1)
    assert answer.predicted_std > 0
    assert answer.interval_95 is None


def test_scaled_intervals_cover_about_as_often_as_they_claim() -> None:
    space = SearchSpace.tiny()

    def objective(trial: optuna.Trial) -> float:
        space.suggest(trial)
        noise = np.random.default_rng(trial.number).normal(0, 0.02)
        return synthetic_accuracy(space, trial.params) + noise

    study = optuna.create_study(direction="maximize", sampler=fast_sampler(search_space=space))
    study.optimize(objective, n_trials=60)
    scaled, raw, within_95 = [], [], []
    for t in study.trials:
        attrs = t.user_attrs
        scale = attrs.get("nars:interval_scale")
        if scale is None or scale == 1.0:  # warm start, and before enough measured proposals
            continue
        error = abs(t.value - attrs["nars:predicted"])
        scaled.append(error <= attrs["nars:predicted_std"])
        raw.append(error <= attrs["nars:predicted_std"] / scale)
        if "nars:interval_95" in attrs:  # from 19 measured proposals in the fit set on
            low, high = attrs["nars:interval_95"]
            within_95.append(low <= t.value <= high)
    assert len(scaled) >= 40 and len(within_95) >= 20
    assert 0.5 <= np.mean(scaled) <= 0.9  # claims 0.68
    assert np.mean(raw) < 0.3  # the predictor's own spread is far too narrow
    assert np.mean(within_95) >= 0.85  # claims 0.95
    # Re-targeting the study reports a 95% interval, wider than the spread.
    (answer,) = study.sampler.search(study, n=1)  # type: ignore[attr-defined]
    assert answer.interval_95 is not None
    low, high = answer.interval_95
    assert low < answer.predicted - answer.predicted_std < answer.predicted < high


def test_shared_rankings_carry_the_scale_and_reject_a_bad_one() -> None:
    pool = np.arange(12.0).reshape(4, 3)
    part = Part(pool[:2], np.array([1.0, 0.5]), np.array([0.2, 0.3]), True, np.array([0, 1]))
    ranked = Ranked("d", "b", 7, 0.4, {0.0: part}, {}, "prequential", {}, 12.5)
    assert decode(encode(ranked), pool).interval_scale == 12.5
    bad = Ranked("d", "b", 7, 0.4, {0.0: part}, {}, "prequential", {}, -1.0)
    with pytest.raises(ValueError, match="interval_scale"):
        decode(encode(bad), pool)
    # The 95% interval's scale travels beside it, checked the same way.
    wide = Ranked("d", "b", 7, 0.4, {0.0: part}, {}, "prequential", {}, 2.0, "gp", 9.0)
    assert decode(encode(wide), pool).interval_95(0.0, 0.2) == pytest.approx((-0.9, 0.9))
    bad_95 = Ranked("d", "b", 7, 0.4, {0.0: part}, {}, "prequential", {}, 2.0, "gp", math.inf)
    with pytest.raises(ValueError, match="interval_scale_95"):
        decode(encode(bad_95), pool)
    none_yet = decode(encode(Ranked("d", "b", 7, 0.4, {0.0: part}, {}, "prequential", {})), pool)
    assert math.isnan(none_yet.interval_scale_95) and none_yet.interval_95(0.0, 0.2) is None
    # Which model predicted travels too, and only a known one.
    gp = Ranked("d", "b", 7, 0.4, {0.0: part}, {}, "prequential", {}, 1.0, "gp")
    assert decode(encode(gp), pool).model == "gp"
    assert decode(encode(gp), pool).quality["model"] == "gp"  # type: ignore[index]
    unknown = Ranked("d", "b", 7, 0.4, {0.0: part}, {}, "prequential", {}, 1.0, "forest")
    with pytest.raises(ValueError, match="model"):
        decode(encode(unknown), pool)


def test_the_first_fit_scales_its_spreads_by_its_cross_validated_errors() -> None:
    space = SearchSpace.tiny()

    def objective(trial: optuna.Trial) -> float:
        space.suggest(trial)
        return synthetic_accuracy(space, trial.params)

    sampler = fast_sampler(search_space=space, n_startup_trials=10, batch_size=10)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=11)
    proposal = study.trials[10].user_attrs
    assert proposal["nars:stage"] == "predictor"  # no proposal measured before it ...
    quality = study._storage.get_study_system_attrs(study._study_id)["nars:predictor"]
    assert quality["kendall_tau_method"] == "cross-validated"
    assert proposal["nars:interval_scale"] > 1.0  # ... yet its spread is scaled


def test_out_of_fold_predictions_are_what_the_cross_validated_tau_ranks() -> None:
    rng = np.random.default_rng(0)
    arch_x, recipe_x = rng.random((20, 4)), rng.random((20, 2))
    y = arch_x.sum(axis=1) + rng.normal(0, 0.1, 20)
    predictor = NARSPredictor(seed=0, **FAST)
    mean, std = out_of_fold(predictor, arch_x, recipe_x, y, k=5)
    assert mean.shape == std.shape == (20,) and np.all(std >= 0)
    assert ranking_tau(mean, y) == predictor.kendall_tau_cv(arch_x, recipe_x, y, k=5)
    assert out_of_fold(predictor, arch_x[:3], recipe_x[:3], y[:3]) is None
