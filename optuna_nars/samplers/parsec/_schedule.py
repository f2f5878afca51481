"""When PARSECSampler updates its distribution: batches of finished trials, replayed.

The distribution is a deterministic function of the initial distribution (uniform, or the
prior) and the labelled finished trials, replayed in completion order (then trial number):
they are cut into consecutive batches and each full batch is one update
(:func:`~optuna_nars.samplers.parsec._update.step`); the trials of an unfinished batch wait.
Every worker reading the same storage therefore holds the same distribution, and a new process
resumes where the study stands.

The batch size is PARSEC's fixed ``n_samples``, or with FP-NAS's entropy-adaptive sampling
(:func:`batch_size`) proportional to the distribution's entropy: ``n_samples`` while it is
uniform, down to ``min_samples`` as it sharpens. FP-NAS's coarse-to-fine schedule keeps the
groups tied for the first ``coarse_updates`` updates, then refines every parameter on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optuna_nars.samplers.parsec._distribution import Distribution
from optuna_nars.samplers.parsec._update import step

__all__ = ["Schedule", "Update", "batch_size", "replay"]


@dataclass(frozen=True)
class Schedule:
    """The settings of the replay (see :class:`PARSECSampler` for each)."""

    n_samples: int
    min_samples: int
    adaptive_samples: bool
    coarse_updates: int  # 0: never coarse
    learning_rate: float
    temperature: float


@dataclass(frozen=True)
class Update:
    """One update of the distribution (see :meth:`PARSECSampler.history`).

    ``trials``: the numbers of the batch's trials; ``n_samples``: the batch size; ``entropy``:
    the entropy (nats) of the distribution the batch size was chosen from, before the update;
    ``coarse``: whether the update was made on the tied (coarse) distribution.
    """

    trials: tuple[int, ...]
    n_samples: int
    entropy: float
    coarse: bool


def batch_size(schedule: Schedule, entropy: float, max_entropy: float) -> int:
    """Architectures per update: ``n_samples`` (PARSEC), or with adaptive sampling
    ``ceil(n_samples * H / H_max)`` clipped to ``[min_samples, n_samples]`` (FP-NAS: the
    sample count is proportional to the entropy ``H``, with the proportion set so that the
    uniform distribution, ``H_max``, gets ``n_samples``)."""
    if not schedule.adaptive_samples or max_entropy <= 0:
        return schedule.n_samples
    k = math.ceil(schedule.n_samples * entropy / max_entropy - 1e-9)
    return int(min(schedule.n_samples, max(schedule.min_samples, k)))


def replay(
    initial: Distribution,
    schedule: Schedule,
    numbers: list[int],
    indices: np.ndarray,
    rewards: np.ndarray,
) -> tuple[Distribution, list[Update]]:
    """The distribution after the finished trials ``numbers`` (in replay order), with their
    choice indices ``(n, L)`` and rewards ``(n,)``; and the updates made."""
    dist = initial.copy()
    coarse = schedule.coarse_updates > 0 and dist.structure.tied
    if coarse:
        dist.tie()
    max_entropy = dist.structure.uniform_entropy()
    history: list[Update] = []
    start = 0
    while True:
        entropy = dist.entropy()
        k = batch_size(schedule, entropy, max_entropy)
        if start + k > len(numbers):
            return dist, history
        batch = slice(start, start + k)
        step(dist, indices[batch], rewards[batch], learning_rate=schedule.learning_rate,
             temperature=schedule.temperature, coarse=coarse)
        history.append(Update(tuple(numbers[batch]), k, entropy, coarse))
        start += k
        # Refinement: from now on every member starts from the shared logits and moves alone.
        coarse = coarse and len(history) < schedule.coarse_updates
