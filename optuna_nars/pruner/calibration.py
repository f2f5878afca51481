"""The calibration: which trials run to full length, and which step becomes the label step.

The rule, from FBNetV3: over the full-length trials, rank-correlate the value reported at every
step with the final value, and take the first step (not before ``min_step``) whose correlation
reaches the threshold. The result is a :class:`Calibration` record, stored in the study's system
attributes (see :func:`store_calibration`) so that every worker reads the same one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.stats
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import (
    CALIBRATION_INFO_KEY,
    LABEL_CORRELATION_KEY,
    LABEL_STEP_KEY,
    LABEL_THRESHOLD_KEY,
)

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = [
    "CORRELATIONS",
    "MIN_PAIRS",
    "Calibration",
    "CalibrationSettings",
    "correlation_curve",
    "format_curve",
    "load_calibration",
    "rank_correlation",
    "select_label_step",
    "store_calibration",
]

CORRELATIONS = ("kendall", "spearman")
# A rank correlation over two points is always +-1 (or undefined): it carries no information.
MIN_PAIRS = 3

Curve = dict[int, float | None]


@dataclass(frozen=True)
class Calibration:
    """The label step, the settings it was derived with, and the trials it was derived from."""

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
        """The record as stored under ``nars:calibration_info``."""
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
    def from_json(cls, data: Any) -> Calibration | None:
        """The record :meth:`to_json` wrote, or :obj:`None` for anything else."""
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

    @property
    def settings(self) -> CalibrationSettings:
        """The settings the record was derived with."""
        return CalibrationSettings(
            n_calibration_trials=self.n_calibration_trials,
            correlation=self.correlation,
            threshold=self.threshold,
            min_step=self.min_step,
            recalibration_interval=self.recalibration_interval,
        )


@dataclass(frozen=True)
class CalibrationSettings:
    """The pruner's arguments the label step is derived with (see ``EarlyStoppingPruner``)."""

    n_calibration_trials: int
    correlation: str
    threshold: float
    min_step: int
    recalibration_interval: int | None

    def is_recalibration_number(self, number: int, boundary: int) -> bool:
        """Whether trial ``number`` is one of the full-length trials after the calibration set."""
        interval = self.recalibration_interval
        return interval is not None and number > boundary and (number - boundary) % interval == 0

    def full_length_trials(
        self, trials: list[FrozenTrial]
    ) -> tuple[int, list[FrozenTrial]] | None:
        """(boundary, full-length trials), or None while the calibration set is not settled."""
        trials = sorted(trials, key=lambda t: t.number)
        eligible = [t for t in trials if t.state == TrialState.COMPLETE and t.intermediate_values]
        n = self.n_calibration_trials
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
            t for t in eligible[n:] if self.is_recalibration_number(t.number, boundary)
        ]
        return boundary, full

    def calibrate(
        self, full_trials: list[FrozenTrial], boundary: int, *, not_before: int | None = None
    ) -> tuple[Calibration, Curve]:
        """The record derived from the full-length trials, and its correlation curve.

        ``not_before``: the label step of the previous calibration with these settings; the
        label step is never earlier.
        """
        full_step = max(s for t in full_trials for s in t.intermediate_values)
        curve = correlation_curve(full_trials, self.correlation, full_step)
        label_step = select_label_step(curve, self.threshold, self.min_step, full_step)
        if not_before is not None:
            label_step = max(label_step, not_before)
        calibration = Calibration(
            label_step=label_step,
            threshold=self.threshold,
            correlation=self.correlation,
            min_step=self.min_step,
            n_calibration_trials=self.n_calibration_trials,
            recalibration_interval=self.recalibration_interval,
            full_step=full_step,
            boundary=boundary,
            trials=tuple(t.number for t in full_trials),
        )
        return calibration, curve


def load_calibration(storage: BaseStorage, study_id: int) -> Calibration | None:
    """The stored record, or :obj:`None` before the first calibration."""
    return Calibration.from_json(storage.get_study_system_attrs(study_id).get(CALIBRATION_INFO_KEY))


def store_calibration(
    storage: BaseStorage, study_id: int, calibration: Calibration, curve: Curve
) -> None:
    """Write the record and its mirrors (curve, threshold, label step) for the other readers."""
    # The mirrors first, the record the pruners read last: a pruner never sees half of it.
    storage.set_study_system_attr(
        study_id, LABEL_CORRELATION_KEY, {str(s): c for s, c in curve.items()}
    )
    storage.set_study_system_attr(study_id, LABEL_THRESHOLD_KEY, calibration.threshold)
    storage.set_study_system_attr(study_id, LABEL_STEP_KEY, calibration.label_step)
    storage.set_study_system_attr(study_id, CALIBRATION_INFO_KEY, calibration.to_json())


def rank_correlation(x: np.ndarray, y: np.ndarray, method: str) -> float | None:
    """Rank correlation of paired values, NaN pairs dropped; None when undefined."""
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    # Fewer than two distinct values on either side: the ranking is constant and the
    # correlation undefined (scipy would return NaN with a warning).
    if len(x) < MIN_PAIRS or len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return None
    if method == "kendall":
        stat = scipy.stats.kendalltau(x, y).statistic
    else:
        stat = scipy.stats.spearmanr(x, y).statistic
    stat = float(stat)
    return None if math.isnan(stat) else stat


def correlation_curve(trials: Sequence[FrozenTrial], method: str, full_step: int) -> Curve:
    """Correlation between the value at every reported step and the final value."""
    steps = sorted({s for t in trials for s in t.intermediate_values if s <= full_step})
    final = np.array([t.value for t in trials], dtype=float)
    # A step that fewer than half the full-length trials reported (or reported as NaN) would
    # label almost nobody; such steps are treated as undefined.
    min_pairs = max(MIN_PAIRS, math.ceil(len(trials) / 2))
    curve: Curve = {}
    for step in steps:
        at_step = np.array([t.intermediate_values.get(step, math.nan) for t in trials], dtype=float)
        valid = ~(np.isnan(at_step) | np.isnan(final))
        curve[step] = (
            rank_correlation(at_step, final, method) if valid.sum() >= min_pairs else None
        )
    return curve


def select_label_step(curve: Curve, threshold: float, min_step: int, full_step: int) -> int:
    """First step >= min_step whose correlation reaches threshold, else the full length."""
    for step in sorted(curve):
        corr = curve[step]
        if step >= min_step and corr is not None and corr >= threshold:
            return step
    return full_step


def format_curve(curve: Curve) -> str:
    """``"1: 0.333, 2: undefined, ..."``, for log messages."""
    return ", ".join(
        f"{s}: {'undefined' if c is None else format(c, '.3f')}" for s, c in sorted(curve.items())
    )
