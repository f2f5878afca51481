"""NARSSampler's fits as artefacts of the study: fitted once per label set, read by every worker.

**The fit set.** A fit uses the first K labelled trials in order of completion (then number), K
on :func:`~optuna_nars.samplers.nars._schedule.refit_size`'s schedule (:func:`fit_set`). Every
worker reads the same completion times from the storage, and a trial that finishes late is
appended to that order rather than inserted: the set of a given K does not change under a
worker's feet (ordering by trial number did, and forced refits at the same label count).

**The key.** A fit is named by a digest of what it was fitted on (:func:`fit_digest`): the
sampler's settings, its pool (the space, the constraints and the seed) and the fit set's rows,
label values and recorded predictions and spreads (:func:`recorded_predictions`, from which the
fit's prequential Kendall tau and interval scale are computed). A changed label step, another
study or other settings give another digest, so a fit is never reused for labels it was not
fitted on.

**Sharing.** What a fit produces, a :class:`~optuna_nars.samplers.nars._ranked.Ranked` (top
candidates with their predictions, the Kendall tau: small JSON, no weights, no
pickle), goes to one slot of the study's system attributes (:data:`SHARED_FIT_KEY`, chunked,
overwritten per label set: bounded, and Optuna cannot delete attributes). :func:`obtain` reads it
when it is the fit a worker needs; otherwise the worker takes a lease
(:data:`SHARED_FIT_LEASE_KEY`), fits, and publishes. While another worker holds the lease on the
needed label set, the others do not wait: they propose from the latest published fit, or continue
the warm start before the first one (a lease expires after :data:`LEASE_SECONDS`, in case its
worker died). A torn, foreign or older-format artefact is ignored (debug log) and the worker fits
itself. Proposals are the same whether a worker reads the artefact of its label set or fits it:
both walk the same rankings.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.study import Study

import optuna_nars
from optuna_nars._keys import (
    INTERVAL_SCALE_KEY,
    PREDICTED_KEY,
    PREDICTED_STD_KEY,
    SHARED_FIT_KEY,
    SHARED_FIT_LEASE_KEY,
)
from optuna_nars._storage import get_chunked, set_study_chunked
from optuna_nars._validation import finite_number
from optuna_nars.predictor.pretraining import fingerprint
from optuna_nars.samplers._context import StudyRows, direction_sign, labelled_rows
from optuna_nars.samplers.nars._lease import end_lease, held_by_other, read_lease, take_lease
from optuna_nars.samplers.nars._ranked import FORMAT, Ranked, decode, encode
from optuna_nars.samplers.nars._schedule import StagePlan
from optuna_nars.space import ParamSpace

__all__ = [
    "LEASE_SECONDS", "base_digest", "fit_digest", "fit_set", "obtain", "recorded_predictions",
]

_logger = optuna.logging.get_logger("optuna." + __name__)

LEASE_SECONDS = 120.0  # how long others leave a label set to a worker fitting it (or dead)


def fit_set(
    study: Study, rows: StudyRows, plan: StagePlan, objective: int | None = None
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``(numbers, x, y)`` of the fit: the first :meth:`StagePlan.refit_size` labelled trials in
    order of completion (then number), listed by trial number (the order the fit sees them in);
    none with fewer than ``plan.min_fit_labels`` labels. ``objective``: the learned objective of a
    multi-objective study (:func:`~optuna_nars.samplers._context.labelled_rows`)."""
    numbers, x, y = labelled_rows(study, rows, objective)
    if len(numbers) < plan.min_fit_labels:
        return [], x[:0], y[:0]
    finished = {t.number: t.datetime_complete for t in rows.trials}

    def completion(i: int) -> tuple[bool, datetime, int]:
        when = finished.get(numbers[i])
        return when is None, when or datetime.min, numbers[i]

    k = plan.refit_size(len(numbers))
    chosen = sorted(sorted(range(len(numbers)), key=completion)[:k])
    return [numbers[i] for i in chosen], x[chosen], y[chosen]


