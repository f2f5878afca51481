"""Predicted normal scores back on the objective's scale, monotone beyond the measured range.

The predictor learns normal scores of the labels' ranks. Inside the measured range a score maps
through the labels' empirical quantiles (robust to heavy tails); beyond it, clipping at the best
label would make every candidate predicted above it tie (all of retarget's top proposals
"predicted" exactly the best label), so the map continues linearly with the slope of its
outer quarter: strictly increasing, so distinct scores stay distinct values.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scores_to_values"]


def _tail_slope(z: np.ndarray, y: np.ndarray, top: bool) -> float:
    # The slope over the outer quarter of the labels (at least two): the last segment alone is
    # often flat (tied labels) or noisy. Falls back to the overall scale when that is flat too.
    k = max(2, len(z) // 4)
    zs, ys = (z[-k:], y[-k:]) if top else (z[:k], y[:k])
    dz = float(zs[-1] - zs[0])
    slope = float(ys[-1] - ys[0]) / dz if dz > 0 else 0.0
    if slope <= 0:
        slope = float(np.std(y) / np.std(z)) if np.std(z) > 0 else 0.0
    return slope


def scores_to_values(
    labels: tuple[np.ndarray, np.ndarray], mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted scores ``mean`` +- ``std`` as values and spreads on the labels' scale.

    ``labels`` is (sorted label values, their sorted normal scores), as a
    :class:`~optuna_nars.samplers.nars._model.Fit` holds them. The spread is half the width of
    the mapped interval ``[mean - std, mean + std]``, so it follows the map's local slope (wide
    where labels are sparse, such as a diverged tail).
    """
    y, z = labels
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)

    def mapped(s: np.ndarray) -> np.ndarray:
        out = np.interp(s, z, y)
        if len(z) >= 2:
            out = np.where(s > z[-1], y[-1] + _tail_slope(z, y, True) * (s - z[-1]), out)
            out = np.where(s < z[0], y[0] + _tail_slope(z, y, False) * (s - z[0]), out)
        return out

    return mapped(mean), (mapped(mean + std) - mapped(mean - std)) / 2
