"""Prediction intervals that cover what they claim: the predictor's spread, scaled online.

The spread of an ensemble (or of a Gaussian process on a few labels' normal scores) says where
a prediction is less certain, not how uncertain it is: over the suite's proposals, 0.09 of
the measured values fell within one recorded spread of their prediction, where a 1-std
interval claims 0.68. Each proposal records, before it runs, its prediction, its spread, the
scale applied to the spread and its 95% interval (``nars:predicted``, ``nars:predicted_std``,
``nars:interval_scale``, ``nars:interval_95``), so the study holds a calibration set that
grows with the search. Each scale is a split-conformal quantile of
``|measured - predicted| / raw spread`` over the latest :data:`WINDOW` proposals of the fit
set (the recent ones, because the errors shrink as the predictor learns): :data:`COVERAGE`
for the spread, once the fit set holds :data:`MIN_PAIRS` measured proposals, and
:data:`COVERAGE_95` for the 95% interval, once it holds :data:`MIN_PAIRS_95`, the fewest whose
conformal 95% quantile exists. The errors are far from Gaussian (a diverged run lies tens of
spreads off), so the 95% interval has a scale of its own rather than two spreads. Before 5
proposals are measured, the first fits (from 10 labels) scale the spread by the same quantile
of their 5-fold cross-validation's out-of-fold errors, in normal scores
(:func:`~optuna_nars.samplers.nars._model.ranking_quality`); it runs anyway for their Kendall
tau. Those errors are smaller than a proposal's, which the search picked where the predictor
is most optimistic, so the first spreads are still too small; they get no 95% interval (one
from those errors covered 0.70 of the first proposals: benchmarks/RESULTS.md, session 10).
Only the reported spread changes: the acquisition ranks with the predictor's own.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

__all__ = ["COVERAGE", "COVERAGE_95", "MIN_PAIRS", "MIN_PAIRS_95", "WINDOW", "Scales",
           "interval_95", "interval_scales"]

COVERAGE = float(2 * norm.cdf(1.0) - 1)  # what a 1-std Gaussian interval claims
COVERAGE_95 = 0.95
MIN_PAIRS = 5
MIN_PAIRS_95 = 19  # the fewest n with ceil((n + 1) * 0.95) <= n
# Recent pairs only: the early errors are larger, and a window over all of them over-covers;
# 40 rather than 20: replayed on the suite's runs, 20 covered 0.94 at 95% and 40 covered 0.95
# (benchmarks/RESULTS.md, issue 12, session 10).
WINDOW = 40
# (the spread's, the 95% interval's): multiples of the raw spread; NaN: no 95% interval
Scales = tuple[float, float]


def conformal_quantile(ratios: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile: the ``ceil((n + 1) * coverage)``-th smallest of ``n``
    ratios, which a new exchangeable ratio exceeds with probability at most ``1 - coverage``;
    NaN when there are too few for that (fewer than :data:`MIN_PAIRS_95` at 95%)."""
    k = math.ceil((len(ratios) + 1) * coverage)
    return float(np.sort(ratios)[k - 1]) if k <= len(ratios) else math.nan


def interval_scales(y: np.ndarray, predicted: np.ndarray, spread: np.ndarray) -> Scales | None:
    """The multiples of the raw spread that make the spread cover :data:`COVERAGE` and the 95%
    interval :data:`COVERAGE_95` of the recent errors: labels ``y``, the predictions and raw
    spreads their trials were proposed with (on ``y``'s scale, in trial order; NaN where a
    trial had none). ``None`` with fewer than :data:`MIN_PAIRS` usable pairs; the 95% scale is
    NaN with fewer than :data:`MIN_PAIRS_95`."""
    y, predicted, spread = (np.asarray(a, dtype=float) for a in (y, predicted, spread))
    usable = np.isfinite(predicted) & np.isfinite(spread) & (spread > 0) & np.isfinite(y)
    pairs = np.flatnonzero(usable)
    if len(pairs) < MIN_PAIRS:
        return None
    recent = pairs[-WINDOW:]
    ratios = np.abs(y[recent] - predicted[recent]) / spread[recent]
    return conformal_quantile(ratios, COVERAGE), conformal_quantile(ratios, COVERAGE_95)


def interval_95(predicted: float, spread: float, scale: float,
                scale_95: float) -> tuple[float, float] | None:
    """``(low, high)``: the 95% interval around ``predicted``, whose reported ``spread`` is the
    raw one times ``scale``; ``None`` when there is no 95% scale (NaN), or ``scale`` is 0 (the
    raw spread is lost)."""
    half_width = spread * scale_95 / scale if scale > 0 else math.nan
    if not (math.isfinite(predicted) and math.isfinite(half_width)):
        return None
    return predicted - half_width, predicted + half_width
