"""When NARSSampler does what: the stages by trial number, the refit schedule, the trust region.

Everything here is a function of trial numbers and label counts only, so every worker holding
the same storage makes the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from optuna_nars._keys import Stage

__all__ = ["STARTUP_TRIALS", "STARTUP_TRIALS_PRETRAINED", "StagePlan", "refit_size",
           "startup_trials", "trust_weight"]

# The warm start's length by default. A pretrained encoder has learned the architectures' free
# labels, so the predictor can take over after fewer QMC trials; without one, the first fits
# (a Gaussian process) have only the warm start to go on. benchmarks/RESULTS.md, session 13.
STARTUP_TRIALS = 10
STARTUP_TRIALS_PRETRAINED = 5


@dataclass(frozen=True)
class StagePlan:
    """How many trials each stage of :class:`NARSSampler` gets, by trial number."""

    n_startup_trials: int
    n_rounds: int
    batch_size: int

    @property
    def min_fit_labels(self) -> int:
        """Labels before the first fit: a round's worth, or the warm start's if shorter."""
        return min(self.batch_size, self.n_startup_trials)

    def refit_size(self, n_labels: int) -> int:
        """How many labels the predictor is fitted on when ``n_labels`` are available
        (:func:`refit_size`)."""
        return refit_size(n_labels, self.batch_size)

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


def startup_trials(n_startup_trials: int | None, pretrained: bool) -> int:
    """The warm start's length: ``n_startup_trials`` when given, else
    :data:`STARTUP_TRIALS_PRETRAINED` with a pretrained encoder and :data:`STARTUP_TRIALS`
    without."""
    if n_startup_trials is not None:
        return n_startup_trials
    return STARTUP_TRIALS_PRETRAINED if pretrained else STARTUP_TRIALS


def refit_size(n_labels: int, batch_size: int) -> int:
    """How many labels the predictor is fitted on when ``n_labels`` are available.

    Refits come every ``batch_size`` labels (a FBNetV3 round), at most every 10% more labels
    from 100 labels on, and past 200 labels ever more sparsely: every ``k / 2000`` times ``k``
    more (20% at 400 labels), up to every 25% from 500 on. A fit costs ``O(n)``, while a few
    more labels barely move a predictor fitted on hundreds. (Refits every 2 labels up to 20 or
    30 labels were screened and not kept: ``benchmarks/RESULTS.md``, sessions 10 and 11.)
    """
    if n_labels < batch_size:
        return n_labels
    k = batch_size
    while True:
        step = max(batch_size, k // 10, min(k * k // 2000, k // 4))
        if k + step > n_labels:
            return k
        k += step


def trust_weight(trial_number: int, trust_region: float) -> float:
    """The trust-region weight of trial ``trial_number``'s acquisition.

    Even trials stay near measured pairs, odd ones follow the predictor anywhere: the penalty
    alone gets stuck around an early incumbent (HPOLib), the bare predictor chases its own
    extrapolation into corners (HPOBench); alternating holds up on both.
    """
    return 0.0 if trial_number % 2 else trust_region
