"""PARSECSampler: probabilistic architecture search (PARSEC), with FP-NAS's speed-ups.

A categorical distribution per discrete parameter (``_distribution``); every trial samples one
architecture from it (nothing is trained jointly: the memory of a single model); every batch of
finished trials updates it by PARSEC's empirical-Bayes Monte Carlo gradient (``_update``).
FP-NAS's options (``_schedule``): the batch size follows the distribution's entropy
(``adaptive_samples``), and the layers of a stage start from one shared distribution that is
refined per layer (``coarse_to_fine``).

Everything is derived from the storage and the seed: the distribution is replayed from the
labelled finished trials in completion order (cached by the trials and labels seen), the draws
of trial ``n`` come from the generator ``(seed, n)``. Claims, the relative search space and the
constraints are the base sampler's (:mod:`optuna_nars.samplers._base`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nars._keys import Stage
from optuna_nars._validation import check_int, check_real
from optuna_nars.labels import trial_labels
from optuna_nars.samplers._base import BaseNASSampler
from optuna_nars.samplers._claims import Claim
from optuna_nars.samplers._constraints import Constraints, ProxyMetrics, infeasible_message
from optuna_nars.samplers._context import SpaceContext, StudyRows, direction_sign, read_rows
from optuna_nars.samplers.parsec._distribution import Distribution, Prior, Structure
from optuna_nars.samplers.parsec._schedule import Schedule, Update, replay
from optuna_nars.space import SearchSpace

__all__ = ["PARSECSampler"]

_logger = optuna.logging.get_logger("optuna." + __name__)

# Redraws before giving up on the distribution for one trial: _DRAW_BATCHES x _DRAW_SIZE.
_DRAW_BATCHES = 8
_DRAW_SIZE = 256
# Uniform draws that check the budget (and the prior) can be met at all.
_POOL_SIZE = 4096


@dataclass
class _PARSECContext(SpaceContext):
    """The base context plus the modelled structure, the initial distribution, a feasible
    uniform pool, and the latest replay (keyed by the trials and labels it saw)."""

    structure: Structure | None = None
    initial: Distribution | None = None
    pool: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    replayed: tuple[tuple, Distribution, list[Update]] | None = None


class PARSECSampler(BaseNASSampler):
    """PARSEC's probabilistic architecture search, with FP-NAS's speed-ups as options.

    Each trial samples one architecture from a categorical distribution per discrete parameter
    (categorical, or an integer range of at most 64 values); other parameters (continuous
    recipe parameters, say) are drawn uniformly at random. Every ``K`` finished trials, the
    distribution takes one step of PARSEC's empirical-Bayes update (logits ``theta_l`` of
    parameter ``l``, the batch's rewards standardised to ``z``, larger better)::

        w = softmax(z / temperature)
        theta_l <- theta_l + learning_rate * sum_k (w_k - 1/K) onehot(a_k,l)

    (the Monte Carlo gradient of the log marginal likelihood, ``sum_k w_k grad log p(a_k)``,
    with the baseline ``1/K``; see :mod:`optuna_nars.samplers.parsec._update`).

    Args:
        search_space: A :class:`~optuna_nars.SearchSpace`, a dict of Optuna distributions, or
            ``None`` to infer the space from the study as Optuna's samplers do.
        constraints: Budgets enforced *before* a trial, as for :class:`NARSSampler`: a draw that
            breaks them is redrawn. If none of ``8 x 256`` draws is feasible and new, the trial
            gets a feasible random candidate (with a warning naming the budget): a learnt
            distribution never gives a feasible model probability exactly 0, so that is a
            sampling-efficiency problem, not a reason to end the study. A budget no uniform
            draw meets, or a ``prior`` with no mass on any feasible draw, is a ``ValueError``
            when the space is first built (the constructor, with a SearchSpace).
        proxy_metrics: For a generic space, ``params -> {name: value}`` naming the budgets.
        architecture_params: For a generic space, the architecture parameters (recorded in
            the space's split; every discrete parameter is modelled).
        n_samples: ``K``, architectures per update (PARSEC's sample count; the most with
            ``adaptive_samples``).
        min_samples: The fewest architectures per update with ``adaptive_samples``.
        adaptive_samples: FP-NAS: ``K = ceil(n_samples * H / H_max)``, clipped to
            ``[min_samples, n_samples]``, where ``H`` is the distribution's entropy and
            ``H_max`` the uniform distribution's. Default: ``fpnas``.
        coarse_to_fine: FP-NAS: parameters whose names differ only in digits and that offer
            the same choices (the layers of a stage) share one distribution for the first
            ``coarse_updates`` updates, then each is refined alone. Default: ``fpnas``.
        coarse_updates: Updates made on the coarse (shared) distribution.
        fpnas: The FP-NAS preset: ``adaptive_samples`` and ``coarse_to_fine`` unless given.
        learning_rate: Step size of the update on the logits.
        temperature: Temperature of the importance weights (lower: more weight on the best
            architecture of a batch).
        prior: A learnt distribution to start from, ``{param: {choice: probability}}`` as
            :meth:`distribution` returns (PARSEC's transfer from a small problem to a larger
            one). Missing parameters are uniform; each missing choice gets ``1/n`` and the
            listed choices share the rest in proportion; unknown ones are ignored.
        seed: Seed of the draws.
        independent_sampler: Sampler for parameters outside the relative space.
        warn_independent_sampling: Warn when a parameter falls back to independent sampling.
    """

    _context_class = _PARSECContext

    def __init__(
        self,
        search_space: SearchSpace | Mapping[str, BaseDistribution] | None = None,
        *,
        constraints: Constraints | None = None,
        proxy_metrics: ProxyMetrics | None = None,
        architecture_params: Collection[str] | None = None,
        n_samples: int = 8,
        min_samples: int = 2,
        adaptive_samples: bool | None = None,
        coarse_to_fine: bool | None = None,
        coarse_updates: int = 4,
        fpnas: bool = False,
        learning_rate: float = 1.0,
        temperature: float = 1.0,
        prior: Prior | None = None,
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
        n_samples = check_int("n_samples", n_samples, minimum=1, example=8)
        min_samples = check_int("min_samples", min_samples, minimum=1, maximum=n_samples,
                                example=min(2, n_samples), hint="(at most n_samples)")
        self._schedule = Schedule(
            n_samples=n_samples,
            min_samples=min_samples,
            adaptive_samples=_flag("adaptive_samples", adaptive_samples, fpnas),
            coarse_updates=(check_int("coarse_updates", coarse_updates, minimum=0, example=4)
                            if _flag("coarse_to_fine", coarse_to_fine, fpnas) else 0),
            learning_rate=check_real("learning_rate", learning_rate, low=0, low_open=True,
                                     example=1.0),
            temperature=check_real("temperature", temperature, low=0, low_open=True,
                                   example=1.0),
        )
        self._prior = _check_prior(prior)
        self._complete_init()

    @property
    def schedule(self) -> Schedule:
        """The update settings in force (after the ``fpnas`` preset)."""
        return self._schedule

    # ---- the distribution (derived from the storage) ---------------------------------------

    def _prepare_context(self, ctx: SpaceContext, constraints: Constraints | None) -> None:
        ctx = cast(_PARSECContext, ctx)
        ctx.structure = Structure.of(ctx.param_space)
        ctx.initial = (Distribution.uniform(ctx.structure) if self._prior is None
                       else Distribution.from_prior(ctx.structure, self._prior))
        pool = ctx.param_space.sample_values(_POOL_SIZE, seed=self._seed, method="random")
        feasible = ctx.feasible(pool)
        if not feasible.any():
            raise ValueError(
                infeasible_message(ctx.constraint_names, ctx.violations(pool), constraints)
            )
        ctx.pool = pool[feasible]
        if self._prior is not None and ctx.constraint_names:
            mass = ctx.initial.log_prob(ctx.structure.indices(ctx.pool))
            if not np.isfinite(mass).any():
                raise ValueError(
                    f"The prior gives probability 0 to all {len(ctx.pool)} candidates found that "
                    f"meet the constraints ({', '.join(ctx.constraint_names)}): give their "
                    "choices a positive probability, or loosen the budget."
                )

    def _state(self, study: Study, ctx: _PARSECContext,
               rows: StudyRows) -> tuple[Distribution, list[Update]]:
        """The distribution after the study's labelled finished trials, and its updates."""
        assert ctx.structure is not None and ctx.initial is not None
        labels = trial_labels(study, rows.trials)
        done = [t for t in rows.trials
                if t.number in labels and t.number in rows.rows and t.datetime_complete]
        done.sort(key=lambda t: (t.datetime_complete, t.number))
        # Enqueued candidates that break the budget are not architectures the sampler may
        # propose: they do not move the distribution.
        x = np.array([rows.rows[t.number] for t in done]).reshape(len(done), len(ctx.param_space))
        ok = ctx.feasible(x) if len(x) else np.zeros(0, dtype=bool)
        numbers = [t.number for t, keep in zip(done, ok, strict=True) if keep]
        key = tuple((n, labels[n]) for n in numbers)
        with self._lock:
            if ctx.replayed is None or ctx.replayed[0] != key:
                rewards = direction_sign(study) * np.array([labels[n] for n in numbers])
                indices = ctx.structure.indices(x[ok])
                dist, history = replay(ctx.initial, self._schedule, numbers, indices, rewards)
                ctx.replayed = (key, dist, history)
            return ctx.replayed[1], ctx.replayed[2]

    def _study_state(self, study: Study) -> tuple[Distribution, list[Update]]:
        self._raise_error_if_multi_objective(study)
        space = self._relative_space(study)
        if not space:
            raise ValueError("The study has no search space yet: run a trial first, or pass "
                             "search_space to the sampler.")
        ctx = cast(_PARSECContext, self._context(space))
        return self._state(study, ctx, read_rows(study, ctx, exclude=None))

    def distribution(self, study: Study) -> dict[str, dict[Any, float]]:
        """The learnt distribution, ``{param: {choice: probability}}`` over the modelled
        parameters; pass it as ``prior=`` to start another study from it."""
        return self._study_state(study)[0].as_dict()

    def history(self, study: Study) -> list[Update]:
        """The updates made so far, in order (batch sizes, entropies, coarse or fine)."""
        return list(self._study_state(study)[1])

    # ---- sampling --------------------------------------------------------------------------

    def _propose(
        self, study: Study, trial: FrozenTrial, ctx: SpaceContext, rows: StudyRows
    ) -> Claim:
        ctx = cast(_PARSECContext, ctx)
        assert ctx.structure is not None
        dist, _ = self._state(study, ctx, rows)
        rng = np.random.default_rng([self._seed, trial.number])
        for _ in range(_DRAW_BATCHES):
            values = ctx.param_space.sample_values(
                _DRAW_SIZE, seed=int(rng.integers(2**31)), method="random"
            )
            drawn = dist.sample(rng, _DRAW_SIZE)
            for j, (c, raw) in enumerate(zip(ctx.structure.columns, ctx.structure.raw,
                                             strict=True)):
                values[:, c] = raw[drawn[:, j]]
            values = values[ctx.feasible(values)]
            i = rows.pick(values)
            if i is not None:
                return Claim(values[i], Stage.POLICY)
        row = ctx.random_feasible_row(rows, self._seed, trial.number)
        if row is not None:
            _logger.warning(
                f"Trial {trial.number}: none of {_DRAW_BATCHES * _DRAW_SIZE} draws from the "
                "learnt distribution is new and meets the constraints "
                f"({', '.join(ctx.constraint_names) or 'none'}); proposing a feasible random "
                "candidate instead."
            )
            return Claim(row, Stage.RANDOM)
        _logger.warning("Every feasible candidate PARSECSampler found has been evaluated or is "
                        "running; repeating one.")
        return Claim(ctx.pool[0], Stage.REPEAT)


def _flag(name: str, value: bool | None, preset: bool) -> bool:
    if value is None:
        return bool(preset)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True, False or None (follow fpnas). Got {value!r}.")
    return value


def _check_prior(prior: Prior | None) -> Prior | None:
    """``prior`` if it is ``{param: {choice: probability}}`` (choices are checked against the
    space once it is known)."""
    if prior is None:
        return None
    if not isinstance(prior, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Mapping) for k, v in prior.items()
    ):
        raise ValueError("prior must be a dict {param: {choice: probability}}, as "
                         "PARSECSampler.distribution(study) returns. Got "
                         f"{type(prior).__name__}.")
    return {name: dict(choices) for name, choices in prior.items()}