def recorded_predictions(study: Study, rows: StudyRows, numbers: list[int],
                         objective: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted, spread)``: the prediction each of trials ``numbers`` was proposed with
    (the ``nars:predicted`` trial attribute, written before the trial ran), signed as the labels
    (of ``objective`` in a multi-objective study) are: larger is better; and its raw spread, the
    predictor's own before :mod:`~optuna_nars.samplers.nars._intervals` scaled it
    (``nars:predicted_std`` over ``nars:interval_scale``). NaN for a trial proposed without
    one (warm start, enqueued)."""
    sign = direction_sign(study, objective)
    attrs = {t.number: t.user_attrs for t in rows.trials}
    predicted, spread = [], []
    for n in numbers:
        got = attrs.get(n, {})
        value = finite_number(got.get(PREDICTED_KEY))
        std = finite_number(got.get(PREDICTED_STD_KEY))
        scale = finite_number(got.get(INTERVAL_SCALE_KEY, 1.0))
        predicted.append(math.nan if value is None else sign * value)
        usable = value is not None and std is not None and scale is not None and scale > 0
        spread.append(std / scale if usable else math.nan)
    return np.array(predicted, dtype=float), np.array(spread, dtype=float)


def base_digest(settings: dict[str, Any], param_space: ParamSpace, pool: np.ndarray) -> str:
    """A digest of what a sampler's fits depend on besides the labels: its ``settings`` (JSON
    values), the space's parameters and parts, and the pool (the space, the constraints and the
    seed); and the library's version and the artefact format."""
    space = [(p.name, p.part, repr(p.dim)) for p in param_space.params]
    text = json.dumps([optuna_nars.__version__, FORMAT, settings, space], sort_keys=True,
                      default=repr)
    return _digest(text, fingerprint(pool))


def fit_digest(base: str, x: np.ndarray, y: np.ndarray, predicted: np.ndarray | None = None,
               spread: np.ndarray | None = None) -> str:
    """The name of the fit on rows ``x`` labelled ``y`` (proposed with the recorded
    ``predicted`` values and raw ``spread`` s) under ``base``."""
    recorded = [a for a in (predicted, spread) if a is not None]
    return _digest(base, fingerprint(x, y, *recorded))


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()


# ---- the slot and the lease ---------------------------------------------------------------------


def _published(attrs: dict[str, Any], pool: np.ndarray, base: str) -> Ranked | None:
    """The ranked fit in the study's system attributes ``attrs`` when it is readable and of
    ``base``, else ``None``."""
    try:
        text = get_chunked(attrs, SHARED_FIT_KEY)
        if text is None:
            return None
        ranked = decode(text, pool)
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # JSONDecodeError included
        _logger.debug(f"Ignoring the study's shared fit ({e}); fitting here.")
        return None
    if ranked.base != base:
        _logger.debug("The study's shared fit is of other settings or another pool; ignored.")
        return None
    return ranked


def _held_by_other(lease: dict[str, Any] | None, digest: str, evolve: bool, owner: str) -> bool:
    """Whether ``lease`` says another worker is fitting what ``digest`` / ``evolve`` needs."""
    return held_by_other(lease, digest, owner) and (bool(lease and lease.get("evolve"))
                                                    or not evolve)


class _Board:
    """One study's slot and lease, read together (one read of the study's attributes)."""

    def __init__(self, study: Study, pool: np.ndarray, base: str) -> None:
        self.study, self.pool, self.base = study, pool, base
        self.published: Ranked | None = None
        self.lease: dict[str, Any] | None = None

    def read(self) -> _Board:
        attrs = self.study._storage.get_study_system_attrs(self.study._study_id)
        self.published = _published(attrs, self.pool, self.base)
        self.lease = read_lease(attrs, SHARED_FIT_LEASE_KEY)
        return self

    def has(self, digest: str, evolve: bool) -> bool:
        return (self.published is not None and self.published.digest == digest
                and self.published.covers(evolve))

    def publish(self, ranked: Ranked) -> None:
        """Overwrite the study's slot with ``ranked``."""
        storage, study_id = self.study._storage, self.study._study_id
        set_study_chunked(storage, study_id, SHARED_FIT_KEY, encode(ranked))


def obtain(
    study: Study,
    pool: np.ndarray,
    base: str,
    digest: str,
    evolve: bool,
    owner: str,
    compute: Callable[[], Ranked],
) -> Ranked | None:
    """The ranked fit ``digest`` (with the genetic search's rankings when ``evolve``).

    Read from the study when published; else ``compute``d here and published; but while
    another worker fits it, the latest published fit of ``base`` instead, or ``None`` when
    there is none yet (the caller continues the warm start). ``owner`` names this worker in the
    lease.
    """
    board = _Board(study, pool, base)
    while True:
        board.read()
        if board.has(digest, evolve):
            return board.published
        if _held_by_other(board.lease, digest, evolve, owner):
            return board.published  # the latest available fit while another worker fits this
        lease = take_lease(study, SHARED_FIT_LEASE_KEY, owner, digest, LEASE_SECONDS,
                           evolve=evolve)
        if not _held_by_other(lease, digest, evolve, owner):
            break
        # Another worker took it at the same moment: it fits (read again to see its lease).
    try:
        if board.read().has(digest, evolve):  # published since it was read above
            return board.published
        ranked = compute()
        board.publish(ranked)
    finally:
        # Published, or failed: either way nobody need wait for this worker any more.
        end_lease(study, SHARED_FIT_LEASE_KEY, owner)
    return ranked
