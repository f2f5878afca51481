"""Cost-bucket pruning: stop a trial that clearly loses against trials of similar cost.

Before the label step a cheap architecture is not compared with an expensive one: trials are
grouped into quantile buckets of log cost (read from a trial user attribute such as ``flops``),
and a trial is stopped when its value at a step is in the worst ``percentile`` percent of what
the finished trials of its bucket reported at that step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.stats
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from optuna_nars.labels import FINISHED_WITH_VALUE

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["CostBucketRule", "quantile_buckets", "trial_cost"]


def trial_cost(user_attrs: dict[str, Any], key: str) -> float | None:
    """The positive, finite cost stored under ``key``, else :obj:`None`."""
    value = user_attrs.get(key)
    try:
        cost = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return cost if math.isfinite(cost) and cost > 0 else None


def quantile_buckets(log_costs: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket index of every cost by its mid-rank quantile: equal-sized buckets, ties together.

    Mid-ranks rather than quantile edges keep equal costs in one bucket and never leave a bucket
    empty because many trials share the cost at an edge.
    """
    position = (scipy.stats.rankdata(log_costs, method="average") - 0.5) / len(log_costs)
    return np.minimum((position * n_buckets).astype(int), n_buckets - 1)


@dataclass(frozen=True)
class CostBucketRule:
    """The bucket-pruning settings of :class:`~optuna_nars.pruner.EarlyStoppingPruner`.

    Args:
        cost_attr: Trial user attribute holding the cost.
        n_buckets: Number of log-cost quantile buckets.
        percentile: The worst ``percentile`` percent of a bucket are stopped.
        n_min_trials: Finished trials of the bucket with a value at the step needed to act.
    """

    cost_attr: str
    n_buckets: int
    percentile: float
    n_min_trials: int

    def should_prune(self, study: Study, trial: FrozenTrial, step: int) -> bool:
        """Whether ``trial``'s value at ``step`` is among the worst of its cost bucket."""
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return False
        cost = trial_cost(trial.user_attrs, self.cost_attr)
        if cost is None:
            # The objective or sampler may have set it through the storage after the
            # FrozenTrial was cached.
            user_attrs = study._storage.get_trial(trial._trial_id).user_attrs
            cost = trial_cost(user_attrs, self.cost_attr)
            if cost is None:
                return False

        peers: list[tuple[float, float]] = []  # (log cost, value at step)
        for t in study.get_trials(deepcopy=False, states=FINISHED_WITH_VALUE):
            c = trial_cost(t.user_attrs, self.cost_attr)
            if c is not None and t.number != trial.number:
                peers.append((math.log(c), t.intermediate_values.get(step, math.nan)))
        if len(peers) < self.n_min_trials:
            return False
        values = np.array([p[1] for p in peers])
        buckets = quantile_buckets(
            np.array([p[0] for p in peers] + [math.log(cost)]), self.n_buckets
        )
        same = (buckets[:-1] == buckets[-1]) & ~np.isnan(values)
        if same.sum() < self.n_min_trials:
            return False
        if study.direction == StudyDirection.MAXIMIZE:
            return bool(value < np.percentile(values[same], self.percentile))
        return bool(value > np.percentile(values[same], 100.0 - self.percentile))
