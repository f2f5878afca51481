"""Claims: how a sampler reserves a row for a running trial in the storage.

A claim is written in two steps. First the row alone (chunked, under
:data:`~optuna_nars._keys.PROPOSAL_KEY` in the trial's system attributes): from then on,
concurrent workers (threads or processes) read it as taken. Then, once the sampler has made sure
no rival keeps the same row (:func:`holders`), the claim is settled (:func:`settle_claim`): the
:data:`~optuna_nars._keys.CLAIM_KEPT_KEY` mark and the user attributes (the stage, the
prediction), and Optuna's ``constraints:<name>`` values of the row (:func:`record_constraints`).
All of it before the sampler returns, so that a fresh process continues a study where it stands.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nars._keys import (
    CLAIM_KEPT_KEY,
    CONSTRAINT_PREFIX,
    INTERVAL_95_KEY,
    INTERVAL_SCALE_KEY,
    PREDICTED_KEY,
    PREDICTED_STD_KEY,
    PREDICTOR_QUALITY_KEY,
    PROPOSAL_KEY,
    STAGE_KEY,
    Stage,
)
from optuna_nars._storage import set_trial_chunked
from optuna_nars.samplers._context import SpaceContext, current_keyed_row, row_key
from optuna_nars.stale import released_trials

__all__ = [
    "Claim",
    "holders",
    "keeps",
    "publish_row",
    "record_constraints",
    "settle_claim",
]

_logger = optuna.logging.get_logger("optuna." + __name__)

# How long a claim waits for a higher-numbered rival's verdict (one storage read, normally)
# before moving anyway: that rival's process may have died.
_RIVAL_WAIT_SECONDS = 10.0


@dataclass
class Claim:
    """A row proposed for a trial, with what is recorded alongside it."""

    row: np.ndarray
    # Stage.REPEAT (the feasible space is exhausted) is never re-chosen; None: not the
    # sampler's choice (every parameter fixed by enqueue_trial).
    stage: Stage | None
    predicted: float | None = None  # on the objective's scale, with predicted_std
    predicted_std: float | None = None
    interval_scale: float | None = None  # predicted_std's multiple of the model's own spread
    interval_95: tuple[float, float] | None = None  # [low, high] on the objective's scale
    # {"n_labels", "kendall_tau", "kendall_tau_method"} of the model behind the claim, published
    # to the study.
    quality: dict[str, Any] | None = None


def publish_row(study: Study, trial: FrozenTrial, row: np.ndarray) -> None:
    """Write ``row`` as the row ``trial`` holds: what other workers read."""
    set_trial_chunked(study._storage, trial._trial_id, PROPOSAL_KEY, json.dumps(row.tolist()))


def settle_claim(study: Study, trial: FrozenTrial, claim: Claim, ctx: SpaceContext) -> None:
    """Record that ``trial`` keeps ``claim`` (its row already published), with its stage and
    prediction; the caller records its constraints. ``ctx`` remembers the predictor quality
    this process last published, so that it is not read back for every trial."""
    storage, trial_id = study._storage, trial._trial_id
    # First: workers waiting for this trial's verdict on the row stop waiting.
    storage.set_trial_system_attr(trial_id, CLAIM_KEPT_KEY, True)
    if claim.stage is not None:
        storage.set_trial_user_attr(trial_id, STAGE_KEY, Stage(claim.stage).value)
    if claim.predicted is not None:
        storage.set_trial_user_attr(trial_id, PREDICTED_KEY, claim.predicted)
        storage.set_trial_user_attr(trial_id, PREDICTED_STD_KEY, claim.predicted_std)
        if claim.interval_scale is not None:
            storage.set_trial_user_attr(trial_id, INTERVAL_SCALE_KEY, claim.interval_scale)
        if claim.interval_95 is not None:
            storage.set_trial_user_attr(trial_id, INTERVAL_95_KEY, list(claim.interval_95))
    if claim.quality is not None:
        _publish_quality(study, claim.quality, ctx.published_quality)


def record_constraints(
    study: Study, trial: FrozenTrial, ctx: SpaceContext, row: np.ndarray, *, enqueued: bool
) -> None:
    """Record the constraint values of ``row``, the row ``trial`` runs, in Optuna's convention
    (so that ``best_trial`` and the dashboard see feasibility); values ``trial`` already holds
    are not written again. Warn when ``enqueued`` parameters break the budget: the user asked
    for them, so the trial runs, recorded as infeasible."""
    violations = ctx.violations(row[None])[0]
    for name, value in zip(ctx.constraint_names, violations, strict=True):
        key = CONSTRAINT_PREFIX + name
        if trial.system_attrs.get(key) != float(value):
            study._storage.set_trial_system_attr(trial._trial_id, key, float(value))
    broken = {n: float(v) for n, v in zip(ctx.constraint_names, violations, strict=True) if v > 0}
    if enqueued and broken:
        _logger.warning(
            f"Trial {trial.number} runs enqueued parameters that break the constraints "
            f"(violations {broken}); it is recorded as infeasible."
        )


def _publish_quality(study: Study, quality: dict[str, Any],
                     published: dict[tuple[int, int], dict[str, Any]]) -> None:
    """Write ``quality`` to the study unless this process last wrote the same (``published``)."""
    storage = study._storage
    key = (id(storage), study._study_id)
    if published.get(key) == quality:
        return
    previous = storage.get_study_system_attrs(study._study_id).get(PREDICTOR_QUALITY_KEY)
    if previous != quality:
        storage.set_study_system_attr(study._study_id, PREDICTOR_QUALITY_KEY, quality)
        _logger.info(
            f"Predictor refit on {quality['n_labels']} labelled trials: "
            f"{quality.get('kendall_tau_method') or 'cross-validated'} Kendall tau "
            f"{quality['kendall_tau']:.3f}."
        )
    published[key] = quality


def holders(
    study: Study, trial: FrozenTrial, ctx: SpaceContext, row: np.ndarray,
    running_only: bool = False,
) -> list[tuple[int, bool]]:
    """The other trials holding ``row`` (read afresh from the storage), as ``(number,
    final)``: ``final`` when that trial keeps it for good (it settled its claim, has the
    row's params, or has finished), else it is still deciding. ``running_only``: only the
    trials not finished (for a pair measured again)."""
    key = row_key(row)
    out = []
    trials = study._get_trials(deepcopy=False, use_cache=False)
    released = released_trials(study, trials)  # failed by an interruption: no longer held
    for t in trials:
        if running_only and t.state.is_finished():
            continue
        if t.number != trial.number and t.number not in released:
            other = current_keyed_row(study, t, ctx)
            if other is not None and other[1] == key:  # (row, row key)
                final = (
                    bool(t.system_attrs.get(CLAIM_KEPT_KEY))
                    or t.state.is_finished()
                    or all(name in t.params for name in ctx.param_space.names)
                )
                out.append((t.number, final))
    return out


def keeps(read_holders: Callable[[], list[tuple[int, bool]]], number: int) -> bool:
    """Whether trial ``number`` keeps the row it has just published, given ``read_holders``
    (:func:`holders` of that row, read afresh on every call).

    It keeps the row when no one else holds it; it moves when a lower-numbered or a settled
    trial holds it. A higher-numbered rival still deciding either saw this claim (then it
    moves) or checked before it was written (then it keeps its own): this trial cannot tell
    which, so it waits for the verdict, moving after :data:`_RIVAL_WAIT_SECONDS` (moving is
    always safe). Waits go to higher numbers only, so they end.
    """
    deadline = time.monotonic() + _RIVAL_WAIT_SECONDS
    delay = 0.005
    while True:
        rivals = read_holders()
        if not rivals:
            return True
        if any(other < number or final for other, final in rivals):
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(2 * delay, 0.2)
