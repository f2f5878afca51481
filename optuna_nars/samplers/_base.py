"""The ground every optuna-nars sampler stands on: claims in the storage, rows of a space.

:class:`BaseNASSampler` owns everything but the search strategy: the relative search space (a
:class:`~optuna_nars.SearchSpace`, a dict of distributions, or inferred from the study), a
:class:`~optuna_nars.samplers._context.SpaceContext` per space, the study read as rows, the
claim written to the running trial *before* it is returned (so that concurrent workers skip it
and a fresh process continues where the study stands), the check for a rival claim, the
independent-sampling fallback, pickling, and the refusal of the studies a strategy cannot serve
(multi-objective ones unless the subclass overrides :meth:`BaseNASSampler._check_study`).

A subclass supplies :meth:`BaseNASSampler._propose` (a :class:`Claim` for a trial, given the
context and the study's rows) and, for per-space state, a context subclass
(``_context_class``) filled in by :meth:`BaseNASSampler._prepare_context`. Its ``__init__``
calls ``super().__init__(...)`` first and :meth:`BaseNASSampler._complete_init` last.

Two trials claiming the same row: the claim is written, then the storage re-read
(:meth:`BaseNASSampler._holders`). Of the trials holding the row, the lowest-numbered keeps it;
the others move on, to a candidate further down their ranking (by their trial number) so that
workers ranking alike stop colliding; a trial waits for a higher-numbered rival's verdict
(:func:`~optuna_nars.samplers._claims.keeps`). Every round adds a row to the
mover's lost set and the lowest-numbered contender never moves, so the rounds end; the fallbacks
(fresh random rows, then an explicit repeat) are the end of a finite pool.

Constraints are recorded from the row a trial really runs: enqueued (fixed) parameters override
the proposal, a trial whose parameters are all fixed is claimed in :meth:`before_trial`, and
:meth:`after_trial` records (or corrects) the values of any trial whose parameters cover the
constrained space, e.g. the first trial of an inferred space, which ran before it was known.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.samplers._base import _INDEPENDENT_SAMPLING_WARNING_TEMPLATE
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import Stage
from optuna_nars.cost import LatencyTable
from optuna_nars.samplers._claims import (
    Claim,
    holders,
    keeps,
    publish_row,
    record_constraints,
    settle_claim,
)
from optuna_nars.samplers._constraints import (
    Constraints,
    ProxyMetrics,
    check_constraints,
)
from optuna_nars.samplers._context import (
    RowKey,
    SpaceContext,
    StudyRows,
    fixed_columns,
    read_rows,
    row_key,
    trial_row,
)
from optuna_nars.space import SearchSpace

__all__ = ["BaseNASSampler"]

_logger = optuna.logging.get_logger("optuna." + __name__)

# After a collision, a trial passes over (its number mod this) free candidates.
_SPREAD = 8


class BaseNASSampler(BaseSampler):
    """Base of optuna-nars's samplers: see the module docstring for the contract.

    Args:
        search_space: A :class:`~optuna_nars.SearchSpace`, a dict of Optuna distributions, or
            ``None`` to infer the space from the study as Optuna's samplers do.
        constraints: Budgets enforced before a trial (see
            :mod:`optuna_nars.samplers._constraints`); recorded as Optuna constraints.
        proxy_metrics: For a generic space, ``params -> {name: value}`` of free statistics.
        architecture_params: For a generic space, the parameters describing the architecture.
        seed: The seed of everything the subclass derives; random when ``None``.
        independent_sampler: Sampler for parameters outside the relative space.
        warn_independent_sampling: Warn when a parameter falls back to independent sampling.
        latency_table: A :class:`~optuna_nars.cost.LatencyTable` of a SearchSpace, which makes
            ``latency_ms`` a cost metric (budgets, pretraining labels).
    """

    _context_class: ClassVar[type[SpaceContext]] = SpaceContext
    # Per-process state, rebuilt rather than pickled.
    _runtime_attrs: ClassVar[tuple[str, ...]] = ("_lock", "_contexts", "_inferer")

    def __init__(
        self,
        search_space: SearchSpace | Mapping[str, BaseDistribution] | None,
        *,
        constraints: Constraints | None,
        proxy_metrics: ProxyMetrics | None,
        architecture_params: Collection[str] | None,
        seed: int | None,
        independent_sampler: BaseSampler | None,
        warn_independent_sampling: bool,
        latency_table: LatencyTable | None = None,
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
        self._seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self._independent_sampler = independent_sampler or RandomSampler(seed=self._seed)
        self._warn_independent_sampling = warn_independent_sampling
        self._latency_table = latency_table

    def _complete_init(self) -> None:
        """Check the constraints and set up the runtime state; with a SearchSpace, build its
        context now, so that a budget no candidate meets fails in the constructor."""
        check_constraints(self._constraints, self._space, self._proxy_metrics,
                          self._latency_table)
        self._init_runtime()
        if isinstance(self._space, SearchSpace):
            self._context(self._space.distributions())

    @property
    def constraints(self) -> Constraints | None:
        """The budget the sampler enforces before every trial (as given to the constructor)."""
        return self._constraints

    @property
    def latency_table(self) -> LatencyTable | None:
        """The latency table that makes ``latency_ms`` a cost (as given to the constructor)."""
        return self._latency_table

    # ---- per-process state -----------------------------------------------------------------

    def _init_runtime(self) -> None:
        self._lock = threading.RLock()
        self._contexts: dict[tuple, SpaceContext] = {}
        self._inferer = IntersectionSearchSpace(include_pruned=True)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in self._runtime_attrs:
            del state[key]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def reseed_rng(self) -> None:
        # What is derived from ``seed`` stays on it so that every worker shares it; only the
        # fallback sampler's stream is reseeded.
        self._independent_sampler.reseed_rng()

    def _check_study(self, study: Study) -> None:
        """Raise a clear ``ValueError`` for a study the sampler cannot serve (by default a
        multi-objective one); :meth:`_serves` asks the same without raising."""
        self._raise_error_if_multi_objective(study)

    def _serves(self, study: Study) -> bool:
        try:
            self._check_study(study)
        except ValueError:
            return False
        return True

    # ---- the search space ------------------------------------------------------------------

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self._check_study(study)
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

    def _context(self, search_space: Mapping[str, BaseDistribution]) -> SpaceContext:
        """The context of ``search_space`` under the sampler's constraints (built once)."""
        key = tuple(sorted((name, repr(dist)) for name, dist in search_space.items()))
        with self._lock:
            ctx = self._contexts.get(key)
            if ctx is None:
                ctx = self._make_context(search_space, self._constraints)
                self._contexts[key] = ctx
            return ctx

    def _make_context(
        self, search_space: Mapping[str, BaseDistribution], constraints: Constraints | None
    ) -> SpaceContext:
        """A fresh context of ``search_space`` under ``constraints``."""
        ctx = self._bare_context(search_space, constraints)
        self._prepare_context(ctx, constraints)
        return ctx

    def _bare_context(
        self, search_space: Mapping[str, BaseDistribution], constraints: Constraints | None
    ) -> SpaceContext:
        """A context of ``search_space`` under ``constraints`` without the subclass's state:
        enough to measure rows."""
        return self._context_class.build(
            search_space, self._space if isinstance(self._space, SearchSpace) else None,
            constraints, architecture_params=self._architecture_params,
            proxy_metrics=self._proxy_metrics, latency_table=self._latency_table)

    def _prepare_context(self, ctx: SpaceContext, constraints: Constraints | None) -> None:
        """Fill in a subclass's per-space state of a new context (nothing by default)."""

    # ---- sampling --------------------------------------------------------------------------

    def _propose(
        self, study: Study, trial: FrozenTrial, ctx: SpaceContext, rows: StudyRows
    ) -> Claim:
        """The row to claim for ``trial``: feasible, and not taken (the first of a ranking is
        :meth:`StudyRows.pick <optuna_nars.samplers._context.StudyRows.pick>`), unless the
        feasible space is exhausted (then with ``Stage.REPEAT``)."""
        raise NotImplementedError

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._check_study(study)
        if not search_space:
            return {}
        ctx = self._context(search_space)
        fixed = trial.system_attrs.get("fixed_params") or {}
        if set(ctx.param_space.names) <= set(fixed):
            return {}  # every parameter fixed: claimed in before_trial
        columns = fixed_columns(ctx, fixed)
        with self._lock:  # threads of one process: one claim at a time
            # See the module docstring: the rounds end, and no two trials keep one row.
            lost: set[RowKey] = set()
            while True:
                claim = self._claim(study, trial, ctx, lost, columns or {})
                # A pair measured again is held against running trials only.
                rivals = functools.partial(self._holders, study, trial, ctx, claim.row,
                                           claim.stage == Stage.REMEASURE)
                if claim.stage == Stage.REPEAT or keeps(rivals, trial.number):
                    break
                lost.add(row_key(claim.row))
            settle_claim(study, trial, claim, ctx)
            if columns is None:
                _logger.warning(
                    f"Trial {trial.number}: an enqueued parameter is not a value of the search "
                    "space, so the trial's constraints cannot be measured and are not recorded."
                )
            else:
                record_constraints(study, trial, ctx, claim.row, enqueued=bool(fixed))
        params = ctx.param_space.values_to_params(claim.row)[0]
        return {k: v for k, v in params.items() if k not in fixed}

    def _claim(
        self,
        study: Study,
        trial: FrozenTrial,
        ctx: SpaceContext,
        lost: set[RowKey],
        fixed: dict[int, float],
    ) -> Claim:
        """Propose a row that no other trial holds (nor one of ``lost``), as the trial runs it
        (``fixed`` columns overriding the proposal), and publish it."""
        rows = read_rows(study, ctx, exclude=trial.number)
        rows.claimed |= lost
        rows.lost = lost
        rows.fixed = fixed
        rows.skip = trial.number % _SPREAD if lost else 0
        claim = self._propose(study, trial, ctx, rows)
        row = rows.actual(claim.row)
        if not np.array_equal(row, claim.row):
            claim = Claim(row, claim.stage, quality=claim.quality)  # predicted another row
        self._publish(study, trial, claim.row)
        return claim

    # The storage accesses of a claim, one method each (a test forces lockstep through them).

    def _publish(self, study: Study, trial: FrozenTrial, row: np.ndarray) -> None:
        publish_row(study, trial, row)

    def _holders(
        self, study: Study, trial: FrozenTrial, ctx: SpaceContext, row: np.ndarray,
        running_only: bool = False,
    ) -> list[tuple[int, bool]]:
        return holders(study, trial, ctx, row, running_only)

    # ---- parameters outside the relative space ---------------------------------------------

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._check_study(study)
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
        fixed = trial.system_attrs.get("fixed_params")
        if fixed and self._serves(study):
            self._claim_fixed(study, trial, fixed)

    def _claim_fixed(self, study: Study, trial: FrozenTrial, fixed: Mapping[str, Any]) -> None:
        """Claim the row of a trial whose parameters are all fixed (``enqueue_trial``; Optuna
        never asks :meth:`sample_relative` for it) and record its constraints, before it runs.
        It keeps the row whoever holds it: the user asked for it."""
        search_space = self._relative_space(study)
        if not search_space or not set(search_space) <= set(fixed):
            return
        try:
            ctx = self._context(search_space)
        except ValueError:
            return  # no feasible candidate: sampling says so; after_trial records the values
        columns = fixed_columns(ctx, fixed)
        if columns is None:
            return  # not a row of the space: nothing to claim or measure
        row = np.array([columns[c] for c in range(len(ctx.param_space))], dtype=float)
        with self._lock:
            self._publish(study, trial, row)
            settle_claim(study, trial, Claim(row, None), ctx)
            record_constraints(study, trial, ctx, row, enqueued=True)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        try:
            self._record_real_constraints(study, trial)
        except Exception as e:  # noqa: BLE001 - user constraints: a failure must not end the study
            _logger.warning(f"The constraints of trial {trial.number} were not recorded: {e!r}")
        finally:
            self._independent_sampler.after_trial(study, trial, state, values)

    def _record_real_constraints(self, study: Study, trial: FrozenTrial) -> None:
        """Record the constraints of the parameters ``trial`` ran, unless they are recorded
        already: for a trial that ran before its space was known (the first of an inferred
        space), or whose parameters did not come from a claim. Optuna calls
        :meth:`after_trial` before it sets the trial's final state."""
        if not self._constraints or not self._serves(study):
            return
        search_space = self._relative_space(study) or {
            name: dist for name, dist in trial.distributions.items() if not dist.single()
        }
        if not search_space or not set(search_space) <= set(trial.params):
            return
        try:
            ctx = self._context(search_space)
        except ValueError:  # no feasible candidate; the trial's own values can still be measured
            ctx = self._bare_context(search_space, self._constraints)
        row = trial_row(trial, ctx)
        if row is not None:
            record_constraints(study, trial, ctx, row, enqueued=False)
