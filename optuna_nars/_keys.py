"""Every storage key optuna-nars writes, in one place, and the sampler's stage names.

Study system attributes (shared by all workers of a study):

* :data:`LABEL_STEP_KEY`: the early-stopping label step (``int``).
* :data:`LABEL_CORRELATION_KEY`: ``{str(step): correlation or None}`` of the last calibration.
* :data:`LABEL_THRESHOLD_KEY`: the correlation threshold the label step was chosen with.
* :data:`CALIBRATION_INFO_KEY`: the pruner's complete calibration record (a ``dict``).
* :data:`PREDICTOR_QUALITY_KEY`: labels used, Kendall tau of the latest refit and how it was
  measured (prequential, or cross-validated before enough predicted trials finished).
* :data:`SPACE_KEY`: the search space's JSON, chunked (see :mod:`optuna_nars._storage`).
* :data:`SETTINGS_KEY`: the settings of the latest ``optuna-nars search``.
* :data:`INTERRUPTED_PREFIX` + a trial number: why that trial was failed as interrupted, for
  trials that could no longer be written when the interruption was found (RDB heartbeat).
* :data:`SHARED_FIT_KEY`: NARSSampler's latest ranked fit, chunked: one slot, overwritten per
  label set (:mod:`optuna_nars.samplers.nars._shared_fit`); :data:`SHARED_FIT_LEASE_KEY`: which
  worker is fitting which label set, and until when.
* :data:`SHARED_ENCODER_PREFIX` + a digest: NARSSampler's pretrained encoder, chunked, one slot
  per what it was pretrained on (:mod:`optuna_nars.samplers.nars._shared_encoder`);
  :data:`SHARED_ENCODER_LEASE_KEY`: which worker is pretraining which, and until when.

Trial system attributes: :data:`PROPOSAL_KEY` (the claimed candidate, chunked),
:data:`CLAIM_KEPT_KEY` (the claim is settled: no rival takes it any more) and Optuna's
``constraints:<name>``. Trial user attributes (shown by optuna-dashboard): :data:`STAGE_KEY`,
:data:`PREDICTED_KEY`, :data:`PREDICTED_STD_KEY`, :data:`INTERVAL_SCALE_KEY`,
:data:`INTERVAL_95_KEY`, :data:`CALIBRATION_ATTR`, :data:`TRIAL_LABEL_STEP_ATTR`,
:data:`ERROR_ATTR`, :data:`INTERRUPTED_ATTR`, :data:`LAYER_ATTR`.
"""

from __future__ import annotations

from enum import Enum

# ---- study system attributes -------------------------------------------------------------------
LABEL_STEP_KEY = "nars:label_step"
LABEL_CORRELATION_KEY = "nars:label_correlation"
LABEL_THRESHOLD_KEY = "nars:label_threshold"
CALIBRATION_INFO_KEY = "nars:calibration_info"
PREDICTOR_QUALITY_KEY = "nars:predictor"
SPACE_KEY = "nars:space"
SETTINGS_KEY = "nars:search"
INTERRUPTED_PREFIX = "nars:interrupted:"
SHARED_FIT_KEY = "nars:fit"
SHARED_FIT_LEASE_KEY = "nars:fit_lease"
SHARED_ENCODER_PREFIX = "nars:encoder:"
SHARED_ENCODER_LEASE_KEY = "nars:encoder_lease"

# ---- trial system attributes -------------------------------------------------------------------
PROPOSAL_KEY = "nars:x"
CLAIM_KEPT_KEY = "nars:kept"
CONSTRAINT_PREFIX = "constraints:"  # Optuna's own convention, read by optuna-dashboard

# ---- trial user attributes ---------------------------------------------------------------------
STAGE_KEY = "nars:stage"
PREDICTED_KEY = "nars:predicted"
PREDICTED_STD_KEY = "nars:predicted_std"
# The multiple of the predictor's own spread that nars:predicted_std holds (from the study's
# measured proposals, or the first fits' cross-validation: optuna_nars.samplers.nars._intervals).
INTERVAL_SCALE_KEY = "nars:interval_scale"
# [low, high]: the 95% prediction interval, calibrated apart from nars:predicted_std (the errors
# are heavy-tailed: optuna_nars.samplers.nars._intervals).
INTERVAL_95_KEY = "nars:interval_95"
CALIBRATION_ATTR = "nars:calibration"
# The label step in force when the trial ended (or "pending"): a trial attribute, distinct from
# the study's LABEL_STEP_KEY although the dashboard shows both under the same name.
TRIAL_LABEL_STEP_ATTR = "nars:label_step"
ERROR_ATTR = "nars:error"
# Why a trial was failed as interrupted (worker killed, Ctrl-C): its candidate may run again.
INTERRUPTED_ATTR = "nars:interrupted"
# The layer a LayerNASSampler proposal expands (0-based), for reading the search back.
LAYER_ATTR = "layernas:layer"
# The budget a trial of ``optuna-nars family --train`` was chosen for ({metric: limit}).
FAMILY_BUDGET_ATTR = "nars:family_budget"


class Stage(str, Enum):
    """What produced a sampler's proposal (the ``nars:stage`` trial user attribute)."""

    QMC = "qmc"
    PREDICTOR = "predictor"
    EVOLUTION = "evolution"
    LAYER = "layer"  # LayerNASSampler: a child of the memo table (the layer is LAYER_ATTR)
    POLICY = "policy"  # PARSECSampler, REINFORCESampler: a draw from the learnt distribution
    RANDOM = "random"  # the pool is exhausted: fresh feasible random points
    REPEAT = "repeat"  # the feasible space is exhausted: the best-ranked candidate again
    REMEASURE = "remeasure"  # NARSSampler: a measured pair again, on a noisy objective

    def __str__(self) -> str:
        return self.value
