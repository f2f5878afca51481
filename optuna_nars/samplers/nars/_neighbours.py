"""Candidates next to the best measured pairs, for the trust region's proposals of stage 2.

A pool of 20,000 scrambled-Sobol points in tens of dimensions holds nothing close to a measured
pair, so with tens of labels the trust region ("stay where the predictor has data") can only
mean "not too far". Moving one to three parameters of each of the best measured pairs, the local
steps Optuna's TPE and GP samplers take, gives it candidates where the labels say the objective
is good; the acquisition ranks them together with the pool's best
(:meth:`~optuna_nars.samplers.nars._acquisition.Acquisition.neighbourhood`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from optuna_nars.evolution.operators import VariationOperators
from optuna_nars.space import ParamSpace

__all__ = ["MIN_STEP", "N_PARENTS", "neighbours"]

N_PARENTS = 5  # the best measured pairs whose neighbours are drawn
_GENES_MOVED = 1.5  # expected parameters moved per neighbour (at least one)
_STEP = 0.1  # a numeric parameter's move, standard deviation in the unit cube
# A continuous parameter's least move in the unit cube: the trust region favours the nearest
# candidates, which would otherwise be the measured pairs again, up to digits nobody reads; for
# the same reason no neighbour comes within half of it of any measured pair.
MIN_STEP = 0.05


def neighbours(
    param_space: ParamSpace,
    x: np.ndarray,
    y: np.ndarray,
    feasible: Callable[[np.ndarray], np.ndarray],
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """About ``n`` distinct feasible rows, each a few parameters away from one of the
    :data:`N_PARENTS` best rows of ``x`` (labels ``y``, larger is better)."""
    if n == 0 or len(x) == 0:
        return np.zeros((0, x.shape[1]))
    parents = x[np.argsort(-y, kind="stable")[:N_PARENTS]]
    parents = np.repeat(parents, -(-n // len(parents)), axis=0)[:n]
    rate = np.full(len(parents), _GENES_MOVED / max(x.shape[1], 1))
    operators = VariationOperators(param_space, _STEP, MIN_STEP)
    moved = operators.mutate(parents, rate, rng, force=np.ones(len(parents), dtype=bool))
    moved = np.unique(moved, axis=0)
    moved = moved[~_measured_already(param_space, operators.continuous, moved, x)]
    return moved[feasible(moved)]


def _measured_already(
    param_space: ParamSpace, continuous: np.ndarray, rows: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """Which ``rows`` repeat a row of ``x`` but for continuous moves under half of
    :data:`MIN_STEP` (in the unit cube): a few digits of a recipe away from a measured pair."""
    if not continuous.any() or len(rows) == 0:
        return np.zeros(len(rows), dtype=bool)  # exact repeats are the claims' to refuse
    same = (rows[:, None, ~continuous] == x[None, :, ~continuous]).all(axis=2)
    near = (np.abs(param_space.to_unit(rows)[:, None, continuous]
                   - param_space.to_unit(x)[None, :, continuous]) < MIN_STEP / 2).all(axis=2)
    return (same & near).any(axis=1)
