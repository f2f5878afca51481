"""Rows of a values matrix as a set: distinct rows, membership, best-first de-duplication.

Rows are compared by their bytes (a set of ``bytes`` beats ``np.unique(axis=0)`` by far at
these sizes).
"""

from __future__ import annotations

import numpy as np


def row_keys(x: np.ndarray) -> list[bytes]:
    """One hashable key per row."""
    # + 0.0 turns -0.0 into 0.0, which would otherwise hash differently.
    return [row.tobytes() for row in np.ascontiguousarray(x + 0.0)]


def distinct(x: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of every distinct row, in order."""
    seen: set[bytes] = set()
    keep = []
    for i, key in enumerate(row_keys(x)):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=int)


def unique_rows(values: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows, each with its best score, sorted by score (best first)."""
    order = np.argsort(-scores, kind="stable")
    values, scores = values[order], scores[order]
    keep = distinct(values)
    return values[keep], scores[keep]


def isin_rows(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Which rows of ``x`` also occur in ``ref``."""
    known = set(row_keys(ref))
    return np.array([key in known for key in row_keys(x)], dtype=bool)
