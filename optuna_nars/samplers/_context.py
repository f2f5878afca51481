"""What a sampler knows of a search space and of a study, as rows of a values matrix.

:class:`SpaceContext` holds what is derived once per search space and constraint set (the
:class:`~optuna_nars.space.ParamSpace`, the cost model, the violation function).
:func:`read_rows` turns the storage into rows: every trial's row (from its params, or from the
proposal claimed for it while it runs) and the set of rows that must not be proposed again.
:func:`labelled_rows` adds the labels of :func:`optuna_nars.labels.trial_labels`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial

from optuna_nars._keys import PROPOSAL_KEY
from optuna_nars._storage import get_chunked
from optuna_nars.labels import trial_labels
from optuna_nars.samplers._constraints import Metrics, ViolationFunction
from optuna_nars.space import ParamSpace, SearchSpace
from optuna_nars.stale import released_trials

__all__ = [
    "RowKey",
    "SpaceContext",
    "StudyRows",
    "direction_sign",
    "labelled_rows",
    "read_rows",
    "row_key",
    "trial_row",
]

RowKey = tuple[float, ...]


@dataclass
class SpaceContext:
    """What a sampler derives once per search space and constraint set.

    Samplers extend it (a dataclass subclass) with their own per-space state.
    """

    param_space: ParamSpace
    space: SearchSpace | None  # the SearchSpace, when the relative space is exactly its own
    constraint_names: list[str]
    violations: ViolationFunction  # (n, m): <= 0 is feasible
    metrics: Metrics | None
    # Decoded rows of finished trials, keyed by (storage, trial id).
    finished_rows: dict[tuple[int, int], np.ndarray | None] = field(default_factory=dict)

    def feasible(self, values: np.ndarray) -> np.ndarray:
        """Which rows of ``values`` meet every constraint."""
        v = self.violations(values)
        return np.all(v <= 0, axis=1) if v.shape[1] else np.ones(len(values), dtype=bool)


@dataclass
class StudyRows:
    """The study as rows: what was tried, what is running, what must not be proposed again."""

    rows: dict[int, np.ndarray]  # trial number -> values row
    claimed: set[RowKey]  # evaluated, running or failed: never proposed again
    trials: list[FrozenTrial]


def row_key(row: np.ndarray) -> RowKey:
    """A hashable key of a values row."""
    return tuple(float(x) for x in row)


def direction_sign(study: Study) -> float:
    """``1`` when the study maximises, ``-1`` when it minimises: labels times the sign are
    always to be maximised."""
    return 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0


def trial_row(trial: FrozenTrial, ctx: SpaceContext) -> np.ndarray | None:
    """The values row of ``trial``: its params once it has them all, before that the proposal
    claimed for it; ``None`` if it has neither (or they belong to another space)."""
    names = ctx.param_space.names
    if all(name in trial.params for name in names):
        try:
            return ctx.param_space.params_to_values([trial.params])[0]
        except (ValueError, KeyError):
            return None  # params from another space version
    text = get_chunked(trial.system_attrs, PROPOSAL_KEY)
    if text is not None:
        row = np.asarray(json.loads(text), dtype=float)
        if row.shape == (len(names),):
            return row
    return None


def read_rows(study: Study, ctx: SpaceContext, exclude: int | None) -> StudyRows:
    """Rows of all trials but trial number ``exclude``, read afresh from the storage (other
    workers may have claimed rows since the last read)."""
    trials = study._get_trials(deepcopy=False, use_cache=False)
    rows: dict[int, np.ndarray] = {}
    claimed: set[RowKey] = set()
    # Trials failed by an interruption (a dead worker, Ctrl-C) release their candidates.
    released = released_trials(study, trials)
    for t in trials:
        if t.number == exclude or t.number in released:
            continue
        if t.state.is_finished():
            # Finished trials never change: decode their params once.
            key = (id(study._storage), t._trial_id)
            if key not in ctx.finished_rows:
                ctx.finished_rows[key] = trial_row(t, ctx)
            row = ctx.finished_rows[key]
        else:
            row = trial_row(t, ctx)
        if row is not None:
            rows[t.number] = row
            claimed.add(row_key(row))
    return StudyRows(rows, claimed, trials)


def labelled_rows(study: Study, rows: StudyRows) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``(numbers, x, y)``: the labelled trials by number, their rows and their labels, signed
    so that larger is better."""
    sign = direction_sign(study)
    labels = trial_labels(study, rows.trials)
    numbers = sorted(n for n, y in labels.items() if n in rows.rows and math.isfinite(y))
    x = np.array([rows.rows[n] for n in numbers]).reshape(len(numbers), -1)
    y = sign * np.array([labels[n] for n in numbers], dtype=float)
    return numbers, x, y
