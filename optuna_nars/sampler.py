"""NARSSampler: FBNetV3's three-stage architecture-recipe search as an Optuna sampler.

Stages, by trial number:

1. **QMC warm start** (``n_startup_trials``): a scrambled-Sobol pool of ``pool_size`` points,
   filtered by the resource constraints, proposed in QMC order.
2. **Predictor-guided rounds** (``n_rounds`` x ``batch_size``): the accuracy predictor, pretrained
   on free labels (FLOPs, parameters) and fine-tuned on measured results, ranks the pool; the best
   candidates that are neither evaluated nor running are proposed. The predictor is refit once per
   ``batch_size`` new labels.
3. **Adaptive genetic search**: from then on, an adaptive genetic algorithm over the predictor,
   seeded with the best measured pairs, proposes the best children not yet evaluated.

The predictor learns the normal scores of the labels' ranks (robust to diverged runs and to
errors spanning decades) and its predictions are reported back on the objective's scale. On
every other proposal of stages 2 and 3 the acquisition is penalised by the distance to the
nearest measured pair (``trust_region``), which keeps the predictor from chasing its own
extrapolation; see ``benchmarks/RESULTS.md`` for what each change did.

Everything is derived from the storage and the seed: the pool from the seed, the stage from the
trial number, the predictor from the labelled trials (cached in memory, keyed by them). A proposal
is written to the running trial's system attributes before it is returned, so concurrent workers
(threads or processes) skip it, and a fresh process continues a study where it stands.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.samplers._base import _INDEPENDENT_SAMPLING_WARNING_TEMPLATE
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy.spatial.distance import cdist
from scipy.stats import norm, rankdata

from optuna_nars._keys import (
    PREDICTED_KEY,
    PREDICTED_STD_KEY,
    PREDICTOR_QUALITY_KEY,
    PROPOSAL_KEY,
    STAGE_KEY,
    Stage,
)
from optuna_nars._storage import get_chunked, set_trial_chunked
from optuna_nars._validation import check_int, check_real
from optuna_nars.candidate import Candidate
from optuna_nars.cost import METRICS, constraint_violations, space_costs
from optuna_nars.evolution import adaptive_genetic_search
from optuna_nars.labels import trial_labels
from optuna_nars.predictor import NARSPredictor
from optuna_nars.space import ParamSpace, SearchSpace

__all__ = ["NARSSampler", "Proposal", "StagePlan"]

_logger = optuna.logging.get_logger("optuna." + __name__)

Constraints = Mapping[str, float] | Callable[[dict[str, Any]], Sequence[float]]


@dataclass(frozen=True)
class Proposal:
    """A re-targeting answer: an architecture-recipe pair with its predicted value and cost."""

    params: dict[str, Any]
    predicted: float
    predicted_std: float
    costs: dict[str, float]
    candidate: Candidate | None = None


@dataclass(frozen=True)
class StagePlan:
    """How many trials each stage of :class:`NARSSampler` gets, by trial number."""

    n_startup_trials: int
    n_rounds: int
    batch_size: int

    @property
    def n_predictor_trials(self) -> int:
        """Trials of the predictor-guided rounds (stage 2)."""
        return self.n_rounds * self.batch_size

    def stage(self, trial_number: int) -> Stage:
        """The stage trial ``trial_number`` belongs to (0-based)."""
        if trial_number < self.n_startup_trials:
            return Stage.QMC
        if trial_number < self.n_startup_trials + self.n_predictor_trials:
            return Stage.PREDICTOR
        return Stage.EVOLUTION


@dataclass
class _Context:
    """What the sampler derives once per search space and constraint set."""

    param_space: ParamSpace
    space: SearchSpace | None
    constraint_names: list[str]
    violations: Callable[[np.ndarray], np.ndarray]  # (n, m): <= 0 is feasible
    metrics: Callable[[np.ndarray], dict[str, np.ndarray]] | None
    pool: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    fits: dict[tuple, _Fit] = field(default_factory=dict)
    pretrained: NARSPredictor | None = None
    # Decoded rows of finished trials, keyed by (storage, trial id).
    finished_rows: dict[tuple[int, int], np.ndarray | None] = field(default_factory=dict)

    def feasible(self, values: np.ndarray) -> np.ndarray:
        v = self.violations(values)
        return np.all(v <= 0, axis=1) if v.shape[1] else np.ones(len(values), dtype=bool)


@dataclass
class _Fit:
    """A predictor fitted on one set of labelled trials, with its pool ranking.

    The predictor learns the labels' normal scores; ``labels`` (sorted label values, their
    sorted scores) maps a predicted score back to the objective's scale.
    """

    predictor: NARSPredictor
    pool_mean: np.ndarray
    pool_std: np.ndarray
    kendall_tau: float | None
    labels: tuple[np.ndarray, np.ndarray]
    labelled: np.ndarray  # the labelled candidates, encoded
    # Per trust weight: the pool's acquisition scores, and the genetic search's
    # (values, mean, std) ordered best first.
    pool_scores: dict[float, np.ndarray] = field(default_factory=dict)
    evolved: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    @functools.cached_property
    def spacing(self) -> float:
        """The labelled candidates' median nearest-neighbour distance (0 with fewer than 2)."""
        if len(self.labelled) < 2:
            return 0.0
        d = cdist(self.labelled, self.labelled)
        np.fill_diagonal(d, np.inf)
        return float(np.median(d.min(axis=1)))

    def novelty(self, encoded: np.ndarray) -> np.ndarray:
        """Distance to the nearest labelled candidate, in units of :attr:`spacing`: how far a
        prediction extrapolates."""
        if len(self.labelled) < 2:
            return np.zeros(len(encoded))
        d = np.concatenate([cdist(chunk, self.labelled).min(axis=1)
                            for chunk in np.array_split(encoded, max(1, len(encoded) // 4096))])
        return d / self.spacing if self.spacing > 0 else d

    def to_value(self, mean: float, std: float) -> tuple[float, float]:
        """A predicted score and spread on the objective's scale: the score mapped through the
        labels' empirical quantiles (so within the measured range), the spread scaled by the
        labels' spread."""
        y, z = self.labels
        scale = float(np.std(y) / np.std(z)) if np.std(z) > 0 else 0.0
        return float(np.interp(mean, z, y)), float(std * scale)


def _normal_scores(y: np.ndarray) -> np.ndarray:
    """Rank-based Gaussianisation: heavy tails (a diverged run, errors spanning decades) would
    otherwise dominate a fit on standardised values."""
    return norm.ppf((rankdata(y) - 0.5) / len(y))


def _row_key(row: np.ndarray) -> tuple[float, ...]:
    return tuple(float(x) for x in row)


class NARSSampler(BaseSampler):
    """FBNetV3's Neural Architecture-Recipe Search as an Optuna sampler.

    Args:
        search_space: A :class:`~optuna_nars.SearchSpace` (cost model and the architecture /
            recipe split built in), a dict of Optuna distributions, or ``None`` to infer the
            space from the study as Optuna's samplers do.
        constraints: Known resource budgets, enforced *before* a trial: no infeasible candidate
            is ever proposed. A mapping ``{"flops": 5e6, "params": 1e5}`` (with a SearchSpace, or
            naming outputs of ``proxy_metrics``), or a callable ``params -> sequence of floats``
            (``<= 0`` feasible). The values are recorded on each trial as Optuna constraints.
        proxy_metrics: For a generic space, ``params -> {name: value}`` of free architecture
            statistics (model size, FLOPs) used to pretrain the predictor's encoder.
        architecture_params: For a generic space, which parameters describe the architecture
            (the encoder's input); the rest form the recipe. Default: all of them.
        n_startup_trials: Trials proposed in QMC order before the predictor is used.
        batch_size: Candidates per predictor round; the predictor is refit every ``batch_size``
            new labels (stages 2 and 3).
        n_rounds: Predictor rounds (stage 2) before the genetic search (stage 3).
        pool_size: Size of the scrambled-Sobol pool before constraint filtering.
        n_pretrain: Architectures labelled by the cost model to pretrain the encoder.
        exploration: Weight of the ensemble's spread in the acquisition ``mean + w * std``.
        trust_region: On every other proposal, the acquisition is penalised by this weight times
            the candidate's distance to the nearest measured pair (in units of the measured
            pairs' typical spacing; the predictor's outputs are normal scores of the labels), so
            that half the proposals stay where the predictor has data. ``0`` disables it.
        predictor: A configured :class:`~optuna_nars.predictor.NARSPredictor` to copy settings
            from (ensemble size, epochs, ...).
        seed: Seed for the pool, the predictor and the genetic search.
        independent_sampler: Sampler for parameters outside the relative space (default:
            :class:`~optuna.samplers.RandomSampler`).
        warn_independent_sampling: Warn when a parameter falls back to independent sampling.
    """

    def __init__(
        self,
        search_space: SearchSpace | Mapping[str, BaseDistribution] | None = None,
        *,
        constraints: Constraints | None = None,
        proxy_metrics: Callable[[dict[str, Any]], Mapping[str, float]] | None = None,
        architecture_params: Collection[str] | None = None,
        n_startup_trials: int = 10,
        batch_size: int = 10,
        n_rounds: int = 4,
        pool_size: int = 20_000,
        n_pretrain: int = 2_000,
        exploration: float = 0.0,
        trust_region: float = 1.0,
        predictor: NARSPredictor | None = None,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
    ) -> None:
        if search_space is not None and not isinstance(search_space, (SearchSpace, Mapping)):
            raise ValueError(
                "search_space must be a SearchSpace, a dict of Optuna distributions or None, "
                f"got {type(search_space).__name__}."
            )
        if isinstance(search_space, Mapping):
            bad = [k for k, d in search_space.items() if not isinstance(d, BaseDistribution)]
            if bad:
                raise ValueError(f"search_space values must be Optuna distributions: {bad}.")
        self._space = search_space
        self._constraints = constraints
        self._proxy_metrics = proxy_metrics
        self._architecture_params = (
            None if architecture_params is None else frozenset(architecture_params)
        )
        self._n_startup_trials = check_int("n_startup_trials", n_startup_trials, minimum=1)
        self._batch_size = check_int("batch_size", batch_size, minimum=1)
        self._n_rounds = check_int("n_rounds", n_rounds, minimum=0)
        self._pool_size = check_int("pool_size", pool_size, minimum=1)
        self._n_pretrain = check_int("n_pretrain", n_pretrain, minimum=0)
        self._exploration = check_real("exploration", exploration, low=0)
        self._trust_region = check_real("trust_region", trust_region, low=0)
        self._predictor_template = predictor or NARSPredictor()
        self._seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self._independent_sampler = independent_sampler or RandomSampler(seed=self._seed)
        self._warn_independent_sampling = warn_independent_sampling
        self._validate_constraints()
        self._init_runtime()
        if isinstance(search_space, SearchSpace):
            # Fail fast on budgets no candidate meets.
            self._context(search_space.distributions())

    @property
    def plan(self) -> StagePlan:
        """Trials per stage: what the dashboard and the benchmarks show of the schedule."""
        return StagePlan(self._n_startup_trials, self._n_rounds, self._batch_size)

    @property
    def constraints(self) -> Constraints | None:
        """The budget the sampler enforces before every trial (as given to the constructor)."""
        return self._constraints

    def _validate_constraints(self) -> None:
        c = self._constraints
        if c is None or callable(c):
            return
        if not isinstance(c, Mapping):
            raise ValueError(
                "constraints must be a mapping like {'flops': 5e6} or a callable "
                f"params -> sequence of floats, got {type(c).__name__}."
            )
        for name, limit in c.items():
            if not isinstance(limit, (int, float)) or not math.isfinite(limit):
                raise ValueError(f"constraints[{name!r}] must be a finite number, got {limit!r}.")
        if isinstance(self._space, SearchSpace):
            unknown = set(c) - set(METRICS)
            if unknown:
                raise ValueError(
                    f"Unknown constraint(s) {sorted(unknown)}: with a SearchSpace the cost model "
                    f"knows {list(METRICS)}; pass a callable for anything else."
                )
        elif self._proxy_metrics is None:
            raise ValueError(
                "Budget constraints by name need a SearchSpace (for its cost model) or "
                "proxy_metrics returning those names; otherwise pass a callable constraint."
            )

    def _init_runtime(self) -> None:
        self._lock = threading.RLock()
        self._contexts: dict[tuple, _Context] = {}
        self._inferer = IntersectionSearchSpace(include_pruned=True)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_lock", "_contexts", "_inferer"):
            del state[key]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def reseed_rng(self) -> None:
        # The pool and the predictor stay on ``seed`` so that every worker shares them;
        # only the fallback sampler's stream is reseeded.
        self._independent_sampler.reseed_rng()

    # ---- the search space ------------------------------------------------------------------

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self._raise_error_if_multi_objective(study)
        return self._relative_space(study)

    def _relative_space(self, study: Study) -> dict[str, BaseDistribution]:
        if isinstance(self._space, SearchSpace):
            return self._space.distributions()
        if self._space is not None:
            return dict(self._space)
        return {
            name: dist
            for name, dist in self._inferer.calculate(study).items()
            if not dist.single()
        }

    def _context(self, search_space: Mapping[str, BaseDistribution]) -> _Context:
        key = tuple(sorted((name, repr(dist)) for name, dist in search_space.items()))
        with self._lock:
            ctx = self._contexts.get(key)
            if ctx is None:
                ctx = self._make_context(search_space, self._constraints)
                self._contexts[key] = ctx
            return ctx

    def _make_context(
        self, search_space: Mapping[str, BaseDistribution], constraints: Constraints | None
    ) -> _Context:
        space = self._space if isinstance(self._space, SearchSpace) else None
        metrics: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
        if space is not None and dict(search_space) == space.distributions():
            param_space = space.param_space
            cost_space = space

            def cost_metrics(values: np.ndarray) -> dict[str, np.ndarray]:
                return {k: v.astype(float) for k, v in space_costs(cost_space, values).items()}

            metrics = cost_metrics
        else:
            space = None
            arch = self._architecture_params
            param_space = ParamSpace.from_distributions(
                search_space, None if arch is None else arch & set(search_space)
            )
            if self._proxy_metrics is not None:
                metrics = self._generic_metrics(param_space)
        names, violations = self._violation_function(param_space, space, metrics, constraints)
        ctx = _Context(param_space, space, names, violations, metrics)
        pool = param_space.sample_values(self._pool_size, seed=self._seed)
        feasible = ctx.feasible(pool)
        if not feasible.any():
            raise ValueError(self._infeasible_message(ctx, pool, constraints))
        ctx.pool = pool[feasible]
        return ctx

    def _generic_metrics(self, param_space: ParamSpace) -> Callable[[np.ndarray], dict]:
        proxy = self._proxy_metrics
        assert proxy is not None

        def metrics(values: np.ndarray) -> dict[str, np.ndarray]:
            rows = [dict(proxy(params)) for params in param_space.values_to_params(values)]
            names = sorted(rows[0]) if rows else []
            return {n: np.array([float(r[n]) for r in rows]) for n in names}

        return metrics

    @staticmethod
    def _violation_function(
        param_space: ParamSpace,
        space: SearchSpace | None,
        metrics: Callable[[np.ndarray], dict[str, np.ndarray]] | None,
        constraints: Constraints | None,
    ) -> tuple[list[str], Callable[[np.ndarray], np.ndarray]]:
        if constraints is None:
            return [], lambda values: np.zeros((len(values), 0))
        if callable(constraints):
            fn = constraints

            def call(values: np.ndarray) -> np.ndarray:
                rows = [list(map(float, fn(p))) for p in param_space.values_to_params(values)]
                return np.array(rows, dtype=float).reshape(len(values), -1)

            return ["constraint"], call
        limits = dict(constraints)
        names = sorted(limits)
        if space is not None:

            def budget(values: np.ndarray) -> np.ndarray:
                v = constraint_violations(space, values, limits)
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

    @staticmethod
    def _infeasible_message(
        ctx: _Context, pool: np.ndarray, constraints: Constraints | None
    ) -> str:
        v = ctx.violations(pool)
        lines = [f"No candidate among {len(pool)} sampled from the search space meets the "
                 "constraints."]
        if isinstance(constraints, Mapping):
            for j, name in enumerate(ctx.constraint_names):
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

    # ---- labels ----------------------------------------------------------------------------

    def _rows_and_claims(
        self, study: Study, ctx: _Context, exclude: int | None
    ) -> tuple[dict[int, np.ndarray], set[tuple[float, ...]], list[FrozenTrial]]:
        """Values rows of all trials (claimed proposals or their params) and the set of rows
        that must not be proposed again (evaluated, running or failed)."""
        trials = study._get_trials(deepcopy=False, use_cache=False)
        rows: dict[int, np.ndarray] = {}
        claimed: set[tuple[float, ...]] = set()
        for t in trials:
            if t.number == exclude:
                continue
            if t.state.is_finished():
                # Finished trials never change: decode their params once.
                key = (id(study._storage), t._trial_id)
                if key not in ctx.finished_rows:
                    ctx.finished_rows[key] = self._trial_row(t, ctx)
                row = ctx.finished_rows[key]
            else:
                row = self._trial_row(t, ctx)
            if row is not None:
                rows[t.number] = row
                claimed.add(_row_key(row))
        return rows, claimed, trials

    @staticmethod
    def _trial_row(trial: FrozenTrial, ctx: _Context) -> np.ndarray | None:
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

    def _labels(
        self, study: Study, trials: list[FrozenTrial], rows: dict[int, np.ndarray]
    ) -> tuple[list[int], np.ndarray, np.ndarray]:
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        labels = trial_labels(study, trials)
        numbers = sorted(n for n, y in labels.items() if n in rows and math.isfinite(y))
        x = np.array([rows[n] for n in numbers]).reshape(len(numbers), -1)
        y = sign * np.array([labels[n] for n in numbers], dtype=float)
        return numbers, x, y

    # ---- the predictor ---------------------------------------------------------------------

    def _pretrained(self, ctx: _Context) -> NARSPredictor:
        with self._lock:
            if ctx.pretrained is None:
                predictor = self._predictor_template.clone(seed=self._seed)
                if ctx.metrics is not None and self._n_pretrain > 0:
                    sample = ctx.param_space.sample_values(
                        self._n_pretrain, seed=self._seed + 1, method="random"
                    )
                    m = ctx.metrics(sample)
                    proxy = np.column_stack(
                        [np.log(np.maximum(v, 1e-12)) if (v > 0).all() else v for v in m.values()]
                    )
                    predictor.pretrain(ctx.param_space.encode(sample, "architecture"), proxy)
                ctx.pretrained = predictor
            return ctx.pretrained

    def _fit(self, ctx: _Context, numbers: list[int], x: np.ndarray, y: np.ndarray) -> _Fit:
        key = tuple(numbers)
        with self._lock:
            fit = ctx.fits.get(key)
            if fit is not None:
                return fit
            # A clone keeps the pretrained encoder; a fresh seed per label count.
            predictor = self._pretrained(ctx).clone(seed=self._seed + len(numbers))
            arch_x, recipe_x = self._split(ctx, x)
            z = _normal_scores(y)
            predictor.fit(arch_x, recipe_x, z)
            mean, std = predictor.predict(*self._split(ctx, ctx.pool))
            tau = None
            if len(y) >= 10:
                # 5-fold CV on at most the latest 200 labels bounds its cost.
                recent = slice(-200, None)
                tau = predictor.kendall_tau_cv(arch_x[recent], recipe_x[recent], z[recent], k=5)
            fit = _Fit(predictor, mean, std, tau, (np.sort(y), np.sort(z)),
                       np.hstack([arch_x, recipe_x]))
            ctx.fits = {key: fit}  # keep only the latest fit
            return fit

    @staticmethod
    def _split(ctx: _Context, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ps = ctx.param_space
        return ps.encode(values, "architecture"), ps.encode(values, "recipe")

    def _score(
        self,
        ctx: _Context,
        fit: _Fit,
        values: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        trust: float,
    ) -> np.ndarray:
        score = mean + self._exploration * std
        if trust > 0:
            score = score - trust * fit.novelty(np.hstack(self._split(ctx, values)))
        return score

    def _pool_score(self, ctx: _Context, fit: _Fit, trust: float) -> np.ndarray:
        if trust not in fit.pool_scores:
            fit.pool_scores[trust] = self._score(
                ctx, fit, ctx.pool, fit.pool_mean, fit.pool_std, trust
            )
        return fit.pool_scores[trust]

    def _trust_for(self, trial_number: int) -> float:
        # Even trials stay near measured pairs, odd ones follow the predictor anywhere: the
        # penalty alone gets stuck around an early incumbent (HPOLib), the bare predictor
        # chases its own extrapolation into corners (HPOBench); alternating holds up on both.
        return 0.0 if trial_number % 2 else self._trust_region

    def _evolve(
        self,
        ctx: _Context,
        fit: _Fit,
        x: np.ndarray,
        y: np.ndarray,
        feasible: Callable,
        trust: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def score(values: np.ndarray) -> np.ndarray:
            mean, std = fit.predictor.predict(*self._split(ctx, values))
            return self._score(ctx, fit, values, mean, std, trust)

        best_measured = x[np.argsort(-y)[:16]]
        best_predicted = ctx.pool[np.argsort(-self._pool_score(ctx, fit, trust))[:48]]
        initial = np.unique(np.vstack([best_measured, best_predicted]), axis=0)
        initial = initial[feasible(initial)]
        rng = np.random.default_rng([self._seed, len(y)])
        values, _ = adaptive_genetic_search(
            ctx.param_space, score, initial, feasible=feasible, rng=rng
        )
        mean, std = fit.predictor.predict(*self._split(ctx, values))
        order = np.argsort(-self._score(ctx, fit, values, mean, std, trust), kind="stable")
        return values[order], mean[order], std[order]

    # ---- sampling --------------------------------------------------------------------------

    def _refit_size(self, n_labels: int) -> int:
        """How many labels the predictor is fitted on when ``n_labels`` are available.

        Refits come every ``batch_size`` labels (a FBNetV3 round), and at most every 10% more
        labels once there are many: a fit costs O(n), so the amortised cost per trial stays flat.
        """
        if n_labels < self._batch_size:
            return n_labels
        k = self._batch_size
        while True:
            step = max(self._batch_size, k // 10)
            if k + step > n_labels:
                return k
            k += step

    def _stage(self, trial_number: int) -> Stage:
        return self.plan.stage(trial_number)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        if not search_space:
            return {}
        ctx = self._context(search_space)
        with self._lock:  # threads of one process: one claim at a time
            lost: set[tuple[float, ...]] = set()
            row, info = self._propose(study, trial, ctx, lost)
            self._record(study, trial, ctx, row, info)
            # Processes: claims are written before they are checked, so of two workers claiming
            # the same candidate at once, at least the later writer sees the other on re-reading
            # the storage; whoever sees a rival chooses again (at worst both move).
            for _ in range(32):
                if info["stage"] == Stage.REPEAT or not self._rival(study, trial, ctx, row):
                    break
                lost.add(_row_key(row))
                row, info = self._propose(study, trial, ctx, lost)
                self._record(study, trial, ctx, row, info)
        params = ctx.param_space.values_to_params(row)[0]
        fixed = trial.system_attrs.get("fixed_params") or {}
        return {k: v for k, v in params.items() if k not in fixed}

    def _rival(self, study: Study, trial: FrozenTrial, ctx: _Context, row: np.ndarray) -> bool:
        key = _row_key(row)
        for t in study._get_trials(deepcopy=False, use_cache=False):
            if t.number != trial.number:
                other = self._trial_row(t, ctx)
                if other is not None and _row_key(other) == key:
                    return True
        return False

    def _propose(
        self, study: Study, trial: FrozenTrial, ctx: _Context, lost: set[tuple[float, ...]]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        rows, claimed, trials = self._rows_and_claims(study, ctx, exclude=trial.number)
        claimed |= lost
        stage = self._stage(trial.number)
        ranking: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
        info: dict[str, Any] = {"stage": stage}
        fit: _Fit | None = None
        if stage != Stage.QMC:
            numbers, x, y = self._labels(study, trials, rows)
            # The fit uses the first K labelled trials by number, K on a fixed schedule, so any
            # worker holding the same storage derives the same predictor.
            k = self._refit_size(len(numbers))
            if k >= 2 and np.ptp(y[:k]) > 0:
                fit = self._fit(ctx, numbers[:k], x[:k], y[:k])
                if fit.kendall_tau is not None:
                    info["kendall_tau"] = fit.kendall_tau
                    info["n_labels"] = k
                trust = self._trust_for(trial.number)
                if stage == Stage.EVOLUTION:
                    if trust not in fit.evolved:
                        fit.evolved[trust] = self._evolve(
                            ctx, fit, x[:k], y[:k], ctx.feasible, trust
                        )
                    ranking.append(fit.evolved[trust])
                order = np.argsort(-self._pool_score(ctx, fit, trust), kind="stable")
                ranking.append((ctx.pool[order], fit.pool_mean[order], fit.pool_std[order]))
            else:
                info["stage"] = Stage.QMC  # too few distinct labels to fit yet
        ranking.append((ctx.pool, None, None))
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        for values, mean, std in ranking:
            for i, row in enumerate(values):
                if _row_key(row) not in claimed:
                    if fit is not None and mean is not None and std is not None:
                        value, spread = fit.to_value(mean[i], std[i])
                        info["predicted"] = sign * value
                        info["predicted_std"] = spread
                    return row, info
        # Every pool point is taken: continue with fresh feasible random points.
        rng = np.random.default_rng([self._seed, trial.number])
        for _ in range(4):
            candidates = ctx.param_space.sample_values(
                1024, seed=int(rng.integers(2**31)), method="random"
            )
            for row in candidates[ctx.feasible(candidates)]:
                if _row_key(row) not in claimed:
                    return row, {"stage": Stage.RANDOM}
        # A small space can be exhausted; then, as Optuna's samplers do, repeat the best.
        _logger.warning(
            "Every feasible candidate NARSSampler found has been evaluated or is running; "
            "repeating the best-ranked one."
        )
        values, mean, std = ranking[0]
        info = {"stage": Stage.REPEAT}
        if fit is not None and mean is not None and std is not None:
            value, spread = fit.to_value(mean[0], std[0])
            info.update(predicted=sign * value, predicted_std=spread)
        return values[0], info

    def _record(
        self, study: Study, trial: FrozenTrial, ctx: _Context, row: np.ndarray, info: dict
    ) -> None:
        storage, trial_id = study._storage, trial._trial_id
        set_trial_chunked(storage, trial_id, PROPOSAL_KEY, json.dumps(row.tolist()))
        storage.set_trial_user_attr(trial_id, STAGE_KEY, Stage(info["stage"]).value)
        if "predicted" in info:
            storage.set_trial_user_attr(trial_id, PREDICTED_KEY, info["predicted"])
            storage.set_trial_user_attr(trial_id, PREDICTED_STD_KEY, info["predicted_std"])
        violations = ctx.violations(row[None])[0]
        for name, value in zip(ctx.constraint_names, violations, strict=True):
            # Optuna's constraint convention, so the dashboard shows feasibility.
            storage.set_trial_system_attr(trial_id, f"constraints:{name}", float(value))
        if "kendall_tau" in info:
            quality = {"n_labels": info["n_labels"], "kendall_tau": info["kendall_tau"]}
            previous = study._storage.get_study_system_attrs(study._study_id).get(
                PREDICTOR_QUALITY_KEY
            )
            if previous != quality:
                storage.set_study_system_attr(study._study_id, PREDICTOR_QUALITY_KEY, quality)
                _logger.info(
                    f"Predictor refit on {quality['n_labels']} labelled trials: "
                    f"cross-validated Kendall tau {quality['kendall_tau']:.3f}."
                )

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._raise_error_if_multi_objective(study)
        if self._warn_independent_sampling and trial.number > 0:
            _logger.warning(
                _INDEPENDENT_SAMPLING_WARNING_TEMPLATE.format(
                    param_name=param_name,
                    trial_number=trial.number,
                    independent_sampler_name=self._independent_sampler.__class__.__name__,
                    sampler_name=self.__class__.__name__,
                    fallback_reason="the parameter is outside the sampler's search space",
                )
            )
        return self._independent_sampler.sample_independent(
            study, trial, param_name, param_distribution
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._independent_sampler.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._independent_sampler.after_trial(study, trial, state, values)

    # ---- re-targeting ----------------------------------------------------------------------

    def search(
        self,
        study: Study,
        *,
        constraints: Constraints | None = None,
        n: int = 10,
    ) -> list[Proposal]:
        """The top ``n`` predicted architecture-recipe pairs for a *new* budget, from the
        study's labelled trials, with no training: refit the predictor, filter a fresh pool by
        the new constraints, run the genetic search over the predictor, and rank."""
        n = check_int("n", n, minimum=1)
        self._raise_error_if_multi_objective(study)
        search_space = self._relative_space(study)
        if not search_space:
            raise ValueError("The study has no search space yet; run some trials first.")
        base = self._context(search_space)
        ctx = self._make_context(search_space, constraints)
        ctx.pretrained = self._pretrained(base)
        rows, _, trials = self._rows_and_claims(study, ctx, exclude=None)
        numbers, x, y = self._labels(study, trials, rows)
        if len(numbers) < 2 or np.ptp(y) == 0:
            raise ValueError(
                "Re-targeting needs at least two labelled trials with different values; "
                f"the study has {len(numbers)}."
            )
        fit = self._fit(ctx, numbers, x, y)
        values, mean, std = self._evolve(ctx, fit, x, y, ctx.feasible)
        values = np.vstack([values, ctx.pool])
        mean = np.concatenate([mean, fit.pool_mean])
        std = np.concatenate([std, fit.pool_std])
        order = np.argsort(-mean, kind="stable")
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        out: list[Proposal] = []
        seen: set[tuple[float, ...]] = set()
        metrics = ctx.metrics
        for i in order:
            key = _row_key(values[i])
            if key in seen:
                continue
            seen.add(key)
            params = ctx.param_space.values_to_params(values[i])[0]
            costs = {k: float(v[0]) for k, v in metrics(values[i][None]).items()} if metrics else {}
            candidate = ctx.space.from_params(params) if ctx.space is not None else None
            value, spread = fit.to_value(mean[i], std[i])
            out.append(Proposal(params, sign * value, spread, costs, candidate))
            if len(out) == n:
                break
        return out
