"""Resource constraints, enforced before a trial: validation, metrics and violations.

A budget is a mapping ``{"flops": 5e6, "params": 1e5}`` (measured by a
:class:`~optuna_nars.SearchSpace`'s cost model, or naming outputs of ``proxy_metrics`` for a
generic space) or a callable ``params -> sequence of floats``. Either way it becomes a
*violation function*: values matrix ``(n, d)`` -> ``(n, m)``, ``<= 0`` feasible, Optuna's
``trial.set_constraint`` convention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from optuna_nars.cost import LATENCY, METRICS, LatencyTable, constraint_violations, space_costs
from optuna_nars.space import ParamSpace, SearchSpace

__all__ = [
    "Constraints",
    "Metrics",
    "ProxyMetrics",
    "ViolationFunction",
    "check_constraints",
    "check_latency_table",
    "cost_metrics",
    "infeasible_message",
    "proxy_metrics_function",
    "violation_function",
]

Constraints = Mapping[str, float] | Callable[[dict[str, Any]], Sequence[float]]
ProxyMetrics = Callable[[dict[str, Any]], Mapping[str, float]]
Metrics = Callable[[np.ndarray], dict[str, np.ndarray]]  # values matrix -> {name: (n,)}
ViolationFunction = Callable[[np.ndarray], np.ndarray]  # values matrix -> (n, m)


def check_latency_table(
    latency_table: LatencyTable | None, space: SearchSpace | Mapping[str, Any] | None
) -> None:
    """Reject a latency table that cannot measure ``space``: given without a SearchSpace, not
    a :class:`~optuna_nars.cost.LatencyTable`, measured for another space, or incomplete."""
    if latency_table is None:
        return
    if not isinstance(latency_table, LatencyTable):
        raise ValueError("latency_table must be a LatencyTable (LatencyTable.load(path)), got "
                         f"{type(latency_table).__name__}.")
    if not isinstance(space, SearchSpace):
        raise ValueError("latency_table needs a SearchSpace: the table is summed over the "
                         "blocks of its architectures.")
    latency_table.check_space(space)
    missing = latency_table.missing(space)
    if missing:
        raise ValueError(
            f"{latency_table.source} is incomplete: {len(missing)} block(s) of the space were "
            f"not measured, such as {missing[0]}; run the same `optuna-nars latency-table` "
            "command again to measure them."
        )


def check_constraints(
    constraints: Constraints | None,
    space: SearchSpace | Mapping[str, Any] | None,
    proxy_metrics: ProxyMetrics | None,
    latency_table: LatencyTable | None = None,
) -> None:
    """Reject a budget that cannot be measured, before any trial runs.

    Raises:
        ValueError: If ``constraints`` is neither a mapping nor a callable, a limit is not a
            finite number, or a name is unknown to the cost model (or there is none): a
            ``latency_ms`` budget needs a ``latency_table``.
    """
    check_latency_table(latency_table, space)
    if constraints is None or callable(constraints):
        return
    if not isinstance(constraints, Mapping):
        raise ValueError(
            "constraints must be a mapping like {'flops': 5e6} or a callable "
            f"params -> sequence of floats, got {type(constraints).__name__}."
        )
    if not constraints:
        return  # {}: no budget
    for name, limit in constraints.items():
        if not isinstance(limit, (int, float)) or not math.isfinite(limit):
            raise ValueError(f"constraints[{name!r}] must be a finite number, got {limit!r}.")
    if isinstance(space, SearchSpace):
        if LATENCY in constraints and latency_table is None:
            raise ValueError(
                f"A {LATENCY} budget needs latency_table=LatencyTable.load(path), a table of "
                "this space measured on the target device (`optuna-nars latency-table --space "
                "SPACE -o table.json`)."
            )
        known = [*METRICS, LATENCY] if latency_table is not None else list(METRICS)
        unknown = set(constraints) - set(known)
        if unknown:
            raise ValueError(
                f"Unknown constraint(s) {sorted(unknown)}: with a SearchSpace the cost model "
                f"knows {known}; pass a callable for anything else."
            )
    elif proxy_metrics is None:
        raise ValueError(
            "Budget constraints by name need a SearchSpace (for its cost model) or "
            "proxy_metrics returning those names; otherwise pass a callable constraint."
        )


def cost_metrics(space: SearchSpace, latency_table: LatencyTable | None = None) -> Metrics:
    """The cost model's metrics (:data:`~optuna_nars.cost.METRICS`, and ``latency_ms`` with a
    table) of a values matrix."""

    def metrics(values: np.ndarray) -> dict[str, np.ndarray]:
        measured = space_costs(space, values, latency_table=latency_table)
        return {k: v.astype(float) for k, v in measured.items()}

    return metrics


def proxy_metrics_function(param_space: ParamSpace, proxy: ProxyMetrics) -> Metrics:
    """``proxy`` (``params -> {name: value}``) applied to every row of a values matrix."""

    def metrics(values: np.ndarray) -> dict[str, np.ndarray]:
        rows = [dict(proxy(params)) for params in param_space.values_to_params(values)]
        names = sorted(rows[0]) if rows else []
        return {n: np.array([float(r[n]) for r in rows]) for n in names}

    return metrics


def violation_function(
    param_space: ParamSpace,
    space: SearchSpace | None,
    metrics: Metrics | None,
    constraints: Constraints | None,
    latency_table: LatencyTable | None = None,
) -> tuple[list[str], ViolationFunction]:
    """The constraint names (one per column) and the violation function of ``constraints``.

    A callable returning one value is the column ``"constraint"``; returning several, the
    columns ``"constraint_0"``, ``"constraint_1"``, ... (the count is learnt by calling it on
    one random row of the space). A mapping is ``cost - limit`` per name, sorted, from the
    cost model of ``space`` or else ``metrics``; ``None`` or ``{}`` is no column.
    """
    if constraints is None or (isinstance(constraints, Mapping) and not constraints):
        return [], lambda values: np.zeros((len(values), 0))
    if callable(constraints):
        fn = constraints

        def evaluate(values: np.ndarray) -> list[list[float]]:
            return [list(map(float, fn(p))) for p in param_space.values_to_params(values)]

        width = len(evaluate(param_space.sample_values(1, seed=0, method="random"))[0])

        def call(values: np.ndarray) -> np.ndarray:
            rows = evaluate(values)
            if any(len(r) != width for r in rows):
                raise ValueError(
                    f"The constraints callable returned {width} values for one candidate and "
                    "a different number for another; it must always return as many."
                )
            return np.array(rows, dtype=float).reshape(len(values), width)

        names = ["constraint"] if width == 1 else [f"constraint_{j}" for j in range(width)]
        return names, call
    limits = dict(constraints)
    names = sorted(limits)
    if space is not None:

        def budget(values: np.ndarray) -> np.ndarray:
            v = constraint_violations(space, values, limits, latency_table=latency_table)
            return np.column_stack([v[n] for n in names]).astype(float)

        return names, budget
    assert metrics is not None

    def budget_from_metrics(values: np.ndarray) -> np.ndarray:
        m = metrics(values)
        missing = set(names) - set(m)
        if missing:
            raise ValueError(
                f"constraints name {sorted(missing)} but proxy_metrics returns {sorted(m)}."
            )
        return np.column_stack([m[n] - limits[n] for n in names])

    return names, budget_from_metrics


def infeasible_message(
    names: Sequence[str], violations: np.ndarray, constraints: Constraints | None
) -> str:
    """Why no candidate of a sample meets the constraints, and how far the best one is.

    Args:
        names: The constraint names (columns of ``violations``).
        violations: The sample's violations, ``(n, m)``, none of its rows feasible.
        constraints: The constraints as given (a mapping's limits are quoted).
    """
    v = violations
    lines = [f"No candidate among {len(v)} sampled from the search space meets the "
             "constraints."]
    if isinstance(constraints, Mapping):
        for j, name in enumerate(names):
            limit = float(constraints[name])
            best = float(v[:, j].min()) + limit
            if best > limit:
                lines.append(
                    f"{name} <= {limit:.4g}: the cheapest candidate needs {best:.4g} "
                    f"({best / limit:.2f}x the budget); raise the budget or shrink the space."
                )
    else:
        worst = v.max(axis=0) if len(v) else []
        for j, _ in enumerate(worst):
            lines.append(
                f"constraint #{j}: the smallest value found is {float(v[:, j].min()):.4g} "
                "(<= 0 is feasible)."
            )
    return " ".join(lines)
