"""Claims: how a sampler reserves a row for a running trial in the storage.

A claim is written to the trial's system attributes (the row, chunked, under
:data:`~optuna_nars._keys.PROPOSAL_KEY`, and Optuna's ``constraints:<name>`` values) and user
attributes (the stage, the prediction) *before* the sampler returns, so that concurrent workers
(threads or processes) read it as taken, and a fresh process continues a study where it stands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nars._keys import (
    CONSTRAINT_PREFIX,
    PREDICTED_KEY,
    PREDICTED_STD_KEY,
    PREDICTOR_QUALITY_KEY,
    PROPOSAL_KEY,
    STAGE_KEY,
    Stage,
)
from optuna_nars._storage import set_trial_chunked
from optuna_nars.samplers._context import SpaceContext, row_key, trial_row
from optuna_nars.stale import released_trials

__all__ = ["Claim", "has_rival", "write_claim"]

_logger = optuna.logging.get_logger("optuna." + __name__)


@dataclass
class Claim:
    """A row proposed for a trial, with what is recorded alongside it."""

    row: np.ndarray
    stage: Stage  # Stage.REPEAT (the feasible space is exhausted) is never re-chosen
    predicted: float | None = None  # on the objective's scale, with predicted_std
    predicted_std: float | None = None
    # {"n_labels", "kendall_tau"} of the model behind the claim, published to the study.
    quality: dict[str, Any] | None = None


def write_claim(study: Study, trial: FrozenTrial, ctx: SpaceContext, claim: Claim) -> None:
    """Record ``claim`` on ``trial`` (the row first: that is what other workers read)."""
    storage, trial_id = study._storage, trial._trial_id
    set_trial_chunked(storage, trial_id, PROPOSAL_KEY, json.dumps(claim.row.tolist()))
    storage.set_trial_user_attr(trial_id, STAGE_KEY, Stage(claim.stage).value)
    if claim.predicted is not None:
        storage.set_trial_user_attr(trial_id, PREDICTED_KEY, claim.predicted)
        storage.set_trial_user_attr(trial_id, PREDICTED_STD_KEY, claim.predicted_std)
    violations = ctx.violations(claim.row[None])[0]
    for name, value in zip(ctx.constraint_names, violations, strict=True):
        # Optuna's constraint convention, so the dashboard shows feasibility.
        storage.set_trial_system_attr(trial_id, CONSTRAINT_PREFIX + name, float(value))
    if claim.quality is not None:
        _publish_quality(study, claim.quality)


def _publish_quality(study: Study, quality: dict[str, Any]) -> None:
    storage = study._storage
    previous = storage.get_study_system_attrs(study._study_id).get(PREDICTOR_QUALITY_KEY)
    if previous != quality:
        storage.set_study_system_attr(study._study_id, PREDICTOR_QUALITY_KEY, quality)
        _logger.info(
            f"Predictor refit on {quality['n_labels']} labelled trials: "
            f"cross-validated Kendall tau {quality['kendall_tau']:.3f}."
        )


def has_rival(study: Study, trial: FrozenTrial, ctx: SpaceContext, row: np.ndarray) -> bool:
    """Whether another trial holds ``row`` (read afresh from the storage)."""
    key = row_key(row)
    trials = study._get_trials(deepcopy=False, use_cache=False)
    released = released_trials(study, trials)  # failed by an interruption: no longer held
    for t in trials:
        if t.number != trial.number and t.number not in released:
            other = trial_row(t, ctx)
            if other is not None and row_key(other) == key:
                return True
    return False
