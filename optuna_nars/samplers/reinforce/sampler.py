"""REINFORCESampler: NAS-Bench-201's REINFORCE baseline as an Optuna sampler.

The controller is a factorised categorical policy (:mod:`._policy`), updated once per labelled
trial with the REINFORCE gradient against a moving-average reward baseline. Its state is never
kept between trials: before each proposal the updates are replayed from the labelled trials in
completion order, then by number (:func:`~optuna_nars.samplers._history.completed_history`), so
that any process holding the storage and the seed derives the same policy. Within a process the
replay is cached by the history it covers and continued when the history only grew.

Then rows are drawn from the policy (with ``(seed, trial number)``); the first that is feasible
and not taken is proposed, so a sample breaking the budget is redrawn, and after
:data:`_N_DRAWS` draws the base's feasible random row is the fallback. Claims, the relative
search space and the constraints are the base sampler's (:mod:`optuna_nars.samplers._base`).

With several workers, a trial's update uses the policy as it stands when the trial's turn in
the replay comes, not the one that drew it: the off-policy error of asynchronous REINFORCE.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nars._keys import Stage
from optuna_nars._validation import check_int, check_real
from optuna_nars.samplers._base import BaseNASSampler
from optuna_nars.samplers._claims import Claim
from optuna_nars.samplers._constraints import Constraints, ProxyMetrics
from optuna_nars.samplers._context import SpaceContext, StudyRows, read_rows
from optuna_nars.samplers._history import (
    History,
    check_candidates,
    completed_history,
    propose_first,
)
from optuna_nars.samplers.reinforce._policy import Policy
from optuna_nars.space import SearchSpace

__all__ = ["REINFORCESampler"]

# Rows drawn from the policy per trial: the sample, then redraws for an infeasible or taken one.
_N_DRAWS = 64


@dataclass
class _ReinforceContext(SpaceContext):
    """The base context plus the policy replayed so far and the history it covers."""

    initial: Policy | None = None
    replayed: tuple[tuple[int, float], ...] = ()
    policy: Policy | None = None


class REINFORCESampler(BaseNASSampler):
    """REINFORCE with a factorised categorical policy, the NAS-Bench-201 baseline.

    Args:
        search_space: A :class:`~optuna_nars.SearchSpace`, a dict of Optuna distributions, or
            ``None`` to infer the space from the study as Optuna's samplers do.
        constraints: Resource budgets enforced *before* a trial, as for
            :class:`~optuna_nars.NARSSampler`: a policy sample that breaks them is redrawn.
        proxy_metrics: For a generic space, ``params -> {name: value}`` naming the metrics of
            a mapping ``constraints``.
        architecture_params: For a generic space, the architecture parameters (kept for
            symmetry with :class:`~optuna_nars.NARSSampler`; the policy covers every parameter).
        learning_rate: Adam's step size on the policy's logits. Default ``0.001``, the
            NAS-Bench-201 paper's setting: with Adam each update moves a logit by about this
            much, so over a few hundred trials the policy stays close to uniform. Raise it
            (e.g. ``0.05``) for a policy that commits within a small budget.
        baseline_momentum: Momentum of the moving-average reward baseline. Default ``0.9``,
            the NAS-Bench-201 paper's setting.
        n_bins: Actions of a numeric parameter: an integer (or stepped) range of at most
            ``n_bins`` values gets one per value, any other range ``n_bins`` equal cells of its
            sampling scale, with the value drawn uniformly within the chosen cell.
        seed: Seed of the policy's draws.
        independent_sampler: Sampler for parameters outside the relative space (default:
            :class:`~optuna.samplers.RandomSampler`).
        warn_independent_sampling: Warn when a parameter falls back to independent sampling.
    """

    _context_class = _ReinforceContext

    def __init__(
        self,
        search_space: SearchSpace | Mapping[str, BaseDistribution] | None = None,
        *,
        constraints: Constraints | None = None,
        proxy_metrics: ProxyMetrics | None = None,
        architecture_params: Collection[str] | None = None,
        learning_rate: float = 0.001,
        baseline_momentum: float = 0.9,
        n_bins: int = 10,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
    ) -> None:
        super().__init__(
            search_space,
            constraints=constraints,
            proxy_metrics=proxy_metrics,
            architecture_params=architecture_params,
            seed=seed,
            independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling,
        )
        owner = type(self).__name__
        self._learning_rate = check_real("learning_rate", learning_rate, low=0, low_open=True,
                                         example=0.001, owner=owner)
        self._baseline_momentum = check_real("baseline_momentum", baseline_momentum, low=0,
                                             high=1, high_open=True, example=0.9, owner=owner)
        self._n_bins = check_int("n_bins", n_bins, minimum=2, example=10, owner=owner)
        self._complete_init()

    def _prepare_context(self, ctx: SpaceContext, constraints: Constraints | None) -> None:
        check_candidates(ctx, constraints, self._seed)
        ctx = cast(_ReinforceContext, ctx)
        ctx.initial = Policy.uniform(ctx.param_space, self._n_bins, self._learning_rate,
                                     self._baseline_momentum)

    def _policy(self, ctx: _ReinforceContext, history: History) -> Policy:
        """The policy after the updates of ``history``, continuing the cached replay when
        ``history`` extends the history it covers."""
        key = history.key()
        with self._lock:
            n = len(ctx.replayed)
            if ctx.policy is not None and key[:n] == ctx.replayed:
                policy, start = ctx.policy.copy(), n
            else:
                policy, start = cast(Policy, ctx.initial).copy(), 0
            for i in range(start, len(key)):
                if history.feasible[i]:  # an enqueued trial breaking the budget teaches nothing
                    policy.update(history.x[i], float(history.y[i]))
            ctx.replayed, ctx.policy = key, policy
            return policy.copy()

    def _propose(
        self, study: Study, trial: FrozenTrial, ctx: SpaceContext, rows: StudyRows
    ) -> Claim:
        ctx = cast(_ReinforceContext, ctx)
        policy = self._policy(ctx, completed_history(study, ctx, rows))
        draws = policy.sample(_N_DRAWS, np.random.default_rng([self._seed, trial.number]))
        return propose_first(self, ctx, trial, rows, draws, Stage.POLICY)

    def policy_probabilities(self, study: Study) -> dict[str, np.ndarray]:
        """The policy the study's labelled trials have taught: per parameter of the relative
        search space, the probability of each action (its choices or values, or the cells of
        its range; see ``n_bins``). The same for every process holding the study."""
        search_space = self._relative_space(study)
        if not search_space:
            return {}
        ctx = cast(_ReinforceContext, self._context(search_space))
        rows = read_rows(study, ctx, exclude=None)
        policy = self._policy(ctx, completed_history(study, ctx, rows))
        return dict(zip(ctx.param_space.names, policy.probabilities(), strict=True))
