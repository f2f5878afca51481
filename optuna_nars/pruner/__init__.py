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

The package, one concept per module:

* :mod:`~optuna_nars.pruner.pruner`: :class:`EarlyStoppingPruner`, which decides per trial.
* :mod:`~optuna_nars.pruner.calibration`: the calibration record, rank correlations, the
  correlation curve and the choice of the label step.
* :mod:`~optuna_nars.pruner.buckets`: the optional cost-bucket pruning.

:func:`get_label_step` and :func:`trial_labels` live in :mod:`optuna_nars.labels`, the key
constants in ``optuna_nars._keys``; they are re-exported here.
"""

from __future__ import annotations

from optuna_nars._keys import (
    CALIBRATION_ATTR,
    CALIBRATION_INFO_KEY,
    LABEL_CORRELATION_KEY,
    LABEL_STEP_KEY,
    LABEL_THRESHOLD_KEY,
)
from optuna_nars.labels import get_label_step, trial_labels
from optuna_nars.pruner.pruner import EarlyStoppingPruner

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
