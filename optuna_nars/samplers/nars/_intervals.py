"""Prediction intervals that cover what they claim: the predictor's spread, scaled online.

The spread of an ensemble (or of a Gaussian process on a few labels' normal scores) says where
a prediction is less certain, not how uncertain it is: over the suite's proposals, 0.09 of
the measured values fell within one recorded spread of their prediction, where a 1-std
interval claims 0.68. Each proposal records, before it runs, its prediction, its spread and
the scale applied to the spread (``nars:predicted``, ``nars:predicted_std``,
``nars:interval_scale``), so the study holds a calibration set that grows with the search. The
scale is the 68.27% quantile of ``|measured - predicted| / raw spread`` over the latest
:data:`WINDOW` proposals of the fit set, once it holds :data:`MIN_PAIRS` (split-conformal
prediction with the recent proposals as the calibration set; the recent ones, because the
errors shrink as the predictor learns). Before that, the first fits (from 10 labels) take the
same quantile over their 5-fold cross-validation's out-of-fold errors, in normal scores
(:func:`~optuna_nars.samplers.nars._model.ranking_quality`); it runs anyway for their Kendall
tau. Those errors are smaller than a proposal's, which the search picked where the predictor
is most optimistic, so the first scale is still too small. Only the reported spread changes:
the acquisition ranks with the predictor's own.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

__all__ = ["COVERAGE", "MIN_PAIRS", "WINDOW", "interval_scale"]

COVERAGE = float(2 * norm.cdf(1.0) - 1)  # what a 1-std Gaussian interval claims
MIN_PAIRS = 5
# Recent pairs only: the early errors are larger, and a window over all of them over-covers
# (benchmarks/RESULTS.md, issue 12, session 7).
WINDOW = 20


def interval_scale(y: np.ndarray, predicted: np.ndarray, spread: np.ndarray) -> float | None:
    """The multiple of the raw spread that makes one spread cover :data:`COVERAGE` of the
    recent errors: labels ``y``, the predictions and raw spreads their trials were proposed
    with (on ``y``'s scale, in trial order; NaN where a trial had none). ``None`` with fewer
    than :data:`MIN_PAIRS` usable pairs."""
    y, predicted, spread = (np.asarray(a, dtype=float) for a in (y, predicted, spread))
    usable = np.isfinite(predicted) & np.isfinite(spread) & (spread > 0) & np.isfinite(y)
    pairs = np.flatnonzero(usable)
    if len(pairs) < MIN_PAIRS:
        return None
    recent = pairs[-WINDOW:]
    ratios = np.abs(y[recent] - predicted[recent]) / spread[recent]
    return float(np.quantile(ratios, COVERAGE))
