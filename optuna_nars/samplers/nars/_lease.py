"""Leases in a study's system attributes: which worker is computing what, and until when.

A lease is ``{"digest", "owner", "until", ...}`` under one key of the study's system attributes.
Workers that need what another worker is computing (a fit, a pretrained encoder) leave it to
that worker until the lease ends (released, or expired in case its worker died). Taking a lease
is a write then, after :data:`SETTLE_SECONDS`, a read back: of workers that took it at once,
only the last writer computes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from optuna.storages import InMemoryStorage
from optuna.study import Study

__all__ = ["SETTLE_SECONDS", "end_lease", "held_by_other", "read_lease", "take_lease"]

SETTLE_SECONDS = 0.2


def read_lease(attrs: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """The lease under ``key`` of a study's system attributes ``attrs``, if well-formed."""
    value = attrs.get(key)
    if (isinstance(value, dict) and isinstance(value.get("digest"), str)
            and isinstance(value.get("owner"), str)
            and isinstance(value.get("until"), (int, float))):
        return value
    return None


def held_by_other(lease: dict[str, Any] | None, digest: str, owner: str) -> bool:
    """Whether ``lease`` says another worker than ``owner`` is computing ``digest`` now."""
    return (lease is not None and lease["digest"] == digest and lease["owner"] != owner
            and lease["until"] > time.time())


def take_lease(study: Study, key: str, owner: str, digest: str, seconds: float,
               **extra: Any) -> dict[str, Any] | None:
    """Write ``owner``'s lease on ``digest`` for ``seconds``, and return the lease found there
    after settling: if another worker took it for the same digest at the same moment, that one
    computes (the caller checks with :func:`held_by_other`); a lease on another digest does
    not concern this one."""
    lease = {"digest": digest, **extra, "owner": owner, "until": time.time() + seconds}
    study._storage.set_study_system_attr(study._study_id, key, lease)
    if isinstance(study._storage, InMemoryStorage):
        return lease  # one process: no one else to settle with
    time.sleep(SETTLE_SECONDS)
    return read_lease(study._storage.get_study_system_attrs(study._study_id), key)


def end_lease(study: Study, key: str, owner: str) -> None:
    """End ``owner``'s lease under ``key`` (unless another worker has taken it since)."""
    lease = read_lease(study._storage.get_study_system_attrs(study._study_id), key)
    if lease is not None and lease["owner"] == owner:
        study._storage.set_study_system_attr(study._study_id, key, {**lease, "until": 0})
