"""The memo table: the best candidates per (layer, cost bucket), derived from the trials.

A row is a candidate of layer ``i`` when every layer after ``i`` holds its default (its depth,
:meth:`Layers.depth <optuna_nars.samplers.layernas._layers.Layers.depth>`, is at most ``i``):
the trained children of layer ``i`` and the shallower candidates they extend, whose layer ``i``
keeps its default option. The table keeps, per layer and cost bucket, the ``per_bucket`` best
labelled candidates (ties: the earlier trial). Nothing is stored: every worker rebuilds the
table from the study's rows and labels, so a new process resumes where the study stands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Buckets", "memo_table"]


@dataclass(frozen=True)
class Buckets:
    """``n`` equal-width cost buckets over ``[low, high]``; costs outside go to the end ones."""

    low: float
    high: float
    n: int

    def of(self, costs: np.ndarray) -> np.ndarray:
        """The bucket index of each cost."""
        costs = np.asarray(costs, dtype=float)
        if self.n == 1 or not self.high > self.low:
            return np.zeros(len(costs), dtype=int)
        b = np.floor((costs - self.low) / (self.high - self.low) * self.n).astype(int)
        return np.clip(b, 0, self.n - 1)


def memo_table(
    depths: np.ndarray, buckets: np.ndarray, labels: np.ndarray, n_layers: int, per_bucket: int
) -> list[np.ndarray]:
    """Per layer, the indices of its kept candidates, best first.

    Args:
        depths: Each labelled row's depth (``-1``: the root).
        buckets: Each labelled row's cost bucket.
        labels: Each labelled row's label, larger is better, rows in trial order.
        n_layers: How many layers.
        per_bucket: How many candidates each (layer, bucket) keeps.
    """
    # Best first; a stable sort keeps the earlier trial first among equal labels.
    order = np.argsort(-labels, kind="stable")
    table = []
    for layer in range(n_layers):
        kept: list[int] = []
        counts: dict[int, int] = {}
        for i in order:
            if depths[i] <= layer and counts.get(int(buckets[i]), 0) < per_bucket:
                counts[int(buckets[i])] = counts.get(int(buckets[i]), 0) + 1
                kept.append(int(i))
        table.append(np.array(kept, dtype=int))
    return table
