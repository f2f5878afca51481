"""A model family from one search: the trained predictor re-targeted to a ladder of budgets.

FBNetV3's deliverable is a family of models (A..G) for a ladder of compute budgets, all from
one search. :func:`family` asks :func:`~optuna_nars.retarget.retarget` (one sampler, so the
pretrained encoder is shared) for the best predicted architecture-recipe pair under each
budget of one cost metric, and :func:`pareto_points` gives the accuracy-vs-cost points of the
family and of the study's measured trials, whose Pareto fronts the dashboard figure
(:func:`optuna_nars.dashboard.figures.family_figure`) and ``optuna-nars family --png`` draw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import optuna

from optuna_nars.cost import LATENCY, METRICS, LatencyTable, space_costs
from optuna_nars.labels import trial_labels
from optuna_nars.retarget import retarget
from optuna_nars.samplers import NARSSampler
from optuna_nars.space import SearchSpace

__all__ = ["FAMILY_METRICS", "family", "pareto_points"]

FAMILY_METRICS = (*METRICS, LATENCY)


def _check_budgets(budgets: Iterable[float]) -> list[float]:
    try:
        out = sorted({float(b) for b in budgets})
    except (TypeError, ValueError):
        raise ValueError(f"budgets must be numbers, got {budgets!r}.") from None
    if not out or not all(math.isfinite(b) and b > 0 for b in out):
        raise ValueError(f"budgets must be one or more positive finite numbers, got {out}.")
    return out


def _check_metric(metric: str, latency_table: LatencyTable | None) -> None:
    if metric not in FAMILY_METRICS:
        raise ValueError(f"metric must be one of {list(FAMILY_METRICS)}, got {metric!r}.")
    if metric == LATENCY and latency_table is None:
        raise ValueError("metric='latency_ms' needs latency_table=LatencyTable.load(path) "
                         "(`optuna-nars latency-table` measures one).")


def family(
    study: optuna.Study,
    space: SearchSpace,
    budgets: Iterable[float],
    metric: str = "flops",
    *,
    latency_table: LatencyTable | None = None,
    seed: int = 0,
    sampler: NARSSampler | None = None,
) -> dict[str, Any]:
    """The best predicted architecture-recipe pair under each budget, from one predictor.

    Each member is a :func:`~optuna_nars.retarget.retarget` proposal (predicted value,
    ``predicted_std`` and the ``interval`` predicted +- one predicted standard deviation
    (scaled to cover about 68% of the errors of the study's latest measured proposals, or of
    the fit's cross-validation before five are measured: ``nars:interval_scale``), the
    ``interval_95`` calibrated the same way to cover about 95% of them (``None`` before 19 are
    measured), costs,
    arch, recipe, Optuna params, and the trial and label if it was trained already) plus its
    ``budget``. Budgets are sorted; a larger budget never gets a member predicted worse than a
    smaller one's (that member fits the larger budget too, and is reused there, with
    ``same_as`` naming the smaller budget). Every member meets its budget.

    Args:
        study: A study of ``space`` with at least two labelled trials of different values.
        budgets: Limits of ``metric`` (FLOPs, parameters, or milliseconds per batch).
        metric: ``"flops"``, ``"params"`` or ``"latency_ms"`` (which needs
            ``latency_table``).
        latency_table: A :class:`~optuna_nars.cost.LatencyTable` of ``space``; adds
            ``latency_ms`` to every member's costs.
        seed: The predictor's seed.
        sampler: A configured :class:`~optuna_nars.samplers.NARSSampler` of ``space`` to
            search with (pool size, predictor settings); built with ``latency_table``.

    Raises:
        ValueError: On bad budgets or metric, too few labels, or a budget no candidate meets.
    """
    ladder = _check_budgets(budgets)
    _check_metric(metric, latency_table)
    if sampler is None:
        sampler = NARSSampler(space, seed=seed, latency_table=latency_table)
    elif sampler.latency_table is not latency_table:
        raise ValueError("sampler must be built with the same latency_table as family() gets.")
    members: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    for budget in ladder:
        report = retarget(study, space, {metric: budget}, top=1, seed=seed,
                          latency_table=latency_table, sampler=sampler)
        if not report["proposals"]:
            raise ValueError(f"No candidate found for {metric} <= {budget:g}.")
        best = dict(report["proposals"][0])
        best.pop("rank", None)
        previous = members[-1] if members else None
        if previous is not None and previous["predicted"] > best["predicted"]:
            best = {**previous, "same_as": previous.get("same_as") or previous["budget"]}
        else:
            best["same_as"] = None
        best["budget"] = budget
        best["interval"] = [best["predicted"] - best["predicted_std"],
                            best["predicted"] + best["predicted_std"]]
        members.append(best)
    return {
        "study": study.study_name, "metric": metric, "budgets": ladder,
        "label_step": report["label_step"], "n_labels": report["n_labels"],
        "predictor": report["predictor"], "members": members,
    }


def trial_points(study: optuna.Study, space: SearchSpace, metric: str,
                 latency_table: LatencyTable | None = None) -> list[tuple[float, float, int]]:
    """``(cost, label, trial number)`` of every labelled trial of ``study`` whose parameters
    belong to ``space``, the cost by the cost model (and ``latency_table``)."""
    _check_metric(metric, latency_table)
    labels = trial_labels(study)
    trials = [t for t in study.get_trials(deepcopy=False) if t.number in labels]
    rows, numbers = [], []
    for t in trials:
        try:
            rows.append(space.to_params(space.from_params(t.params)))
            numbers.append(t.number)
        except ValueError:
            continue  # not a candidate of this space
    if not rows:
        return []
    costs = space_costs(space, space.params_to_values(rows), latency_table=latency_table)
    return [(float(c), labels[n], n) for c, n in zip(costs[metric], numbers, strict=True)]


def pareto_points(
    report: Mapping[str, Any], study: optuna.Study, space: SearchSpace,
    latency_table: LatencyTable | None = None,
) -> dict[str, list[tuple[float, float, Any]]]:
    """The points of the accuracy-vs-cost plot of a :func:`family` report: ``"family"``
    (cost, predicted, budget) per member and ``"trials"`` (cost, label, trial number) per
    labelled trial, the cost in the report's metric."""
    metric = report["metric"]
    members = [(float(m[metric]), float(m["predicted"]), m["budget"])
               for m in report["members"] if m.get(metric) is not None]
    return {"family": members,
            "trials": trial_points(study, space, metric, latency_table)}
