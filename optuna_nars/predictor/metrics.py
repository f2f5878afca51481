"""How well a predictor ranks: cross-validated Kendall tau, the metric FBNetV3 reports."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import kendalltau

from optuna_nars._validation import check_int
from optuna_nars.predictor._plumbing import as_2d

if TYPE_CHECKING:
    from optuna_nars.predictor.estimator import NARSPredictor

__all__ = ["kendall_tau_cv"]


def kendall_tau_cv(
    predictor: NARSPredictor,
    arch_x: np.ndarray,
    recipe_x: np.ndarray | None,
    y: np.ndarray,
    *,
    k: int = 5,
    seed: int | None = None,
) -> float:
    """Kendall tau between k-fold out-of-fold predictions and the measured ``y``.

    Every fold is fitted by an unfitted clone of ``predictor`` (same arguments, same pretrained
    encoder); ``predictor`` itself is left unchanged. ``k`` is capped at the number of samples;
    ``seed`` (default: the predictor's) shuffles the folds. Returns NaN with fewer than 4 samples
    or when ``y`` (or the predictions) are constant: there is no ranking to judge.
    """
    y = np.asarray(y, dtype=float).reshape(-1)
    k = check_int("k", k, minimum=2, example=5)
    n = len(y)
    arch_x = as_2d("arch_x", arch_x, n)
    recipe_x = as_2d("recipe_x", recipe_x, n)
    if n < 4 or np.ptp(y) == 0:
        return math.nan
    rng = np.random.default_rng(predictor.seed if seed is None else seed)
    folds = np.array_split(rng.permutation(n), min(k, n))
    oof = np.empty(n)
    for test in folds:
        train = np.setdiff1d(np.arange(n), test)
        model = predictor.clone().fit(arch_x[train], recipe_x[train], y[train])
        oof[test] = model.predict(arch_x[test], recipe_x[test])[0]
    if np.ptp(oof) == 0:
        return math.nan
    return float(kendalltau(oof, y).statistic)
