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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial

from optuna_nars._keys import PROPOSAL_KEY
from optuna_nars._storage import get_chunked
from optuna_nars.cost import LatencyTable
from optuna_nars.labels import trial_labels
from optuna_nars.samplers._constraints import (
    Constraints,
    Metrics,
    ProxyMetrics,
    ViolationFunction,
    cost_metrics,
    proxy_metrics_function,
    violation_function,
)
from optuna_nars.space import ParamSpace, SearchSpace
from optuna_nars.stale import released_trials

__all__ = [
    "RowKey",
    "SpaceContext",
    "StudyRows",
    "current_keyed_row",
    "direction_sign",
    "fixed_columns",
    "labelled_rows",
    "read_rows",
    "row_key",
    "trial_row",
]

_logger = optuna.logging.get_logger("optuna." + __name__)

RowKey = tuple[float, ...]
_Context = TypeVar("_Context", bound="SpaceContext")


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
    # Decoded rows of finished trials and their row keys, by (storage, trial id).
    finished_rows: dict[tuple[int, int], tuple[np.ndarray, RowKey] | None] = field(
        default_factory=dict)
    # The predictor quality this process last published, keyed by (storage, study id).
    published_quality: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(
        cls: type[_Context],
        search_space: Mapping[str, BaseDistribution],
        space: SearchSpace | None,
        constraints: Constraints | None,
        *,
        architecture_params: frozenset[str] | None,
        proxy_metrics: ProxyMetrics | None,
        latency_table: LatencyTable | None,
    ) -> _Context:
        """The context of ``search_space`` (``space``: the sampler's SearchSpace, if any) under
        ``constraints``, without a subclass's own state. The cost model measures only its own
        space's rows; another space is measured by ``proxy_metrics``, if given."""
        metrics: Metrics | None = None
        if space is not None and dict(search_space) == space.distributions():
            param_space = space.param_space
            metrics = cost_metrics(space, latency_table)
        else:
            space = None
            arch = architecture_params
            param_space = ParamSpace.from_distributions(
                search_space, None if arch is None else arch & set(search_space)
            )
            if proxy_metrics is not None:
                metrics = proxy_metrics_function(param_space, proxy_metrics)
        names, violations = violation_function(param_space, space, metrics, constraints,
                                               latency_table)
        return cls(param_space, space, names, violations, metrics)

    def feasible(self, values: np.ndarray) -> np.ndarray:
        """Which rows of ``values`` meet every constraint."""
        v = self.violations(values)
        return np.all(v <= 0, axis=1) if v.shape[1] else np.ones(len(values), dtype=bool)

    def random_feasible_row(self, rows: StudyRows, seed: int, trial_number: int
                            ) -> np.ndarray | None:
        """A fresh feasible random row not taken in ``rows`` (a few thousand tries, from a
        stream of ``seed`` and ``trial_number``), or ``None``: the fallback once a sampler's
        own candidates are all taken."""
        rng = np.random.default_rng([seed, trial_number])
        for _ in range(4):
            candidates = self.param_space.sample_values(
                1024, seed=int(rng.integers(2**31)), method="random"
            )
            for row in candidates[self.feasible(candidates)]:
                if not rows.taken(row):
                    return row
        return None


