"""When NARSSampler does what: the stages by trial number, the refit schedule, the trust region.

Everything here is a function of trial numbers, label counts and the fit set's labels only, so
every worker holding the same storage makes the same decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from optuna_nars._keys import Stage

__all__ = ["MIN_EVIDENCE", "TRUST_SCHEDULES", "StagePlan", "refit_size", "trust_weight"]


@dataclass(frozen=True)
class StagePlan:
    """How many trials each stage of :class:`NARSSampler` gets, by trial number."""

    n_startup_trials: int
    n_rounds: int
    batch_size: int

    @property
    def n_predictor_trials(self) -> int:
        """Trials of the predictor-guided rounds (stage 2)."""
        return self.n_rounds * self.batch_size

    def stage(self, trial_number: int) -> Stage:
        """The stage trial ``trial_number`` belongs to (0-based)."""
        if trial_number < self.n_startup_trials:
            return Stage.QMC
        if trial_number < self.n_startup_trials + self.n_predictor_trials:
            return Stage.PREDICTOR
        return Stage.EVOLUTION


def refit_size(n_labels: int, batch_size: int) -> int:
    """How many labels the predictor is fitted on when ``n_labels`` are available.

    Refits come every ``batch_size`` labels (a FBNetV3 round), at most every 10% more labels
    from 100 labels on, and past 200 labels ever more sparsely: every ``k / 2000`` times ``k``
    more (20% at 400 labels), up to every 25% from 500 on. A fit costs ``O(n)``, while a few
    more labels barely move a predictor fitted on hundreds.
    """
    if n_labels < batch_size:
        return n_labels
    k = batch_size
    while True:
        step = max(batch_size, k // 10, min(k * k // 2000, k // 4))
        if k + step > n_labels:
            return k
        k += step


TRUST_SCHEDULES = ("alternate", "adaptive")
MIN_EVIDENCE = 3  # measured proposals of each kind before the adaptive schedule chooses


def trust_weight(
    trial_number: int,
    trust_region: float,
    schedule: str = "alternate",
    numbers: Sequence[int] = (),
    y: np.ndarray | None = None,
) -> float:
    """The trust-region weight of trial ``trial_number``'s acquisition.

    ``"alternate"``: even trials stay near measured pairs, odd ones follow the predictor
    anywhere: the penalty alone gets stuck around an early incumbent (HPOLib), the bare
    predictor chases its own extrapolation into corners (HPOBench); alternating holds up on
    both. ``"adaptive"``: even trials and every other odd one (``4k + 1``) as before; the
    remaining quarter (``4k + 3``) takes the kind that has measured better so far, by the mean
    rank of its trials' labels ``y`` (larger is better) among the measured proposals
    ``numbers`` (the fit set's trials proposed with a prediction), and follows the predictor
    until each kind has :data:`MIN_EVIDENCE` of them. Where the predictor's own picks train
    worse than the trust region's (real training, whose extrapolated recipes diverge), three
    proposals in four stay near the data. The fit set is the same for every worker, and so is
    the choice.
    """
    if trial_number % 2 == 0:
        return trust_region
    if schedule == "alternate" or trial_number % 4 == 1 or y is None or trust_region == 0:
        return 0.0
    numbers_ = np.asarray(numbers)
    ranks = rankdata(np.asarray(y, dtype=float)) / max(len(numbers_), 1)
    near, anywhere = numbers_ % 2 == 0, numbers_ % 4 == 1
    if min(near.sum(), anywhere.sum()) < MIN_EVIDENCE:
        return 0.0
    return trust_region if ranks[near].mean() > ranks[anywhere].mean() else 0.0
