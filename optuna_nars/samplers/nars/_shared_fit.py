"""NARSSampler's fits as artefacts of the study: fitted once per label set, read by every worker.

**The fit set.** A fit uses the first K labelled trials in order of completion (then number), K
on :func:`~optuna_nars.samplers.nars._schedule.refit_size`'s schedule (:func:`fit_set`). Every
worker reads the same completion times from the storage, and a trial that finishes late is
appended to that order rather than inserted: the set of a given K does not change under a
worker's feet (ordering by trial number did, and forced refits at the same label count).

**The key.** A fit is named by a digest of what it was fitted on (:func:`fit_digest`): the
sampler's settings, its pool (the space, the constraints and the seed) and the fit set's rows and
label values. A changed label step, another study or other settings give another digest, so a
fit is never reused for labels it was not fitted on.

**Sharing.** What a fit produces, a :class:`~optuna_nars.samplers.nars._ranked.Ranked` (top
candidates with their predictions, the cross-validated Kendall tau: small JSON, no weights, no
pickle), goes to one slot of the study's system attributes (:data:`SHARED_FIT_KEY`, chunked,
overwritten per label set: bounded, and Optuna cannot delete attributes). :func:`obtain` reads
it when it is the fit a worker needs; otherwise the worker takes a lease
(:data:`SHARED_FIT_LEASE_KEY`), fits, and publishes. While another worker holds the lease on the
needed label set, the others propose from the latest published fit, or wait for it when there is
none yet (the lease expires, so a crashed worker delays the others by at most
:data:`LEASE_SECONDS`). A torn, foreign or older-format artefact is ignored (debug log) and the
worker fits itself. Proposals are the same whether a worker reads the artefact or fits: both
walk the same rankings.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.study import Study

import optuna_nars
from optuna_nars._keys import SHARED_FIT_KEY, SHARED_FIT_LEASE_KEY
from optuna_nars._storage import get_study_chunked, set_study_chunked
from optuna_nars.predictor.pretraining import fingerprint
from optuna_nars.samplers._context import StudyRows, labelled_rows
from optuna_nars.samplers.nars._ranked import FORMAT, Ranked, decode, encode
from optuna_nars.samplers.nars._schedule import refit_size
from optuna_nars.space import ParamSpace

__all__ = ["LEASE_SECONDS", "base_digest", "fit_digest", "fit_set", "obtain"]

_logger = optuna.logging.get_logger("optuna." + __name__)

LEASE_SECONDS = 120.0  # how long others wait for a worker that fits (or died fitting)
_POLL_SECONDS = 0.25  # how often a waiting worker reads the slot again
# After taking the lease, a worker reads it back this much later: of workers that took it at
# once, only the last writer fits, the others find its lease and wait for its fit.
_SETTLE_SECONDS = 0.05


def fit_set(
    study: Study, rows: StudyRows, batch_size: int
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``(numbers, x, y)`` of the fit: the first :func:`refit_size` labelled trials in order of
    completion (then number), listed by trial number (the order the fit sees them in)."""
    numbers, x, y = labelled_rows(study, rows)
    finished = {t.number: t.datetime_complete for t in rows.trials}

    def completion(i: int) -> tuple[bool, datetime, int]:
        when = finished.get(numbers[i])
        return when is None, when or datetime.min, numbers[i]

    k = refit_size(len(numbers), batch_size)
    chosen = sorted(sorted(range(len(numbers)), key=completion)[:k])
    return [numbers[i] for i in chosen], x[chosen], y[chosen]


def base_digest(settings: dict[str, Any], param_space: ParamSpace, pool: np.ndarray) -> str:
    """A digest of what a sampler's fits depend on besides the labels: its ``settings`` (JSON
    values), the space's parameters and parts, and the pool (the space, the constraints and the
    seed); and the library's version and the artefact format."""
    space = [(p.name, p.part, repr(p.dim)) for p in param_space.params]
    text = json.dumps([optuna_nars.__version__, FORMAT, settings, space], sort_keys=True,
                      default=repr)
    return _digest(text, fingerprint(pool))


def fit_digest(base: str, x: np.ndarray, y: np.ndarray) -> str:
    """The name of the fit on rows ``x`` labelled ``y`` under ``base``."""
    return _digest(base, fingerprint(x, y))


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()


# ---- the slot and the lease ---------------------------------------------------------------------


def read_published(study: Study, pool: np.ndarray, base: str) -> Ranked | None:
    """The study's published ranked fit when it is readable and of ``base``, else ``None``."""
    try:
        text = get_study_chunked(study._storage, study._study_id, SHARED_FIT_KEY)
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


def publish(study: Study, ranked: Ranked) -> None:
    """Overwrite the study's slot with ``ranked``."""
    set_study_chunked(study._storage, study._study_id, SHARED_FIT_KEY, encode(ranked))


def _lease(study: Study) -> dict[str, Any] | None:
    value = study._storage.get_study_system_attrs(study._study_id).get(SHARED_FIT_LEASE_KEY)
    if (isinstance(value, dict) and isinstance(value.get("digest"), str)
            and isinstance(value.get("owner"), str)
            and isinstance(value.get("until"), (int, float))):
        return value
    return None


def _held_by_other(lease: dict[str, Any] | None, digest: str, evolve: bool, owner: str) -> bool:
    """Whether ``lease`` says another worker is fitting what ``digest`` / ``evolve`` needs."""
    return (
        lease is not None
        and lease["digest"] == digest
        and lease["owner"] != owner
        and (bool(lease.get("evolve")) or not evolve)
        and lease["until"] > time.time()
    )


def _take_lease(study: Study, digest: str, evolve: bool, owner: str) -> bool:
    """Write this worker's lease; whether it still holds it a moment later."""
    lease = {"digest": digest, "evolve": evolve, "owner": owner,
             "until": time.time() + LEASE_SECONDS}
    study._storage.set_study_system_attr(study._study_id, SHARED_FIT_LEASE_KEY, lease)
    time.sleep(_SETTLE_SECONDS)
    return not _held_by_other(_lease(study), digest, evolve, owner)


def obtain(
    study: Study,
    pool: np.ndarray,
    base: str,
    digest: str,
    evolve: bool,
    owner: str,
    compute: Callable[[], Ranked],
) -> Ranked:
    """The ranked fit ``digest`` (with the genetic search's rankings when ``evolve``).

    Read from the study when published; while another worker fits it, the latest published fit
    of ``base`` (or, with none, wait for that worker); else ``compute`` it here and publish it.
    ``owner`` names this worker in the lease.
    """
    while True:
        published = read_published(study, pool, base)
        if published is not None and published.digest == digest and published.covers(evolve):
            return published
        if not _held_by_other(_lease(study), digest, evolve, owner):
            if _take_lease(study, digest, evolve, owner):
                break
            continue  # another worker took it at the same moment: it fits
        if published is not None:
            return published  # the latest available fit while another worker fits this one
        time.sleep(_POLL_SECONDS)
    try:
        ranked = compute()
    except BaseException:
        # Release the lease: the others need not wait for a fit that will not come.
        study._storage.set_study_system_attr(
            study._study_id, SHARED_FIT_LEASE_KEY, {"digest": digest, "owner": owner, "until": 0}
        )
        raise
    publish(study, ranked)
    return ranked
