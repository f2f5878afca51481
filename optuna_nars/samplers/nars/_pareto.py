"""NARSSampler in multi-objective studies: one learned objective, the others free metrics.

**Which objective is which.** ``objective_metrics`` has one entry per objective of the study, in
the order of its ``directions``: ``None`` for the one objective the predictor learns (accuracy,
measured by training), or the name of a free metric the objective *equals* (``"flops"`` or
``"params"`` of a :class:`~optuna_nars.SearchSpace`'s cost model, or an output of
``proxy_metrics``). A free metric is computed exactly for every candidate, never predicted.
Directions may be anything (``["maximize", "minimize"]``, ``["minimize", "maximize"]``, ...);
exactly one entry is ``None`` (the predictor learns one label per trial) and at least one names
a metric. A multi-objective study without ``objective_metrics``, a count that does not match
the study's objectives, or an unknown metric is a ``ValueError`` saying so.

**What is proposed.** The candidate (of the QMC pool, and from stage 3 also of a genetic search
over the predictor) with the largest *predicted hypervolume improvement* (HVI) over the measured
front: the feasible COMPLETE trials' values. The learned objective is compared in the predictor's
own units (normal scores of the labels' ranks, ``_model``; measured values are mapped through
the same ranks), the free metrics in their own units; a monotone map per axis keeps the Pareto
order, and the normal scores keep a diverged run from setting the reference point. Axes are
scaled to the labels' and the pool's ranges and the reference point is the worst of each plus
10%. The HVI of one point is exact, summed over the boxes of the non-dominated region that
Optuna's ``get_non_dominated_box_bounds`` (as GPSampler uses it) returns. A candidate predicted
to be dominated scores minus the improvement it would need to leave the dominated region (the
additive epsilon), so the ranking never runs out of order. ``exploration`` adds its weight times
the ensemble's spread to the predicted score, as in the single-objective acquisition; the trust
region does not apply (its penalty has no common unit with a hypervolume).

Everything is derived from the storage and the seed, as in single-objective studies: the fit is
the process's own (cached by what it was fitted on), the claims are the base sampler's. The
rankings are *not* shared through the study: the front, and so the order, changes with every
finished trial, so each worker scores the pool itself (a few milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna._hypervolume import get_non_dominated_box_bounds
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import Stage
from optuna_nars.cost import METRICS
from optuna_nars.evolution import adaptive_genetic_search
from optuna_nars.predictor import encode_split
from optuna_nars.samplers._claims import Claim
from optuna_nars.samplers._context import SpaceContext, StudyRows
from optuna_nars.samplers.nars._model import Fit
from optuna_nars.samplers.nars._shared_fit import fit_digest, fit_set, recorded_predictions
from optuna_nars.samplers.nars._state import stage_plan
from optuna_nars.space import SearchSpace

if TYPE_CHECKING:
    from optuna_nars.samplers.nars._fitting import Fitter
    from optuna_nars.samplers.nars._state import NARSContext, ParetoCache

__all__ = ["check_objective_metrics", "check_study", "pool_metrics", "propose_pareto"]

_logger = optuna.logging.get_logger("optuna." + __name__)

_EXAMPLE = ("e.g. objective_metrics=[None, 'flops'] with directions=['maximize', 'minimize']: "
            "objective 0 is learned, objective 1 equals the candidate's FLOPs")
_MARGIN = 0.1  # the reference point: the worst of each axis plus this share of its range


def check_objective_metrics(
    objective_metrics: Sequence[str | None] | None,
    space: SearchSpace | Mapping[str, Any] | None,
    has_proxy_metrics: bool,
) -> tuple[str | None, ...] | None:
    """``objective_metrics`` validated (see the module docstring) as a tuple, or ``None``."""
    if objective_metrics is None:
        return None
    if isinstance(objective_metrics, str) or not isinstance(objective_metrics, Sequence):
        raise ValueError(f"objective_metrics must be a list with one entry per objective, "
                         f"{_EXAMPLE}. Got {objective_metrics!r}.")
    entries = tuple(objective_metrics)
    bad = [e for e in entries if e is not None and not isinstance(e, str)]
    if bad or len(entries) < 2 or entries.count(None) != 1:
        raise ValueError(
            "objective_metrics needs one entry per objective (at least two): exactly one None "
            "(the objective the predictor learns) and, for each other objective, the name of "
            f"the free metric it equals; {_EXAMPLE}. Got {objective_metrics!r}."
        )
    names = [e for e in entries if e is not None]
    if len(set(names)) != len(names):
        raise ValueError(f"objective_metrics names a metric twice: {objective_metrics!r}.")
    if isinstance(space, SearchSpace):
        unknown = sorted(set(names) - set(METRICS))
        if unknown:
            raise ValueError(f"Unknown objective metric(s) {unknown}: the cost model of a "
                             f"SearchSpace knows {list(METRICS)}.")
    elif not has_proxy_metrics:
        raise ValueError("objective_metrics names free metrics: with a generic search space, "
                         "pass proxy_metrics=params -> {name: value} that returns them.")
    return entries


def check_study(entries: tuple[str | None, ...] | None, study: Study) -> None:
    """Raise a clear ``ValueError`` when ``study``'s objectives do not match ``entries``."""
    n = len(study.directions)
    if entries is None:
        if n > 1:
            raise ValueError(
                f"NARSSampler in a multi-objective study ({n} objectives) needs "
                "objective_metrics: None for the objective the predictor learns and the name "
                f"of the free metric each other objective equals; {_EXAMPLE}."
            )
        return
    if n != len(entries):
        raise ValueError(
            f"objective_metrics={list(entries)!r} describes {len(entries)} objectives but the "
            f"study has {n}; give one entry per objective of the study's directions."
        )


