"""The mechanics of aging evolution, as pure functions of the history (no storage, no sampler).

Real et al., "Regularized Evolution for Image Classifier Architecture Search" (AAAI 2019),
Algorithm 1: the population is a queue of the ``P`` latest models; each cycle samples ``S``
members at random (with replacement, as in NAS-Bench-201's implementation), mutates the best of
the sample, and the child joins the queue while the *oldest* member leaves, whatever its
accuracy. Here the queue is :func:`population` of the labelled trials in completion order.
"""

from __future__ import annotations

import numpy as np

from optuna_nars.evolution.operators import VariationOperators
from optuna_nars.samplers._history import History

__all__ = ["children", "population", "tournament_winners"]


def population(history: History, size: int) -> np.ndarray:
    """Indices into ``history`` of the population: its ``size`` latest trials. The older ones
    have aged out, however good they were."""
    return np.arange(max(0, len(history.numbers) - size), len(history.numbers))


def tournament_winners(fitness: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """For each row of ``samples`` (indices into ``fitness``, shape ``(n, S)``), the index of
    its best member; the first drawn wins a tie."""
    return samples[np.arange(len(samples)), np.argmax(fitness[samples], axis=1)]


def children(
    history: History,
    members: np.ndarray,
    sample_size: int,
    ops: VariationOperators,
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``n`` children, each of its own tournament among ``members`` (indices into ``history``):
    the first is the cycle's child, the rest its redraws. Each child differs from its parent in
    exactly one parameter (a categorical one moves to another choice, uniformly; a numeric one
    takes a Gaussian step in the unit cube). Infeasible members (enqueued ones) lose every
    tournament against a feasible one."""
    fitness = np.where(history.feasible[members], history.y[members], -np.inf)
    samples = rng.integers(len(members), size=(n, sample_size))
    parents = history.x[members[tournament_winners(fitness, samples)]]
    # No gene drawn at the base rate, one forced: exactly one mutation per child.
    return ops.mutate(parents, np.zeros(n), rng, force=np.ones(n, dtype=bool))
