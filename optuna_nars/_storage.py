"""Chunked attributes: one way to store a long text in a study or a trial.

RDB storages cap one attribute value at 2045 characters (MariaDB rejects longer ones), so a long
text goes in chunks ``key:0``, ``key:1``, ... and ``key`` itself holds the number of chunks,
written last: a reader never takes a count whose chunks are not all written, and a rewrite that
gets shorter cannot leave a stale chunk in what is read. Older studies stored no count; their
chunks are read up to the first missing one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from optuna.storages import BaseStorage

__all__ = [
    "ATTR_MAX_LENGTH",
    "get_chunked",
    "get_study_chunked",
    "set_study_chunked",
    "set_trial_chunked",
]

ATTR_MAX_LENGTH = 2045


def _chunks(text: str) -> list[str]:
    n = max(1, math.ceil(len(text) / ATTR_MAX_LENGTH))
    return [text[i * ATTR_MAX_LENGTH : (i + 1) * ATTR_MAX_LENGTH] for i in range(n)]


def set_trial_chunked(storage: BaseStorage, trial_id: int, key: str, text: str) -> None:
    """Store ``text`` under ``key`` in a trial's system attributes."""
    chunks = _chunks(text)
    for i, chunk in enumerate(chunks):
        storage.set_trial_system_attr(trial_id, f"{key}:{i}", chunk)
    storage.set_trial_system_attr(trial_id, key, len(chunks))


def set_study_chunked(storage: BaseStorage, study_id: int, key: str, text: str) -> None:
    """Store ``text`` under ``key`` in a study's system attributes."""
    chunks = _chunks(text)
    for i, chunk in enumerate(chunks):
        storage.set_study_system_attr(study_id, f"{key}:{i}", chunk)
    storage.set_study_system_attr(study_id, key, len(chunks))


def get_chunked(attrs: Mapping[str, Any], key: str) -> str | None:
    """The text stored under ``key`` in ``attrs`` (a trial's or a study's system attributes),
    or ``None`` if there is none or it is incomplete."""
    count = attrs.get(key)
    if isinstance(count, int) and not isinstance(count, bool):
        parts = [attrs.get(f"{key}:{i}") for i in range(count)]
        if any(not isinstance(p, str) for p in parts):
            return None
        return "".join(parts)  # type: ignore[arg-type]
    chunks: list[str] = []
    while isinstance(attrs.get(f"{key}:{len(chunks)}"), str):
        chunks.append(attrs[f"{key}:{len(chunks)}"])
    return "".join(chunks) if chunks else None


def get_study_chunked(storage: BaseStorage, study_id: int, key: str) -> str | None:
    """The text stored under ``key`` in a study's system attributes, or ``None``."""
    return get_chunked(storage.get_study_system_attrs(study_id), key)