@dataclass(frozen=True)
class _Axes:
    """The objectives as loss coordinates (smaller is better) scaled to about [0, 1]."""

    learned: int
    metrics: list[tuple[int, str]]
    signs: np.ndarray  # +1 maximise, -1 minimise, per objective
    lo: np.ndarray
    span: np.ndarray

    def losses(self, score: np.ndarray, metrics: Mapping[str, np.ndarray]) -> np.ndarray:
        """Scaled losses of candidates predicted ``score`` (larger is better) with ``metrics``."""
        out = np.empty((len(score), len(self.signs)))
        out[:, self.learned] = -score
        for j, name in self.metrics:
            out[:, j] = -self.signs[j] * metrics[name]
        return (out - self.lo) / self.span


def _axes(entries: tuple[str | None, ...], study: Study, fit: Fit,
          pool_metrics: Mapping[str, np.ndarray]) -> _Axes:
    signs = np.array([1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in study.directions])
    learned = entries.index(None)
    metrics = [(j, name) for j, name in enumerate(entries) if name is not None]
    z = fit.labels[1]
    lo, hi = np.empty(len(entries)), np.empty(len(entries))
    lo[learned], hi[learned] = -z.max(), -z.min()
    for j, name in metrics:
        loss = -signs[j] * pool_metrics[name]
        lo[j], hi[j] = loss.min(), loss.max()
    span = np.where(hi > lo, hi - lo, 1.0)
    return _Axes(learned, metrics, signs, lo, span)


