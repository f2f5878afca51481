"""Adaptive crossover and mutation rates (Srinivas & Patnaik, IEEE T-SMC 24(4), 1994).

A rate falls linearly from ``k_above`` at the population's average fitness to 0 at its best;
below-average individuals always get ``k_below``. Good individuals are disrupted less, poor ones
always, which keeps diversity without losing the best. :func:`adaptive_probability` is the one
formula; :func:`crossover_probability` and :func:`mutation_probability` name its two uses with
the paper's constants (``k1``, ``k3`` and ``k2``, ``k4``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["adaptive_probability", "crossover_probability", "mutation_probability"]


def adaptive_probability(
    f: np.ndarray | float, f_max: float, f_avg: float, k_above: float, k_below: float
) -> np.ndarray:
    """``k_above (f_max - f) / (f_max - f_avg)`` where ``f >= f_avg``, else ``k_below``.

    The common form of Srinivas & Patnaik's crossover (``k1``, ``k3``) and mutation (``k2``,
    ``k4``) rates, element-wise, clipped to [0, 1]. When ``f_max == f_avg`` (a population of
    equal scores, within rounding) the ratio is undefined; the population has converged, so every
    individual gets ``k_below``, the disruptive rate, to restore diversity (elitism keeps the
    best anyway).
    """
    f = np.asarray(f, dtype=float)
    spread = f_max - f_avg
    if not spread > 1e-12 * max(1.0, abs(f_max)):
        return np.full(f.shape, float(np.clip(k_below, 0.0, 1.0)))
    p = np.where(f >= f_avg, k_above * (f_max - f) / spread, k_below)
    return np.clip(p, 0.0, 1.0)


# The two uses keep their own names and keywords (``k1``/``k3``, ``k2``/``k4``): they are public.


def crossover_probability(
    f_parent: np.ndarray | float, f_max: float, f_avg: float, k1: float = 1.0, k3: float = 1.0
) -> np.ndarray:
    """Crossover rate of a pair: ``f_parent`` is the larger of the two parents' fitness."""
    return adaptive_probability(f_parent, f_max, f_avg, k1, k3)


def mutation_probability(
    f: np.ndarray | float, f_max: float, f_avg: float, k2: float = 0.5, k4: float = 0.5,
    min_mutation: float = 0.005,
) -> np.ndarray:
    """Per-gene mutation rate of an individual of fitness ``f``, floored at ``min_mutation`` so
    the best individual (rate 0 by the formula) still moves."""
    return np.maximum(adaptive_probability(f, f_max, f_avg, k2, k4), min_mutation)
