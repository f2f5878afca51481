"""One label per trial: the source every sampler of ours learns from.

FBNetV3 labels every candidate after the same amount of training. When an
:class:`~optuna_nars.pruner.EarlyStoppingPruner` has fixed a *label step*, a trial's label is its
intermediate value at that step; before that (or without the pruner), a COMPLETE trial's value.
In a multi-objective study the label is one objective's value (``objective``) of a COMPLETE
trial: Optuna does not prune multi-objective trials, so there is no label step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import LABEL_STEP_KEY

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["check_single_objective", "get_label_step", "trial_labels"]

FINISHED_WITH_VALUE = (TrialState.COMPLETE, TrialState.PRUNED)


def check_single_objective(study: Study) -> None:
    """Raise a clear error for a multi-objective study."""
    if len(study.directions) > 1:
        raise ValueError(
            "EarlyStoppingPruner and the label helpers support single-objective studies only, "
            f"but the study has {len(study.directions)} objectives. Create the study with a "
            "single `direction`, or use optuna.pruners.NopPruner for multi-objective studies."
        )


def get_label_step(study: Study) -> int | None:
    """Return the label step stored in ``study``, or :obj:`None` before calibration.

    Args:
        study: The study (any storage).

    Returns:
        The step at which trials are labelled (and stopped), or :obj:`None` if no
        :class:`~optuna_nars.pruner.EarlyStoppingPruner` has calibrated the study yet.
    """
    value = study._storage.get_study_system_attrs(study._study_id).get(LABEL_STEP_KEY)
    return None if value is None else int(value)


def trial_labels(
    study: Study, trials: Iterable[FrozenTrial] | None = None, objective: int | None = None
) -> dict[int, float]:
    """Map trial number to label value, measured at one step for every trial.

    With a label step stored (see :func:`get_label_step`), a COMPLETE or PRUNED trial that
    reported a value at exactly the label step is labelled with that *intermediate* value. This
    holds for full-length (calibration) trials too: their final value is ignored, so every label
    is measured after the same amount of training. Trials that stopped before the label step (or
    skipped it), trials whose value there is NaN, and FAIL/RUNNING/WAITING trials get no label.
    Without a label step, COMPLETE trials are labelled with ``trial.value``. A COMPLETE trial
    that never called ``trial.report`` is always labelled with ``trial.value`` (there is no
    curve to read).

    Args:
        study: A single-objective study.
        trials: Trials to label (any states; others are skipped). Defaults to all the study's
            trials.
        objective: In a multi-objective study, the index of the objective to label with
            (COMPLETE trials' ``values[objective]``); ``None`` for a single-objective study.

    Returns:
        ``{trial.number: label}``.

    Raises:
        ValueError: If ``study`` is multi-objective and no ``objective`` is given (or it is out
            of range).
    """
    if objective is not None:
        return _objective_labels(study, trials, objective)
    check_single_objective(study)
    label_step = get_label_step(study)
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=FINISHED_WITH_VALUE)
    labels: dict[int, float] = {}
    for t in trials:
        if t.state == TrialState.COMPLETE and (label_step is None or not t.intermediate_values):
            if t.value is not None:
                labels[t.number] = float(t.value)
        elif label_step is not None and t.state in FINISHED_WITH_VALUE:
            value = t.intermediate_values.get(label_step)
            if value is not None and not math.isnan(value):
                labels[t.number] = float(value)
    return labels


def _objective_labels(
    study: Study, trials: Iterable[FrozenTrial] | None, objective: int
) -> dict[int, float]:
    if not 0 <= objective < len(study.directions):
        raise ValueError(
            f"objective={objective} is out of range for a study with "
            f"{len(study.directions)} objective(s)."
        )
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return {
        t.number: float(t.values[objective])
        for t in trials
        if t.state == TrialState.COMPLETE and t.values is not None
    }
