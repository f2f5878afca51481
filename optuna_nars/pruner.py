"""FBNetV3's early-stopping heuristic as an Optuna pruner.

FBNetV3 does not train every candidate to the end. A first batch is trained fully; for every
early epoch the batch is ranked by the accuracy at that epoch and by the final accuracy, and the
first epoch whose rank correlation with the final ranking reaches a threshold becomes the *label
step*. From then on every candidate is trained only to that epoch and the accuracy there is its
label.

:class:`EarlyStoppingPruner` implements this on top of ``trial.report(value, step)`` /
``trial.should_prune()``. The calibration result is stored in the study's system attributes so
that every worker, the sampler (through :func:`get_label_step` and :func:`trial_labels`) and the
dashboard see the same label step:

* ``"nars:label_step"`` (:data:`LABEL_STEP_KEY`): the label step, an ``int``.
* ``"nars:label_correlation"`` (:data:`LABEL_CORRELATION_KEY`): the correlation curve, a mapping
  ``str(step) -> float`` (``None`` where the correlation is undefined).
* ``"nars:label_threshold"`` (:data:`LABEL_THRESHOLD_KEY`): the threshold used, a ``float``.
* ``"nars:calibration_info"`` (:data:`CALIBRATION_INFO_KEY`): the full record the pruner works
  from (label step, threshold, settings, full length, numbers of the full-length trials). It is
  written last, in one piece, so a pruner never sees a half-written calibration.

Full-length (calibration and recalibration) trials get the user attribute
``"nars:calibration"`` (:data:`CALIBRATION_ATTR`) set to ``True``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import optuna
import scipy.stats
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import (
    CALIBRATION_ATTR,
    CALIBRATION_INFO_KEY,
    LABEL_CORRELATION_KEY,
    LABEL_STEP_KEY,
    LABEL_THRESHOLD_KEY,
)
from optuna_nars.labels import (
    FINISHED_WITH_VALUE,
    check_single_objective,
    get_label_step,
    trial_labels,
)

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = [
    "CALIBRATION_ATTR",
    "CALIBRATION_INFO_KEY",
    "LABEL_CORRELATION_KEY",
    "LABEL_STEP_KEY",
    "LABEL_THRESHOLD_KEY",
    "EarlyStoppingPruner",
    "get_label_step",
    "trial_labels",
]

_logger = optuna.logging.get_logger("optuna." + __name__)

_CORRELATIONS = ("kendall", "spearman")
# A rank correlation over two points is always +-1 (or undefined): it carries no information.
_MIN_PAIRS = 3


# ---- calibration internals ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Calibration:
    label_step: int
    threshold: float
    correlation: str
    min_step: int
    n_calibration_trials: int
    recalibration_interval: int | None
    full_step: int
    boundary: int  # number of the last trial of the initial calibration set
    trials: tuple[int, ...]  # full-length trials the correlation curve was computed from

    def to_json(self) -> dict[str, Any]:
        return {
            "label_step": self.label_step,
            "threshold": self.threshold,
            "correlation": self.correlation,
            "min_step": self.min_step,
            "n_calibration_trials": self.n_calibration_trials,
            "recalibration_interval": self.recalibration_interval,
            "full_step": self.full_step,
            "boundary": self.boundary,
            "trials": list(self.trials),
        }

    @classmethod
    def from_json(cls, data: Any) -> _Calibration | None:
        try:
            interval = data["recalibration_interval"]
            return cls(
                label_step=int(data["label_step"]),
                threshold=float(data["threshold"]),
                correlation=str(data["correlation"]),
                min_step=int(data["min_step"]),
                n_calibration_trials=int(data["n_calibration_trials"]),
                recalibration_interval=None if interval is None else int(interval),
                full_step=int(data["full_step"]),
                boundary=int(data["boundary"]),
                trials=tuple(int(n) for n in data["trials"]),
            )
        except (KeyError, TypeError, ValueError):
            return None  # written by an incompatible version: recalibrate


def _rank_correlation(x: np.ndarray, y: np.ndarray, method: str) -> float | None:
    """Rank correlation of paired values, NaN pairs dropped; None when undefined."""
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    # Fewer than two distinct values on either side: the ranking is constant and the
    # correlation undefined (scipy would return NaN with a warning).
    if len(x) < _MIN_PAIRS or len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return None
    if method == "kendall":
        stat = scipy.stats.kendalltau(x, y).statistic
    else:
        stat = scipy.stats.spearmanr(x, y).statistic
    stat = float(stat)
    return None if math.isnan(stat) else stat


def _correlation_curve(
    trials: Sequence[FrozenTrial], method: str, full_step: int
) -> dict[int, float | None]:
    """Correlation between the value at every reported step and the final value."""
    steps = sorted({s for t in trials for s in t.intermediate_values if s <= full_step})
    final = np.array([t.value for t in trials], dtype=float)
    # A step that fewer than half the full-length trials reported (or reported as NaN) would
    # label almost nobody; such steps are treated as undefined.
    min_pairs = max(_MIN_PAIRS, math.ceil(len(trials) / 2))
    curve: dict[int, float | None] = {}
    for step in steps:
        at_step = np.array([t.intermediate_values.get(step, math.nan) for t in trials], dtype=float)
        valid = ~(np.isnan(at_step) | np.isnan(final))
        curve[step] = (
            _rank_correlation(at_step, final, method) if valid.sum() >= min_pairs else None
        )
    return curve


def _select_label_step(
    curve: dict[int, float | None], threshold: float, min_step: int, full_step: int
) -> int:
    """First step >= min_step whose correlation reaches threshold, else the full length."""
    for step in sorted(curve):
        corr = curve[step]
        if step >= min_step and corr is not None and corr >= threshold:
            return step
    return full_step


# ---- the pruner --------------------------------------------------------------------------------


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
        _check_int("n_calibration_trials", n_calibration_trials, _MIN_PAIRS)
        if correlation not in _CORRELATIONS:
            raise ValueError(
                "The 'correlation' parameter of EarlyStoppingPruner must be one of "
                f"{list(_CORRELATIONS)}. Got {correlation!r} instead."
            )
        _check_real("threshold", threshold)
        if not 0.0 < threshold <= 1.0:
            raise ValueError(
                "The 'threshold' parameter of EarlyStoppingPruner must be a float in the range "
                f"(0.0, 1.0]. Got {threshold!r} instead. The FBNetV3 paper uses about 0.92."
            )
        _check_int("min_step", min_step, 0)
        if recalibration_interval is not None:
            _check_int("recalibration_interval", recalibration_interval, 1, allow_none=True)
        if not isinstance(bucket_pruning, (bool, np.bool_)):
            raise ValueError(
                "The 'bucket_pruning' parameter of EarlyStoppingPruner must be a bool. "
                f"Got {bucket_pruning!r} instead."
            )
        if not isinstance(cost_attr, str) or not cost_attr:
            raise ValueError(
                "The 'cost_attr' parameter of EarlyStoppingPruner must be a non-empty str naming "
                f"a trial user attribute (e.g. 'flops'). Got {cost_attr!r} instead."
            )
        _check_int("n_buckets", n_buckets, 1)
        _check_real("bucket_percentile", bucket_percentile)
        if not 0.0 < bucket_percentile < 100.0:
            raise ValueError(
                "The 'bucket_percentile' parameter of EarlyStoppingPruner must be a float in the "
                f"range (0.0, 100.0). Got {bucket_percentile!r} instead; e.g. 25.0 stops the "
                "worst quarter of a bucket."
            )
        _check_int("n_min_bucket_trials", n_min_bucket_trials, 1)

        self._n_calibration_trials = int(n_calibration_trials)
        self._correlation = correlation
        self._threshold = float(threshold)
        self._min_step = int(min_step)
        self._recalibration_interval = (
            None if recalibration_interval is None else int(recalibration_interval)
        )
        self._bucket_pruning = bool(bucket_pruning)
        self._cost_attr = cost_attr
        self._n_buckets = int(n_buckets)
        self._bucket_percentile = float(bucket_percentile)
        self._n_min_bucket_trials = int(n_min_bucket_trials)

        # Trials whose CALIBRATION_ATTR this process already wrote, to write it once per value:
        # the FrozenTrial given to prune() does not see attributes set through the storage.
        self._marked: dict[tuple[int, int], bool] = {}
        self._lock = threading.Lock()

    # ---- public ---------------------------------------------------------------------------

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
        if self._is_recalibration_trial(trial.number, calibration):
            self._mark(study, trial, True)
            return False

        if calibration.label_step < calibration.full_step and step >= calibration.label_step:
            # A trial started before calibration finished was marked as full-length; it is not.
            self._mark(study, trial, False, only_if_marked=True)
            return True

        if (
            self._bucket_pruning
            and self._min_step <= step < calibration.label_step
            and self._bucket_prune(study, trial, step)
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

    def _calibrate(self, study: Study) -> _Calibration | None:
        storage, study_id = study._storage, study._study_id
        stored = _Calibration.from_json(
            storage.get_study_system_attrs(study_id).get(CALIBRATION_INFO_KEY)
        )
        same_settings = stored is not None and self._same_settings(stored)
        if same_settings and self._recalibration_interval is None:
            return stored  # nothing can change it: skip reading the trials

        trials = study.get_trials(deepcopy=False)
        full = self._full_length_trials(trials)
        if full is None:
            return None
        boundary, full_trials = full
        numbers = tuple(t.number for t in full_trials)
        if same_settings and stored is not None and stored.trials == numbers:
            return stored

        full_step = max(s for t in full_trials for s in t.intermediate_values)
        curve = _correlation_curve(full_trials, self._correlation, full_step)
        label_step = _select_label_step(curve, self._threshold, self._min_step, full_step)
        if same_settings and stored is not None:
            # Recalibration only moves the label step later: a step once shown to be too early
            # is not trusted again, and the step stays monotone whichever worker writes last.
            label_step = max(label_step, stored.label_step)
        calibration = _Calibration(
            label_step=label_step,
            threshold=self._threshold,
            correlation=self._correlation,
            min_step=self._min_step,
            n_calibration_trials=self._n_calibration_trials,
            recalibration_interval=self._recalibration_interval,
            full_step=full_step,
            boundary=boundary,
            trials=numbers,
        )
        # The mirrors first, the record the pruners read last: a pruner never sees half of it.
        storage.set_study_system_attr(
            study_id, LABEL_CORRELATION_KEY, {str(s): c for s, c in curve.items()}
        )
        storage.set_study_system_attr(study_id, LABEL_THRESHOLD_KEY, self._threshold)
        storage.set_study_system_attr(study_id, LABEL_STEP_KEY, label_step)
        storage.set_study_system_attr(study_id, CALIBRATION_INFO_KEY, calibration.to_json())
        self._log(calibration, stored, curve)
        return calibration

    def _same_settings(self, stored: _Calibration) -> bool:
        return (
            stored.threshold == self._threshold
            and stored.correlation == self._correlation
            and stored.min_step == self._min_step
            and stored.n_calibration_trials == self._n_calibration_trials
            and stored.recalibration_interval == self._recalibration_interval
        )

    def _full_length_trials(
        self, trials: list[FrozenTrial]
    ) -> tuple[int, list[FrozenTrial]] | None:
        """(boundary, full-length trials), or None while the calibration set is not settled."""
        trials = sorted(trials, key=lambda t: t.number)
        eligible = [t for t in trials if t.state == TrialState.COMPLETE and t.intermediate_values]
        n = self._n_calibration_trials
        if len(eligible) < n:
            return None
        boundary = eligible[n - 1].number
        # A lower-numbered trial still running could complete and belong to the first n: wait,
        # so that every worker computes the calibration from the same trials.
        if any(t.number < boundary and not t.state.is_finished() for t in trials):
            return None
        # Later COMPLETE trials count only if they are recalibration trials: others may have
        # finished before calibration without having been chosen to run to full length.
        full = eligible[:n] + [
            t for t in eligible[n:] if self._is_recalibration_number(t.number, boundary)
        ]
        return boundary, full

    def _is_recalibration_number(self, number: int, boundary: int) -> bool:
        interval = self._recalibration_interval
        return interval is not None and number > boundary and (number - boundary) % interval == 0

    def _is_recalibration_trial(self, number: int, calibration: _Calibration) -> bool:
        return self._is_recalibration_number(number, calibration.boundary)

    def _mark(
        self, study: Study, trial: FrozenTrial, value: bool, *, only_if_marked: bool = False
    ) -> None:
        if trial.state != TrialState.RUNNING:
            return  # finished trials cannot take attributes (prune() called by hand)
        key = (id(study._storage), trial._trial_id)
        with self._lock:
            current = self._marked.get(key, trial.user_attrs.get(CALIBRATION_ATTR))
            if current is value or (only_if_marked and current is None):
                return
            self._marked[key] = value
        study._storage.set_trial_user_attr(trial._trial_id, CALIBRATION_ATTR, value)

    def _log(
        self,
        calibration: _Calibration,
        previous: _Calibration | None,
        curve: dict[int, float | None],
    ) -> None:
        if previous is not None and previous.label_step == calibration.label_step:
            return
        corr = curve.get(calibration.label_step)
        corr_text = "undefined" if corr is None else f"{corr:.3f}"
        what = "Calibrated" if previous is None else "Recalibrated"
        if calibration.label_step >= calibration.full_step:
            _logger.warning(
                f"{what} early stopping on trials {list(calibration.trials)}: no step before the "
                f"full length {calibration.full_step} reached {self._correlation} correlation "
                f">= {self._threshold} with the final value, so trials are not stopped early "
                f"(label step = {calibration.label_step}). Correlations: "
                f"{_format_curve(curve)}."
            )
        else:
            _logger.info(
                f"{what} early stopping on trials {list(calibration.trials)}: label step "
                f"{calibration.label_step} of {calibration.full_step} ({self._correlation} "
                f"correlation {corr_text} >= {self._threshold})."
            )

    def _bucket_prune(self, study: Study, trial: FrozenTrial, step: int) -> bool:
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return False
        cost = _cost(trial.user_attrs, self._cost_attr)
        if cost is None:
            # The objective or sampler may have set it through the storage after the
            # FrozenTrial was cached.
            user_attrs = study._storage.get_trial(trial._trial_id).user_attrs
            cost = _cost(user_attrs, self._cost_attr)
            if cost is None:
                return False

        peers: list[tuple[float, float]] = []  # (log cost, value at step)
        for t in study.get_trials(deepcopy=False, states=FINISHED_WITH_VALUE):
            c = _cost(t.user_attrs, self._cost_attr)
            if c is not None and t.number != trial.number:
                peers.append((math.log(c), t.intermediate_values.get(step, math.nan)))
        if len(peers) < self._n_min_bucket_trials:
            return False
        values = np.array([p[1] for p in peers])
        buckets = _quantile_buckets(
            np.array([p[0] for p in peers] + [math.log(cost)]), self._n_buckets
        )
        same = (buckets[:-1] == buckets[-1]) & ~np.isnan(values)
        if same.sum() < self._n_min_bucket_trials:
            return False
        if study.direction == StudyDirection.MAXIMIZE:
            return bool(value < np.percentile(values[same], self._bucket_percentile))
        return bool(value > np.percentile(values[same], 100.0 - self._bucket_percentile))


# ---- small helpers -----------------------------------------------------------------------------


def _cost(user_attrs: dict[str, Any], key: str) -> float | None:
    value = user_attrs.get(key)
    try:
        cost = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return cost if math.isfinite(cost) and cost > 0 else None


def _quantile_buckets(log_costs: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket index of every cost by its mid-rank quantile: equal-sized buckets, ties together.

    Mid-ranks rather than quantile edges keep equal costs in one bucket and never leave a bucket
    empty because many trials share the cost at an edge.
    """
    position = (scipy.stats.rankdata(log_costs, method="average") - 0.5) / len(log_costs)
    return np.minimum((position * n_buckets).astype(int), n_buckets - 1)


def _format_curve(curve: dict[int, float | None]) -> str:
    return ", ".join(
        f"{s}: {'undefined' if c is None else format(c, '.3f')}" for s, c in sorted(curve.items())
    )


def _check_int(name: str, value: Any, minimum: int, *, allow_none: bool = False) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"The {name!r} parameter of EarlyStoppingPruner must be an int >= {minimum}"
            f"{' or None' if allow_none else ''}. Got {value!r} of type "
            f"{type(value).__name__} instead."
        )
    if value < minimum:
        hint = (
            " A rank correlation over fewer than 3 trials is always +-1 or undefined."
            if name == "n_calibration_trials"
            else ""
        )
        raise ValueError(
            f"The {name!r} parameter of EarlyStoppingPruner must be an int >= {minimum}"
            f"{' or None' if allow_none else ''}. Got {value!r} instead.{hint} "
            f"Pass {name}={minimum} or more."
        )


def _check_real(name: str, value: Any) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(
            f"The {name!r} parameter of EarlyStoppingPruner must be a float. Got {value!r} of "
            f"type {type(value).__name__} instead."
        )
    if math.isnan(value):
        raise ValueError(f"The {name!r} parameter of EarlyStoppingPruner must not be NaN.")