@dataclass
class StudyRows:
    """The study as rows: what was tried, what is running, what must not be proposed again.

    A proposal for the trial being sampled is read through :meth:`actual` (its fixed
    parameters, from ``enqueue_trial``, override the proposal) and :meth:`pick` (the first
    candidate of a ranking whose actual row is free, or, with ``skip``, a later one).
    """

    rows: dict[int, np.ndarray]  # trial number -> values row
    claimed: set[RowKey]  # evaluated, running or failed: never proposed again
    trials: list[FrozenTrial]
    fixed: dict[int, float] = field(default_factory=dict)  # column -> raw value, from fixed params
    # Free candidates to pass over before taking one: spreads workers that rank alike apart
    # once they have collided (see BaseNASSampler.sample_relative).
    skip: int = 0
    # Rows this trial claimed and lost to a rival: not claimed again, even to measure again.
    lost: set[RowKey] = field(default_factory=set)

    def actual(self, row: np.ndarray) -> np.ndarray:
        """``row`` as the trial will run it: the fixed parameters override the proposal."""
        if not self.fixed:
            return row
        out = np.array(row, dtype=float)
        out[list(self.fixed)] = list(self.fixed.values())
        return out

    def taken(self, row: np.ndarray) -> bool:
        """Whether the trial running proposal ``row`` would repeat a claimed row."""
        return row_key(self.actual(row)) in self.claimed

    def pick(self, values: np.ndarray) -> int | None:
        """The index of the candidate of ``values`` (best first) to propose: the first whose
        actual row is not taken after passing over ``skip`` free ones (fewer if there are not
        that many); ``None`` if every one is taken."""
        chosen = None
        passed = 0
        for i, row in enumerate(values):
            if not self.taken(row):
                chosen = i
                if passed == self.skip:
                    break
                passed += 1
        return chosen


def row_key(row: np.ndarray) -> RowKey:
    """A hashable key of a values row: its values as Python floats (every proposal keys every
    trial of the study; ``tolist`` is about 4x faster than a ``float()`` per element)."""
    return tuple(np.asarray(row, dtype=float).tolist())


def direction_sign(study: Study, objective: int | None = None) -> float:
    """``1`` when the study maximises (objective ``objective`` of a multi-objective study),
    ``-1`` when it minimises: labels times the sign are always to be maximised."""
    direction = study.direction if objective is None else study.directions[objective]
    return 1.0 if direction == StudyDirection.MAXIMIZE else -1.0


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
        try:
            row = np.asarray(json.loads(text), dtype=float)
        except (ValueError, TypeError):
            # Another worker is rewriting its claim (chunks of two writes): unknown for now.
            _logger.debug(f"The claim of trial {trial.number} cannot be read yet: {text[:80]!r}")
            return None
        if row.shape == (len(names),):
            return row
    return None


def fixed_columns(ctx: SpaceContext, fixed: Mapping[str, Any]) -> dict[int, float] | None:
    """The columns and raw values of the parameters of ``fixed`` (``enqueue_trial``'s) that are
    in the space; ``None`` if one of them is not a value of its dimension."""
    out: dict[int, float] = {}
    for c, p in enumerate(ctx.param_space.params):
        if p.name in fixed:
            try:
                out[c] = float(p.dim.to_raw(fixed[p.name]))
            except (ValueError, TypeError):
                return None
    return out


def current_keyed_row(
    study: Study, trial: FrozenTrial, ctx: SpaceContext
) -> tuple[np.ndarray, RowKey] | None:
    """:func:`trial_row` of a trial just read from ``study``'s storage, with its
    :func:`row_key`; finished trials never change, so theirs are made once per process (every
    proposal reads every trial)."""
    if not trial.state.is_finished():
        return _keyed(trial_row(trial, ctx))
    key = (id(study._storage), trial._trial_id)
    if key not in ctx.finished_rows:
        ctx.finished_rows[key] = _keyed(trial_row(trial, ctx))
    return ctx.finished_rows[key]


def _keyed(row: np.ndarray | None) -> tuple[np.ndarray, RowKey] | None:
    return None if row is None else (row, row_key(row))


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
        keyed = current_keyed_row(study, t, ctx)
        if keyed is not None:
            rows[t.number] = keyed[0]
            claimed.add(keyed[1])
    return StudyRows(rows, claimed, trials)


def labelled_rows(
    study: Study, rows: StudyRows, objective: int | None = None
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``(numbers, x, y)``: the labelled trials by number, their rows and their labels (of
    objective ``objective`` in a multi-objective study), signed so that larger is better."""
    sign = direction_sign(study, objective)
    labels = trial_labels(study, rows.trials, objective)
    numbers = sorted(n for n, y in labels.items() if n in rows.rows and math.isfinite(y))
    width = len(next(iter(rows.rows.values()))) if rows.rows else 0
    x = np.array([rows.rows[n] for n in numbers], dtype=float).reshape(len(numbers), width)
    y = sign * np.array([labels[n] for n in numbers], dtype=float)
    return numbers, x, y