def _front(study: Study, ctx: SpaceContext, rows: StudyRows, fit: Fit, axes: _Axes,
           cache: ParetoCache, numbers: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scaled losses and rows of the feasible COMPLETE trials (of ``numbers`` when given)."""
    trials = [t for t in rows.trials
              if t.state == TrialState.COMPLETE and t.number in rows.rows and t.values
              and np.all(np.isfinite(t.values)) and (numbers is None or t.number in numbers)]
    x = np.array([rows.rows[t.number] for t in trials], dtype=float)
    if not len(trials):
        return np.zeros((0, len(axes.signs))), x
    keep = ctx.feasible(x)
    trials, x = [t for t, k in zip(trials, keep, strict=True) if k], x[keep]
    values = np.array([t.values for t in trials], dtype=float).reshape(len(trials), -1)
    _warn_mismatch(ctx, x, values, axes, cache)
    y, z = fit.labels  # the learned objective in the predictor's units (normal scores)
    score = np.interp(axes.signs[axes.learned] * values[:, axes.learned], y, z)
    metrics = {name: values[:, j] for j, name in axes.metrics}
    return axes.losses(score, metrics), x


def _warn_mismatch(ctx: SpaceContext, x: np.ndarray, values: np.ndarray, axes: _Axes,
                   cache: ParetoCache) -> None:
    """Warn once when a measured objective differs from the metric it is said to equal."""
    if cache.warned or ctx.metrics is None or not len(x):
        return
    computed = ctx.metrics(x)
    for j, name in axes.metrics:
        if not np.allclose(values[:, j], computed[name], rtol=1e-6, atol=0):
            cache.warned = True
            _logger.warning(
                f"Objective {j} of the study's trials differs from the free metric {name!r} "
                "that objective_metrics says it equals; NARSSampler ranks candidates by the "
                "metric. Check objective_metrics against the objective's return values."
            )


def improvement(points: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The hypervolume improvement (losses, reference ``ref``) of each of ``points`` over
    ``front``; minus the additive epsilon for a dominated point (see the module docstring)."""
    front = np.minimum(front, ref)
    if len(front):
        lower, upper = get_non_dominated_box_bounds(front, ref)
    else:
        lower, upper = np.full((1, len(ref)), -np.inf), ref[None]
    out = np.empty(len(points))
    for chunk in np.array_split(np.arange(len(points)), max(1, len(points) // 2048)):
        p = points[chunk][:, None, :]
        hvi = np.prod(np.maximum(upper - np.maximum(lower, p), 0.0), axis=2).sum(axis=1)
        if len(front):
            eps = np.max(np.min(p - front[None], axis=2), axis=1).clip(min=0.0)
            hvi = np.where(hvi > 0, hvi, -eps)
        out[chunk] = hvi
    return out


def _evolved(fitter: Fitter, ctx: NARSContext, fit: Fit, key: str, axes: _Axes,
             front: np.ndarray, front_rows: np.ndarray, ref: np.ndarray,
             cache: ParetoCache) -> np.ndarray:
    """The genetic search's final population for ``fit``, climbing the predicted HVI over the
    fit set's own front (so every worker searches alike), cached per fit."""
    if key not in cache.evolved:
        exploration = fitter.settings.exploration
        metrics_fn = ctx.metrics
        assert metrics_fn is not None  # checked with the context

        def score(values: np.ndarray) -> np.ndarray:
            mean, std = fit.predictor.predict(*encode_split(ctx.param_space, values))
            points = axes.losses(mean + exploration * std, metrics_fn(values))
            return improvement(points, front, ref)

        pool_score = improvement(axes.losses(fit.pool_mean + exploration * fit.pool_std,
                                             cache.pool_metrics), front, ref)
        initial = np.unique(np.vstack([front_rows, ctx.pool[np.argsort(-pool_score)[:48]]]),
                            axis=0)
        rng = np.random.default_rng([fitter.settings.seed, len(fit.labels[0]), 7])
        values, _ = adaptive_genetic_search(ctx.param_space, score, initial[ctx.feasible(initial)],
                                            feasible=ctx.feasible, rng=rng)
        cache.evolved = {key: values}  # the latest fit's only
    return cache.evolved[key]


def propose_pareto(fitter: Fitter, entries: tuple[str | None, ...], study: Study,
                   trial: FrozenTrial, ctx: NARSContext, rows: StudyRows) -> Claim | None:
    """The claim for ``trial`` of a multi-objective study (``entries``: the checked
    ``objective_metrics``); ``None`` when the QMC pool order applies (the warm start, or too few
    distinct labels to fit)."""
    assert ctx.pareto is not None
    cache = ctx.pareto
    plan = stage_plan(ctx)
    stage = plan.stage(trial.number)
    if stage == Stage.QMC:
        return None
    learned = entries.index(None)
    numbers, x, y = fit_set(study, rows, plan, objective=learned)
    if len(numbers) < 2 or np.ptp(y) == 0:
        return None
    recorded = recorded_predictions(study, rows, numbers, objective=learned)
    fit = fitter.fit(study, ctx, numbers, x, y, recorded)
    axes = _axes(entries, study, fit, cache.pool_metrics)
    ref = np.full(len(entries), 1.0 + _MARGIN)
    values = ctx.pool
    mean, std = fit.pool_mean, fit.pool_std
    metrics = cache.pool_metrics
    if stage == Stage.EVOLUTION:
        fit_front, fit_rows = _front(study, ctx, rows, fit, axes, cache, set(numbers))
        key = fit_digest(fitter.base(ctx), x, y)
        evolved = _evolved(fitter, ctx, fit, key, axes, fit_front, fit_rows, ref, cache)
        e_mean, e_std = fit.predictor.predict(*encode_split(ctx.param_space, evolved))
        e_metrics = ctx.metrics(evolved) if ctx.metrics is not None else {}
        values, mean, std = (np.vstack([evolved, values]), np.concatenate([e_mean, mean]),
                             np.concatenate([e_std, std]))
        metrics = {k: np.concatenate([e_metrics[k], v]) for k, v in metrics.items()}
    front, _ = _front(study, ctx, rows, fit, axes, cache)
    exploration = fitter.settings.exploration
    scores = improvement(axes.losses(mean + exploration * std, metrics), front, ref)
    order = np.argsort(-scores, kind="stable")
    i = rows.pick(values[order])
    if i is None:
        return None  # every candidate is taken: the pool's fallbacks
    k = order[i]
    value, spread = fit.to_value(mean[k], std[k])
    quality = ({"n_labels": len(numbers), "kendall_tau": fit.kendall_tau}
               if fit.kendall_tau is not None else None)
    predicted = axes.signs[axes.learned] * value
    return Claim(values[k], stage, predicted=predicted, predicted_std=spread,
                 interval_scale=fit.interval_scale,
                 interval_95=fit.interval_95(predicted, spread), quality=quality)


def pool_metrics(ctx: SpaceContext, entries: tuple[str | None, ...],
                 pool: np.ndarray) -> dict[str, np.ndarray]:
    """The free metrics of ``entries`` on ``pool``; a clear error for a name the context's
    metrics do not give."""
    names = [e for e in entries if e is not None]
    available = ctx.metrics(pool) if ctx.metrics is not None else {}
    missing = sorted(set(names) - set(available))
    if missing:
        raise ValueError(f"objective_metrics names {missing}, which the free metrics of this "
                         f"search space do not give (they give {sorted(available)}).")
    return {name: np.asarray(available[name], dtype=float) for name in names}
