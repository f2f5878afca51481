"""RegularizedEvolutionSampler: aging evolution (Real et al., AAAI 2019) as an Optuna sampler.

While fewer than ``population_size`` trials have a label, trials are feasible random rows (the
warm start). From then on, each trial is a mutation of a tournament winner among the population,
the ``population_size`` trials that finished last (see :mod:`._aging`). Everything is derived
from the storage and the seed (the population from the trials' completion order, the draws from
``(seed, trial number)``), so a fresh process or another worker continues the study where it
stands. Claims, the relative search space and the constraints are the base sampler's
(:mod:`optuna_nars.samplers._base`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nars._keys import Stage
from optuna_nars._validation import check_int, check_real
from optuna_nars.evolution.operators import VariationOperators
from optuna_nars.samplers._base import BaseNASSampler
from optuna_nars.samplers._claims import Claim
from optuna_nars.samplers._constraints import Constraints, ProxyMetrics
from optuna_nars.samplers._context import SpaceContext, StudyRows
from optuna_nars.samplers._history import check_candidates, completed_history, propose_first
from optuna_nars.samplers.evolution._aging import children, population
from optuna_nars.space import SearchSpace

__all__ = ["RegularizedEvolutionSampler"]

# Children drawn per trial: the cycle's child, then redraws for an infeasible or taken one.
_N_DRAWS = 64


class RegularizedEvolutionSampler(BaseNASSampler):
    """Regularized (aging) evolution, Real et al. (AAAI 2019), the NAS-Bench-201 baseline.

    Args:
        search_space: A :class:`~optuna_nars.SearchSpace`, a dict of Optuna distributions, or
            ``None`` to infer the space from the study as Optuna's samplers do.
        constraints: Resource budgets enforced *before* a trial, as for
            :class:`~optuna_nars.NARSSampler`: a child that breaks them is redrawn.
        proxy_metrics: For a generic space, ``params -> {name: value}`` naming the metrics of
            a mapping ``constraints``.
        architecture_params: For a generic space, the architecture parameters (kept for
            symmetry with :class:`~optuna_nars.NARSSampler`; evolution mutates every parameter).
        population_size: ``P``, the trials in the population (the latest to finish) and the
            random warm start. Default 10, NAS-Bench-201's setting (Real et al. used 100 for
            runs of 20,000 models): with 25-200 trials a population of 100 would leave the whole
            run random, and 10 lets evolution start after 10 trials and renew the population
            about 19 times in 200.
        sample_size: ``S``, the members drawn (with replacement) per tournament, ``<= P``.
            Default 3, NAS-Bench-201's setting; ``S / P = 0.3`` is about Real et al.'s
            selection pressure (25 / 100).
        mutation_scale: Standard deviation, in the unit cube, of a numeric parameter's mutation
            (a categorical one moves to another choice uniformly).
        seed: Seed of the warm start and of every tournament and mutation.
        independent_sampler: Sampler for parameters outside the relative space (default:
            :class:`~optuna.samplers.RandomSampler`).
        warn_independent_sampling: Warn when a parameter falls back to independent sampling.
    """

    def __init__(
        self,
        search_space: SearchSpace | Mapping[str, BaseDistribution] | None = None,
        *,
        constraints: Constraints | None = None,
        proxy_metrics: ProxyMetrics | None = None,
        architecture_params: Collection[str] | None = None,
        population_size: int = 10,
        sample_size: int = 3,
        mutation_scale: float = 0.1,
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
        self._population_size = check_int("population_size", population_size, minimum=1,
                                          example=10, owner=owner)
        self._sample_size = check_int(
            "sample_size", sample_size, minimum=1, maximum=self._population_size, example=3,
            owner=owner, hint="A tournament draws from the population, so sample_size <= "
            "population_size.",
        )
        self._mutation_scale = check_real("mutation_scale", mutation_scale, low=0,
                                          low_open=True, example=0.1, owner=owner)
        self._complete_init()

    def _prepare_context(self, ctx: SpaceContext, constraints: Constraints | None) -> None:
        check_candidates(ctx, constraints, self._seed)

    def _propose(
        self, study: Study, trial: FrozenTrial, ctx: SpaceContext, rows: StudyRows
    ) -> Claim:
        history = completed_history(study, ctx, rows)
        if len(history.numbers) < self._population_size:
            return propose_first(self, ctx, trial, rows, np.zeros((0, len(ctx.param_space))),
                                 Stage.RANDOM)
        members = population(history, self._population_size)
        ops = VariationOperators(ctx.param_space, self._mutation_scale)
        rng = np.random.default_rng([self._seed, trial.number])
        kids = children(history, members, self._sample_size, ops, _N_DRAWS, rng)
        return propose_first(self, ctx, trial, rows, kids, Stage.EVOLUTION)
