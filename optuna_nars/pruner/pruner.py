"""The pruner: :class:`EarlyStoppingPruner`, FBNetV3's early stopping on top of ``trial.report``.

It decides, trial by trial, whether to stop; what it stops at comes from
:mod:`~optuna_nars.pruner.calibration` (the label step) and, optionally,
:mod:`~optuna_nars.pruner.buckets` (cost-bucket pruning before the label step).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import CALIBRATION_ATTR
from optuna_nars._validation import check_choice, check_int, check_real
from optuna_nars.labels import check_single_objective
from optuna_nars.pruner.buckets import CostBucketRule
from optuna_nars.pruner.calibration import (
    CORRELATIONS,
    MIN_PAIRS,
    Calibration,
    CalibrationSettings,
    format_curve,
    load_calibration,
    store_calibration,
)

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["EarlyStoppingPruner"]

# The package's name ("optuna.optuna_nars.pruner"), not this module's: the pruner has logged
# under it since it was a single module, and log filters may name it.
_logger = optuna.logging.get_logger("optuna." + __name__.rpartition(".")[0])

_OWNER = "EarlyStoppingPruner"


class EarlyStoppingPruner(BasePruner):
    """FBNetV3's early-stopping heuristic: train every trial only up to a calibrated label step.

    The first ``n_calibration_trials`` trials to complete are never pruned. Once they have
    completed, the pruner computes, for every step they reported, the rank correlation across
    them between the value at that step and their final value (``trial.value``), and picks the
    first step ``>= min_step`` whose correlation is ``>= threshold`` as the *label step*. From
    then on :meth:`prune` returns :obj:`True` as soon as a trial has reported a step ``>=`` the
    label step, so the trial ends PRUNED and Optuna records the value it reported last -- the
    value at the label step -- as its value. Nothing else is pruned unless ``bucket_pruning`` is
    on. If no step reaches the threshold, the label step is the full length, nothing is stopped
    early, and a warning is logged.

    The *full length* is the largest step the full-length trials reported; there is no
    ``max_step`` argument because calibration trials run for as long as the objective trains.
    Calibration (and recalibration) trials get the user attribute ``"nars:calibration"`` set to
    :obj:`True` at their first pruning check; a trial that started while calibration was still
    pending and is then stopped has it reset to :obj:`False`.

    The result is written to the study's system attributes (see the module docstring) and is
    re-derived only from storage, so several workers agree: the calibration set is the first
    ``n_calibration_trials`` COMPLETE trials *by trial number* that reported at least one
    intermediate value, and it counts as known only once every lower-numbered trial has finished.
    Two workers calibrating at the same time therefore use the same trials and store the same
    value. (A trial left RUNNING by a crashed worker delays calibration; use heartbeats, as for
    any Optuna study run by several workers.)

    Edge cases:

    * Steps need not start at 1 or be consecutive: the candidate label steps are the steps the
      calibration trials reported. A trial that skips the label step is stopped at the first step
      past it and gets no label.
    * NaN reports (and NaN final values) are left out of the correlation at that step. A
      step whose correlation is undefined -- fewer than 3 usable trials, fewer than half of the
      full-length trials reporting it, or fewer than two distinct values at that step or among
      the final values -- never passes the threshold. A NaN reported at the label step still
      stops the trial (the PRUNED trial then has no value and :func:`trial_labels` gives no
      label).
    * A trial that ends (COMPLETE, FAIL, or pruned by bucket pruning) before the label step is not
      labelled by :func:`trial_labels`.
    * Resuming a study with different settings (``threshold``, ``min_step``, ``correlation``,
      ``n_calibration_trials`` or ``recalibration_interval``): the pruner recomputes the curve
      from the full-length trials in storage with its own settings and re-selects the label step
      from scratch, so it may move earlier or later. Trials already stopped at the old step keep
      their labels if the step moves earlier; if it moves later they lose them. If the new
      calibration set is not complete yet (e.g. a larger ``n_calibration_trials``), trials run to
      full length until it is. All workers of a study must use the same settings.

    Args:
        n_calibration_trials:
            Number of COMPLETE trials that run to full length before any pruning. At least 3.
        correlation:
            ``"kendall"`` (Kendall's tau-b, :func:`scipy.stats.kendalltau`) or ``"spearman"``
            (:func:`scipy.stats.spearmanr`).
        threshold:
            Minimum rank correlation, in ``(0, 1]``, for a step to become the label step. The
            FBNetV3 paper uses about 0.92.
        min_step:
            Earliest step allowed as the label step (and the earliest step bucket pruning acts
            on). Non-negative.
        recalibration_interval:
            If set to ``N``, every ``N``-th trial after the last calibration trial (trial numbers
            ``boundary + N``, ``boundary + 2N``, ...) runs to full length. When such a trial
            completes, the curve is recomputed over all full-length trials; if the correlation at
            the current label step has dropped below ``threshold`` the label step moves to the
            first passing step after it. It never moves earlier. :obj:`None` disables this.
        bucket_pruning:
            Also stop trials clearly losing against trials of similar cost at the same step
            before the label step. Off by default. Costs are read from the trial user attribute
            ``cost_attr`` (trials without a positive cost are never bucket-pruned), grouped into
            ``n_buckets`` log-cost quantile buckets over the finished trials and the trial
            itself (by mid-rank, so equal costs always share a bucket), and a trial is
            pruned when its value is worse than the ``bucket_percentile``-th percentile of the
            values its bucket's finished trials reported at the same step, provided at least
            ``n_min_bucket_trials`` of them did. NaN values are not bucket-pruned. Calibration and
            recalibration trials are never bucket-pruned.
        cost_attr:
            Trial user attribute holding the cost (e.g. FLOPs) used for bucketing.
        n_buckets:
            Number of cost buckets (log-cost quantiles). At least 1.
        bucket_percentile:
            Percentile in ``(0, 100)``: the worst ``bucket_percentile`` percent of a bucket are
            stopped (for maximization: values below the ``bucket_percentile``-th percentile).
        n_min_bucket_trials:
            Minimum number of finished trials in the bucket with a value at the step before bucket
            pruning acts. At least 1.

    Raises:
        ValueError: On invalid arguments; from :meth:`prune` on multi-objective studies.
    """

    def __init__(
        self,
        n_calibration_trials: int = 8,
        *,
        correlation: Literal["kendall", "spearman"] = "kendall",
        threshold: float = 0.9,
        min_step: int = 1,
        recalibration_interval: int | None = None,
        bucket_pruning: bool = False,
        cost_attr: str = "flops",
        n_buckets: int = 4,
        bucket_percentile: float = 25.0,
        n_min_bucket_trials: int = 5,
    ) -> None:
        self._settings = CalibrationSettings(
            n_calibration_trials=check_int(
                "n_calibration_trials", n_calibration_trials, minimum=MIN_PAIRS, example=8,
                owner=_OWNER, hint="A rank correlation over fewer than 3 trials is always +-1 "
                "or undefined.",
            ),
            correlation=check_choice("correlation", correlation, CORRELATIONS, owner=_OWNER),
            threshold=check_real(
                "threshold", threshold, low=0.0, high=1.0, low_open=True, owner=_OWNER,
                hint="The FBNetV3 paper uses about 0.92.",
            ),
            min_step=check_int("min_step", min_step, minimum=0, owner=_OWNER),
            recalibration_interval=check_int(
                "recalibration_interval", recalibration_interval, minimum=1, allow_none=True,
                owner=_OWNER,
            ),
        )
        if not isinstance(bucket_pruning, (bool, np.bool_)):
            raise ValueError(f"The 'bucket_pruning' parameter of {_OWNER} must be a bool. "
                             f"Got {bucket_pruning!r}.")
        if not isinstance(cost_attr, str) or not cost_attr:
            raise ValueError(
                f"The 'cost_attr' parameter of {_OWNER} must be a non-empty str naming "
                f"a trial user attribute. Got {cost_attr!r}. Use e.g. cost_attr='flops'."
            )
        bucket_rule = CostBucketRule(
            cost_attr=cost_attr,
            n_buckets=check_int("n_buckets", n_buckets, minimum=1, owner=_OWNER),
            percentile=check_real(
                "bucket_percentile", bucket_percentile, low=0.0, high=100.0, low_open=True,
                high_open=True, owner=_OWNER,
                hint="E.g. 25.0 stops the worst quarter of a bucket.",
            ),
            n_min_trials=check_int(
                "n_min_bucket_trials", n_min_bucket_trials, minimum=1, owner=_OWNER
            ),
        )
        self._bucket_rule = bucket_rule if bucket_pruning else None

        # Trials whose CALIBRATION_ATTR this process already wrote, to write it once per value:
        # the FrozenTrial given to prune() does not see attributes set through the storage.
        self._marked: dict[tuple[int, int], bool] = {}
        self._lock = threading.Lock()

    # ---- public ---------------------------------------------------------------------------

    @property
    def n_calibration_trials(self) -> int:
        """Number of COMPLETE trials that run to full length before any pruning."""
        return self._settings.n_calibration_trials

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        check_single_objective(study)
        step = trial.last_step
        if step is None:
            return False

        calibration = self._calibrate(study)
        if calibration is None:
            # Still calibrating: this trial runs to full length.
            self._mark(study, trial, True)
            return False
        if self._settings.is_recalibration_number(trial.number, calibration.boundary):
            self._mark(study, trial, True)
            return False

        if calibration.label_step < calibration.full_step and step >= calibration.label_step:
            # A trial started before calibration finished was marked as full-length; it is not.
            self._mark(study, trial, False, only_if_marked=True)
            return True

        if (
            self._bucket_rule is not None
            and self._settings.min_step <= step < calibration.label_step
            and self._bucket_rule.should_prune(study, trial, step)
        ):
            self._mark(study, trial, False, only_if_marked=True)
            return True
        return False

    def calibrate(self, study: Study) -> int | None:
        """Derive (or refresh) the label step from storage, store it and return it.

        :meth:`prune` does this on every call; call it directly to refresh the label step
        without running another trial, e.g. after a study whose last trial was a recalibration
        trial, or after resuming a study with new settings.

        Args:
            study: A single-objective study.

        Returns:
            The label step, or :obj:`None` while the calibration trials have not all completed.

        Raises:
            ValueError: If ``study`` is multi-objective.
        """
        check_single_objective(study)
        calibration = self._calibrate(study)
        return None if calibration is None else calibration.label_step

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]  # locks cannot be pickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---- internals ------------------------------------------------------------------------

    def _calibrate(self, study: Study) -> Calibration | None:
        storage, study_id = study._storage, study._study_id
        stored = load_calibration(storage, study_id)
        # With other settings (a resumed study), the stored record does not count at all.
        previous = stored if stored is not None and stored.settings == self._settings else None
        if previous is not None and self._settings.recalibration_interval is None:
            return previous  # nothing can change it: skip reading the trials

        full = self._settings.full_length_trials(study.get_trials(deepcopy=False))
        if full is None:
            return None
        boundary, full_trials = full
        if previous is not None and previous.trials == tuple(t.number for t in full_trials):
            return previous

        # Recalibration only moves the label step later: a step once shown to be too early is
        # not trusted again, and the step stays monotone whichever worker writes last.
        calibration, curve = self._settings.calibrate(
            full_trials, boundary, not_before=None if previous is None else previous.label_step
        )
        store_calibration(storage, study_id, calibration, curve)
        _log_calibration(calibration, stored, curve)
        return calibration

    def _mark(
        self, study: Study, trial: FrozenTrial, value: bool, *, only_if_marked: bool = False
    ) -> None:
        """Set (once) whether ``trial`` is a full-length trial, in its ``nars:calibration``."""
        if trial.state != TrialState.RUNNING:
            return  # finished trials cannot take attributes (prune() called by hand)
        key = (id(study._storage), trial._trial_id)
        with self._lock:
            current = self._marked.get(key, trial.user_attrs.get(CALIBRATION_ATTR))
            if current is value or (only_if_marked and current is None):
                return
            self._marked[key] = value
        study._storage.set_trial_user_attr(trial._trial_id, CALIBRATION_ATTR, value)


def _log_calibration(
    new: Calibration, previous: Calibration | None, curve: dict[int, float | None]
) -> None:
    """Log a new or moved label step (a warning when nothing is stopped early)."""
    if previous is not None and previous.label_step == new.label_step:
        return
    corr = curve.get(new.label_step)
    corr_text = "undefined" if corr is None else f"{corr:.3f}"
    what = "Calibrated" if previous is None else "Recalibrated"
    if new.label_step >= new.full_step:
        _logger.warning(
            f"{what} early stopping on trials {list(new.trials)}: no step before the "
            f"full length {new.full_step} reached {new.correlation} correlation "
            f">= {new.threshold} with the final value, so trials are not stopped early "
            f"(label step = {new.label_step}). Correlations: "
            f"{format_curve(curve)}."
        )
    else:
        _logger.info(
            f"{what} early stopping on trials {list(new.trials)}: label step "
            f"{new.label_step} of {new.full_step} ({new.correlation} "
            f"correlation {corr_text} >= {new.threshold})."
        )
