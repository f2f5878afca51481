"""LayerNASSampler: LayerNAS's layer-wise, cost-bucketed search as an Optuna sampler.

LayerNAS (Fan, Alon et al., Google 2023) reformulates multi-objective NAS as combinatorial
optimisation. The space is an ordered list of layers (``_layers``); layers not yet searched
hold their cheapest option, so every trial is a complete model within the budget. Layer ``i``
expands the candidates the memo table keeps for layer ``i - 1`` (``_memo``: the best
``candidates_per_bucket`` per cost bucket) by every option of layer ``i``; a child that breaks
the budget is never proposed, so only candidates that can still meet it are expanded.

The proposal for a trial, from the study's rows and labels (:func:`~optuna_nars.trial_labels`,
so the EarlyStoppingPruner's label step is honoured):

1. build the memo table of the labelled rows;
2. for layers ``i = 0, 1, ...``: the parents are the root for layer 0, else the memo table's
   candidates of layer ``i - 1`` best first (or, while none is labelled yet, the running
   candidates of that depth, so that concurrent workers need not wait); their feasible children
   not yet evaluated, running or failed are proposed in order (parent by parent, options in
   order): the first layer that has one gives the proposal (recorded as the ``layernas:layer``
   user attribute, stage ``layer``);
3. once every layer is expanded the search is over: fresh feasible random candidates (stage
   ``random``), then, when the feasible space is exhausted, the best candidate again.

Run sequentially, this is the paper's dynamic programme: layer ``i``'s memo table only changes
when a candidate of depth ``<= i`` is labelled, so layer ``i + 1`` starts once layer ``i`` is
done. Everything is derived from the storage and the seed (the claims, the relative space and
the budgets are the base sampler's, :mod:`optuna_nars.samplers._base`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nars._keys import LAYER_ATTR, Stage
from optuna_nars._validation import check_int
from optuna_nars.samplers._base import BaseNASSampler
from optuna_nars.samplers._claims import Claim
from optuna_nars.samplers._constraints import Constraints, ProxyMetrics, infeasible_message
from optuna_nars.samplers._context import (
    RowKey,
    SpaceContext,
    StudyRows,
    labelled_rows,
    row_key,
)
from optuna_nars.samplers.layernas._layers import (
    CostFunction,
    Layers,
    build_layers,
    layer_groups,
    most_expensive,
    with_root,
)
from optuna_nars.samplers.layernas._memo import Buckets, memo_table
from optuna_nars.space import SearchSpace

__all__ = ["LayerNASSampler"]

_logger = optuna.logging.get_logger("optuna." + __name__)

Cost = str | Callable[[dict[str, Any]], float]
# The metric name a callable ``cost`` is known by in ``constraints``.
COST_METRIC = "cost"


@dataclass
class _LayerNASContext(SpaceContext):
    """The base context plus the layers, the cost and the buckets of that space."""

    layers: Layers | None = None
    cost: CostFunction | None = None
    buckets: Buckets = field(default_factory=lambda: Buckets(0.0, 0.0, 1))
    # Per row: its cost and feasibility never change, and children are scored again and again.
    costs: dict[RowKey, float] = field(default_factory=dict)
    feasibility: dict[RowKey, bool] = field(default_factory=dict)


class _CostMetric:
    """``proxy_metrics`` exposing a callable ``cost`` as the metric ``"cost"`` (picklable)."""

    def __init__(self, cost: Callable[[dict[str, Any]], float]) -> None:
        self.cost = cost

    def __call__(self, params: dict[str, Any]) -> dict[str, float]:
        return {COST_METRIC: float(self.cost(params))}


class LayerNASSampler(BaseNASSampler):
    """LayerNAS's layer-wise search under a cost budget, as an Optuna sampler.

    See the module docstring for the update rule. The search space is cut into ordered layers
    (see :mod:`optuna_nars.samplers.layernas._layers`): a :class:`~optuna_nars.SearchSpace`'s
    stages in order then one layer of all its other parameters (resolution, stem, head and the
    recipe: searched last, for the architecture found), or the ``layers`` given, or one layer per
    parameter. Parameters outside the relative search space (e.g. conditional ones) are sampled
    by ``independent_sampler``.

    Args:
        search_space: A :class:`~optuna_nars.SearchSpace` (layers and cost model built in), a
            dict of Optuna distributions, or ``None`` to infer the space from the study.
        layers: The layers, in search order, as groups of parameter names, e.g.
            ``[["layer0"], ["layer1"], ...]``; parameters in no group form one last layer.
        cost: What the candidates are bucketed by: a callable ``params -> float`` (also usable
            as the budget ``constraints={"cost": limit}``), or the name of a metric of the
            SearchSpace's cost model or of ``proxy_metrics``. Default: the budget's metric
            (``"flops"`` when it names several), else ``"flops"`` (or the first proxy metric);
            with no cost at all, one bucket (a beam search keeping the best candidates).
        constraints: Budgets enforced before a trial, as for
            :class:`~optuna_nars.NARSSampler`; no candidate breaking them is ever proposed.
        proxy_metrics: For a generic space, ``params -> {name: value}`` of free statistics
            (FLOPs, parameters) that ``constraints`` and ``cost`` may name.
        n_buckets: Cost buckets per layer, equal-width from the cheapest model's cost to the
            budget on the cost (else the most expensive model's cost). The paper leaves this
            constant (its ``H``) to the user; 20 is our choice.
        candidates_per_bucket: Candidates the memo table keeps per (layer, bucket). ``1``, as
            the paper: of two models of the same cost only the better is kept.
        max_layer_options: A layer with more value combinations (or a continuous parameter)
            gets this many options: its box's centre and a seeded Sobol sample.
        seed: Seed of the sampled options and the random fallback. Workers of one study must
            share it when a layer's options are sampled.
        independent_sampler: Sampler for parameters outside the relative space (default:
            :class:`~optuna.samplers.RandomSampler`).
        warn_independent_sampling: Warn when a parameter falls back to independent sampling.

    Raises:
        ValueError: On malformed arguments, or a budget no candidate meets (with a SearchSpace
            or a dict ``search_space``, at construction).
    """

    _context_class = _LayerNASContext
    _runtime_attrs: ClassVar[tuple[str, ...]] = (*BaseNASSampler._runtime_attrs, "_layer_of")

    def __init__(
        self,
        search_space: SearchSpace | Mapping[str, BaseDistribution] | None = None,
        *,
        layers: Sequence[Sequence[str]] | None = None,
        cost: Cost | None = None,
        constraints: Constraints | None = None,
        proxy_metrics: ProxyMetrics | None = None,
        n_buckets: int = 20,
        candidates_per_bucket: int = 1,
        max_layer_options: int = 128,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
    ) -> None:
        if callable(cost) and proxy_metrics is None and not isinstance(search_space, SearchSpace):
            proxy_metrics = _CostMetric(cost)
        super().__init__(
            search_space,
            constraints=constraints,
            proxy_metrics=proxy_metrics,
            architecture_params=None,
            seed=seed,
            independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling,
        )
        self._layers = _check_layers(layers, search_space)
        if cost is not None and not (callable(cost) or isinstance(cost, str)):
            raise ValueError(
                f"cost must be a callable params -> float or a metric name, got {cost!r}."
            )
        self._cost = cost
        self._n_buckets = check_int("n_buckets", n_buckets, minimum=1)
        self._per_bucket = check_int("candidates_per_bucket", candidates_per_bucket, minimum=1)
        self._max_options = check_int("max_layer_options", max_layer_options, minimum=2)
        self._complete_init()
        if isinstance(search_space, Mapping) and search_space:
            self._context(dict(search_space))  # a budget no candidate meets fails here

    def _init_runtime(self) -> None:
        super()._init_runtime()
        self._layer_of: dict[int, int | None] = {}  # trial number -> layer of its last proposal

    # ---- the layers, the cost and the buckets of a space ------------------------------------

    def _prepare_context(self, ctx: SpaceContext, constraints: Constraints | None) -> None:
        ctx = cast(_LayerNASContext, ctx)
        name, cost = self._cost_function(ctx)
        ctx.cost = cost
        groups = layer_groups(ctx.param_space, ctx.space, self._layers)
        layers = build_layers(ctx.param_space, groups, self._max_options, self._seed, cost)
        if not ctx.feasible(layers.root[None])[0]:
            layers = with_root(layers, self._feasible_root(ctx, constraints))
        ctx.layers = layers
        if cost is not None:
            low = float(cost(layers.root[None])[0])
            limits = constraints if isinstance(constraints, Mapping) else {}
            high = float(limits[name]) if name in limits else most_expensive(layers, cost)
            ctx.buckets = Buckets(low, high, self._n_buckets)
        _logger.debug(
            f"LayerNAS layers: {[len(o) for o in layers.options]} options; buckets "
            f"{ctx.buckets}."
        )

    def _cost_function(self, ctx: _LayerNASContext) -> tuple[str | None, CostFunction | None]:
        """The cost's metric name (``None`` for none) and its function of a values matrix."""
        cost = self._cost
        if callable(cost):
            params_of = ctx.param_space.values_to_params
            return COST_METRIC, lambda values: np.array([float(cost(p)) for p in params_of(values)])
        metrics = ctx.metrics
        if metrics is None:
            if isinstance(cost, str):
                raise ValueError(
                    f"cost={cost!r} names a metric, but there is no cost model: pass a "
                    "SearchSpace, proxy_metrics returning it, or a callable cost."
                )
            return None, None
        # The metric names, from one row.
        known = sorted(metrics(ctx.param_space.sample_values(1, seed=0, method="random")))
        name = cost or _default_metric(self._constraints, known)
        if name not in known:
            raise ValueError(f"cost={name!r} is not a known metric; known: {known}.")
        return name, lambda values: np.asarray(metrics(values)[name], dtype=float)

    def _feasible_root(self, ctx: _LayerNASContext, constraints: Constraints | None) -> np.ndarray:
        """The cheapest feasible candidate of a random sample, when the cheapest options break
        the budget (a cost other than the budget's, or a callable budget)."""
        sample = ctx.param_space.sample_values(4096, seed=self._seed, method="random")
        feasible = ctx.feasible(sample)
        if not feasible.any():
            raise ValueError(
                infeasible_message(ctx.constraint_names, ctx.violations(sample), constraints)
            )
        sample = sample[feasible]
        return sample[int(np.argmin(ctx.cost(sample)))] if ctx.cost is not None else sample[0]

    def _cached(self, cache: dict[RowKey, Any], values: np.ndarray,
                compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``compute`` of each row of ``values``, through ``cache``."""
        keys = [row_key(r) for r in values]
        missing = [i for i, k in enumerate(keys) if k not in cache]
        if missing:
            for i, v in zip(missing, compute(values[missing]), strict=True):
                cache[keys[i]] = v.item()
        return np.array([cache[k] for k in keys])

    # ---- sampling --------------------------------------------------------------------------

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        params = super().sample_relative(study, trial, search_space)
        with self._lock:
            layer = self._layer_of.pop(trial.number, None)
        if layer is not None:  # after the claim is settled: the layer of the kept proposal
            study._storage.set_trial_user_attr(trial._trial_id, LAYER_ATTR, layer)
        return params

    def _propose(
        self, study: Study, trial: FrozenTrial, ctx: SpaceContext, rows: StudyRows
    ) -> Claim:
        ctx = cast(_LayerNASContext, ctx)
        layers = cast(Layers, ctx.layers)
        self._layer_of[trial.number] = None
        numbers, x, y = labelled_rows(study, rows)
        x = x.reshape(len(y), len(ctx.param_space))  # (0, 0) before the first label
        depth = layers.depth(x)
        memo = memo_table(depth, self._buckets(ctx, x), y, len(layers), self._per_bucket)
        pending = self._pending_rows(rows, set(numbers))
        for i in range(len(layers)):
            if i == 0:
                parents = layers.root[None]
            elif len(memo[i - 1]):
                parents = x[memo[i - 1]]
            else:  # nothing of depth < i is labelled yet: extend what is running
                parents = pending[layers.depth(pending) <= i - 1]
            if not len(parents):
                continue
            children = layers.children(parents, i)
            children = children[self._feasible(ctx, children)]
            j = rows.pick(children)
            if j is not None:
                self._layer_of[trial.number] = i
                return Claim(children[j], Stage.LAYER)
        # Every layer is expanded: the search is over; keep going as random search does.
        row = ctx.random_feasible_row(rows, self._seed, trial.number)
        if row is not None:
            return Claim(row, Stage.RANDOM)
        _logger.warning(
            "Every feasible candidate LayerNASSampler found has been evaluated or is running; "
            "repeating the best one."
        )
        return Claim(x[int(np.argmax(y))] if len(y) else layers.root, Stage.REPEAT)

    def _buckets(self, ctx: _LayerNASContext, values: np.ndarray) -> np.ndarray:
        if ctx.cost is None or not len(values):
            return np.zeros(len(values), dtype=int)
        return ctx.buckets.of(self._cached(ctx.costs, values, ctx.cost))

    def _feasible(self, ctx: _LayerNASContext, values: np.ndarray) -> np.ndarray:
        return self._cached(ctx.feasibility, values, ctx.feasible).astype(bool)

    @staticmethod
    def _pending_rows(rows: StudyRows, labelled: set[int]) -> np.ndarray:
        """The rows of running trials (claimed, not finished), by trial number."""
        running = {t.number for t in rows.trials if not t.state.is_finished()}
        out = [rows.rows[n] for n in sorted(rows.rows) if n in running and n not in labelled]
        width = len(next(iter(rows.rows.values()))) if rows.rows else 0
        return np.array(out, dtype=float).reshape(len(out), width)


def _default_metric(constraints: Constraints | None, known: list[str]) -> str:
    """The metric to bucket by when none is named: the budget's, preferring FLOPs."""
    names = sorted(constraints) if isinstance(constraints, Mapping) and constraints else known
    return "flops" if "flops" in names else names[0]


def _check_layers(
    layers: Sequence[Sequence[str]] | None, space: SearchSpace | Mapping[str, Any] | None
) -> list[tuple[str, ...]] | None:
    """``layers`` as tuples, checked: groups of names, none repeated, all in a known space."""
    if layers is None:
        return None
    if isinstance(layers, str) or not all(
        not isinstance(g, str) and all(isinstance(n, str) for n in g) for g in layers
    ):
        raise ValueError(
            "layers must be a list of parameter-name groups, e.g. [['layer0'], ['layer1']], "
            f"got {layers!r}."
        )
    groups = [tuple(g) for g in layers]
    names = [n for g in groups for n in g]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"layers name {repeated} in more than one group; each layer once.")
    known = space.names if isinstance(space, SearchSpace) else space
    if known is not None:
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(f"layers name {unknown}, which are not in the search space.")
    return groups
