"""How well a predictor ranks: Kendall tau, the metric FBNetV3 reports, cross-validated
(:func:`kendall_tau_cv`, k refits) or prequential (:func:`prequential_kendall_tau`, free: each
proposal's prediction recorded before it was measured, against its measured value)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import kendalltau

from optuna_nars._validation import check_int
from optuna_nars.predictor._plumbing import as_2d

if TYPE_CHECKING:
    from optuna_nars.predictor.estimator import NARSPredictor

__all__ = ["kendall_tau_cv", "out_of_fold", "prequential_kendall_tau", "ranking_tau"]


def kendall_tau_cv(
    predictor: NARSPredictor,
    arch_x: np.ndarray,
    recipe_x: np.ndarray | None,
    y: np.ndarray,
    *,
    k: int = 5,
    seed: int | None = None,
) -> float:
    """Kendall tau between k-fold out-of-fold predictions (:func:`out_of_fold`) and the
    measured ``y``. Returns NaN with fewer than 4 samples or when ``y`` (or the predictions) are
    constant: there is no ranking to judge.
    """
    predicted = out_of_fold(predictor, arch_x, recipe_x, y, k=k, seed=seed)
    return math.nan if predicted is None else ranking_tau(predicted[0], y)


def ranking_tau(predicted: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau of ``predicted`` against ``y``; NaN when the predictions are constant."""
    if np.ptp(predicted) == 0:
        return math.nan
    return float(kendalltau(predicted, y).statistic)


def out_of_fold(
    predictor: NARSPredictor,
    arch_x: np.ndarray,
    recipe_x: np.ndarray | None,
    y: np.ndarray,
    *,
    k: int = 5,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """k-fold out-of-fold predictions of ``y``: the mean and spread each sample gets from a fit
    on the other folds; ``None`` with fewer than 4 samples or a constant ``y``.

    Every fold is fitted by an unfitted clone of ``predictor`` (same arguments, same pretrained
    encoder); ``predictor`` itself is left unchanged. ``k`` is capped at the number of samples;
    ``seed`` (default: the predictor's) shuffles the folds.
    """
    y = np.asarray(y, dtype=float).reshape(-1)
    k = check_int("k", k, minimum=2, example=5)
    n = len(y)
    arch_x = as_2d("arch_x", arch_x, n)
    recipe_x = as_2d("recipe_x", recipe_x, n)
    if n < 4 or np.ptp(y) == 0:
        return None
    rng = np.random.default_rng(predictor.seed if seed is None else seed)
    folds = np.array_split(rng.permutation(n), min(k, n))
    mean, std = np.empty(n), np.empty(n)
    for test in folds:
        train = np.setdiff1d(np.arange(n), test)
        model = predictor.clone().fit(arch_x[train], recipe_x[train], y[train])
        mean[test], std[test] = model.predict(arch_x[test], recipe_x[test])
    return mean, std


def prequential_kendall_tau(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Kendall tau between predictions made *before* each value was measured and the values.

    Unlike :func:`kendall_tau_cv` it costs no refit: the predictions are the ones a search
    recorded when it proposed each candidate (by the predictor of that moment), so it judges the
    rankings the search actually acted on. Pairs where either side is NaN (a candidate proposed
    without a prediction) are left out. Returns NaN with fewer than 2 pairs or when either side
    is constant.
    """
    predicted = np.asarray(predicted, dtype=float).reshape(-1)
    measured = np.asarray(measured, dtype=float).reshape(-1)
    if predicted.shape != measured.shape:
        raise ValueError(
            f"predicted has {len(predicted)} values and measured {len(measured)}; pass one "
            "prediction per measured value (NaN where there was none)."
        )
    ok = np.isfinite(predicted) & np.isfinite(measured)
    if ok.sum() < 2 or np.ptp(predicted[ok]) == 0 or np.ptp(measured[ok]) == 0:
        return math.nan
    return float(kendalltau(predicted[ok], measured[ok]).statistic)
