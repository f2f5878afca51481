"""NARSSampler: FBNetV3's three-stage architecture-recipe search as an Optuna sampler.

Stages, by trial number (:class:`~optuna_nars.samplers.nars._schedule.StagePlan`):

1. **QMC warm start** (``n_startup_trials``): a scrambled-Sobol pool of ``pool_size`` points,
   filtered by the resource constraints, proposed in QMC order.
2. **Predictor-guided rounds** (``n_rounds`` x ``batch_size``): the accuracy predictor, pretrained
   on free labels (FLOPs, parameters) and fine-tuned on measured results, ranks the pool; the best
   candidates that are neither evaluated nor running are proposed; the trust region's proposals
   (below) also rank neighbours of the best measured pairs (``neighbours``, ``_neighbours``).
   The predictor is refit once per ``batch_size`` new labels (below ``batch_size`` labels,
   on every new one).
3. **Adaptive genetic search**: from then on, an adaptive genetic algorithm over the predictor,
   seeded with the best measured pairs, proposes the best children not yet evaluated.

With ``remeasure_every``, every so many trials of stages 2 and 3 measure a pair again instead
(``_remeasure``): on a noisy objective the best single measure is partly luck.

The predictor learns the normal scores of the labels' ranks (``_model``; predictions back on
the objective's scale: ``_scale``). Every other proposal of stages 2 and 3 is penalised by its
distance to the measured pairs (``trust_region``, ``_acquisition``). The arguments below say
what each option does, ``benchmarks/RESULTS.md`` what each measured change did. In a
multi-objective study (``objective_metrics``), stages 2 and 3 propose by predicted hypervolume
improvement (``_pareto``).

Everything is derived from the storage and the seed: the pool from the seed, the stage from the
trial number, the predictor from the labelled trials. The fitting is the
:class:`~optuna_nars.samplers.nars._fitting.Fitter`'s: a fit is keyed by what it was fitted on
and shared through the study (the first worker to need it fits it and publishes its rankings,
the others read them); the pretrained encoder likewise, once per study. Claims, the relative
search space and the constraints are the base sampler's (:mod:`optuna_nars.samplers._base`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import ClassVar, cast

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nars._keys import Stage
from optuna_nars._validation import check_int, check_real
from optuna_nars.cost import LatencyTable
from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers._base import BaseNASSampler
from optuna_nars.samplers._claims import Claim
from optuna_nars.samplers._constraints import Constraints, ProxyMetrics, infeasible_message
from optuna_nars.samplers._context import SpaceContext, StudyRows, direction_sign
from optuna_nars.samplers.nars import _pareto
from optuna_nars.samplers.nars._acquisition import ACQUISITIONS
from optuna_nars.samplers.nars._fitting import FitSettings, Fitter
from optuna_nars.samplers.nars._model import pretrains
from optuna_nars.samplers.nars._ranked import Ranked
from optuna_nars.samplers.nars._remeasure import remeasure_row
from optuna_nars.samplers.nars._schedule import StagePlan, startup_trials, trust_weight
from optuna_nars.samplers.nars._search import Proposal, search
from optuna_nars.samplers.nars._shared_fit import fit_set, recorded_predictions
from optuna_nars.samplers.nars._state import NARSContext, ParetoCache, Timing, stage_plan
from optuna_nars.space import SearchSpace

__all__ = ["NARSSampler", "Timing"]

_logger = optuna.logging.get_logger("optuna." + __name__)


class NARSSampler(BaseNASSampler):
    """FBNetV3's Neural Architecture-Recipe Search as an Optuna sampler.

    Args:
        search_space: A :class:`~optuna_nars.SearchSpace` (cost model and the architecture /
            recipe split built in), a dict of Optuna distributions, or ``None`` to infer the
            space from the study as Optuna's samplers do.
        constraints: Known resource budgets, enforced *before* a trial: no infeasible candidate
            is ever proposed. A mapping ``{"flops": 5e6, "params": 1e5}`` (with a SearchSpace, or
            naming outputs of ``proxy_metrics``), or a callable ``params -> sequence of floats``
            (``<= 0`` feasible). The values are recorded on each trial as Optuna constraints
            (a callable's as ``constraint``, or ``constraint_0``, ``constraint_1``, ... when it
            returns several), from the parameters the trial runs, enqueued ones included.
        proxy_metrics: For a generic space, ``params -> {name: value}`` of free architecture
            statistics (model size, FLOPs) used to pretrain the predictor's encoder.
        architecture_params: For a generic space, which parameters describe the architecture
            (the encoder's input); the rest form the recipe. Default: all of them.
        n_startup_trials: Trials proposed in QMC order before the predictor is used.
            ``None`` (the default): 5 when the predictor's encoder is pretrained on free
            metrics (a :class:`~optuna_nars.SearchSpace`'s cost model or ``proxy_metrics``,
            with architecture parameters and ``n_pretrain > 0``), 10 otherwise: pretraining
            has taught the predictor the architectures' free labels, so it takes over sooner
            (``benchmarks/RESULTS.md``, session 13).
        batch_size: Candidates per predictor round; the predictor is refit every ``batch_size``
            new labels (stages 2 and 3), and more sparsely once there are over 100 labels: every
            10% more labels, rising to every 25% past 500 (a refit costs ``O(labels)``).
        n_rounds: Predictor rounds (stage 2) before the genetic search (stage 3). The default,
            20 rounds of 10, keeps the genetic search past 200 trials: up to 200 the rounds'
            proposals (the pool, and the trust region's neighbours) did as well or better on the
            benchmark tables, at less sampler time (``benchmarks/RESULTS.md``, session 15).
        pool_size: Size of the scrambled-Sobol pool before constraint filtering.
        n_pretrain: Architectures labelled by the cost model to pretrain the encoder.
        exploration: Weight of the ensemble's spread in the acquisition ``mean + w * std``
            (``acquisition="ucb"``).
        acquisition: ``"ucb"`` (the default): ``mean + exploration * std`` (with
            ``exploration=0`` the predicted score itself); or ``"ei"``: the expected improvement
            over the best label under the ensemble's normal ``(mean, std)``, best with a
            ``NARSPredictor(bootstrap=True)`` whose spread means something, and ``trust_region=0``.
        trust_region: On every other proposal, the acquisition is penalised by this weight times
            the candidate's distance to the nearest measured pair (in units of the measured
            pairs' typical spacing; the predictor's outputs are normal scores of the labels), so
            that half the proposals stay where the predictor has data. ``0`` disables it (it is
            on the scale of the normal scores, so use ``0`` with ``acquisition="ei"``).
        gp_labels: Without a pretrained encoder (no free metrics, or a recipe-only space), fits
            on fewer labels than this use a Gaussian process on the encodings
            (:class:`~optuna_nars.predictor.gp.GPPredictor`) instead of the MLP ensemble: on
            up to a few hundred labels and nothing learned beforehand, a GP's prior ranks better
            (HPOBench tables: ``benchmarks/RESULTS.md``). ``0``: always the ensemble.
        model_choice: With a pretrained encoder, fits on 20 to 49 labels (and fewer than
            ``gp_labels``) choose between the MLP ensemble and a GP on the encodings by the
            Kendall tau of their 5-fold out-of-fold predictions (the same folds; the ensemble on
            ties): five fits of each per such refit. The study attribute ``nars:predictor`` says
            which one the latest fit used (``model``). ``False``: the ensemble.
        neighbours: Candidates drawn at each refit around the 5 best measured pairs (one to
            three parameters moved), which the trust region's proposals of stage 2 rank with
            the pool's best: the pool holds nothing that close to a measured pair. ``0``: the
            pool only.
        remeasure_every: On a noisy objective, every ``remeasure_every``-th trial from trial
            ``remeasure_from`` on measures a pair again (``nars:stage`` ``"remeasure"``): the
            labelled pair with the best mean of its measures plus ``remeasure_bonus`` times
            their noise over the square root of its count, that no running trial holds. A
            study's best trial is its best single measure: this gives the best pairs more
            draws, so that a better pair measured once, unluckily, can take the lead from a
            lucky one. It stops on a deterministic objective (eight measures again, each
            identical to its pair's others): pass ``0`` for one known to be deterministic.
            ``0``: never. Single-objective studies only. The default, every 10th trial from
            trial 50 (``benchmarks/RESULTS.md``, session 17).
        remeasure_from: The first trial number that may measure a pair again.
        remeasure_bonus: The weight of the noise bonus in the choice of the pair.
        predictor: A configured :class:`~optuna_nars.predictor.NARSPredictor` to copy settings
            from (ensemble size, epochs, bootstrap, ...), used as configured. Default:
            ``NARSPredictor()``.
        objective_metrics: For a multi-objective study, per objective: ``None`` for the one the
            predictor learns, else the free metric it equals (``"flops"``, ``"params"``, a
            ``proxy_metrics`` output), computed exactly; e.g. ``[None, "flops"]`` for
            ``directions=["maximize", "minimize"]``. See :mod:`~optuna_nars.samplers.nars._pareto`.
        seed: Seed for the pool, the predictor and the genetic search.
        independent_sampler: Sampler for parameters outside the relative space (default:
            :class:`~optuna.samplers.RandomSampler`).
        warn_independent_sampling: Warn when a parameter falls back to independent sampling.
        latency_table: A :class:`~optuna_nars.cost.LatencyTable` measured for ``search_space``
            (``LatencyTable.load(path)``): it makes ``latency_ms`` a budget (``constraints={
            "latency_ms": 4.0}``) summed over each candidate's blocks. Every worker loads the
            same file.
    """

    _context_class = NARSContext
    _runtime_attrs: ClassVar[tuple[str, ...]] = (*BaseNASSampler._runtime_attrs, "_timings",
                                                 "_fitter")

    def __init__(
        self,
        search_space: SearchSpace | Mapping[str, BaseDistribution] | None = None,
        *,
        constraints: Constraints | None = None,
        proxy_metrics: ProxyMetrics | None = None,
        architecture_params: Collection[str] | None = None,
        n_startup_trials: int | None = None,
        batch_size: int = 10,
        n_rounds: int = 20,
        pool_size: int = 20_000,
        n_pretrain: int = 2_000,
        exploration: float = 0.0,
        trust_region: float = 1.0,
        acquisition: str = "ucb",
        predictor: NARSPredictor | None = None,
        gp_labels: int = 200,
        model_choice: bool = True,
        neighbours: int = 500,
        remeasure_every: int = 10,
        remeasure_from: int = 50,
        remeasure_bonus: float = 1.0,
        objective_metrics: Sequence[str | None] | None = None,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        latency_table: LatencyTable | None = None,
    ) -> None:
        super().__init__(
            search_space,
            constraints=constraints,
            proxy_metrics=proxy_metrics,
            architecture_params=architecture_params,
            seed=seed,
            independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling,
            latency_table=latency_table,
        )
        self._n_startup_trials = check_int("n_startup_trials", n_startup_trials, minimum=1,
                                           allow_none=True, example=10)
        self._batch_size = check_int("batch_size", batch_size, minimum=1)
        self._n_rounds = check_int("n_rounds", n_rounds, minimum=0)
        self._pool_size = check_int("pool_size", pool_size, minimum=1)
        self._n_pretrain = check_int("n_pretrain", n_pretrain, minimum=0)
        self._exploration = check_real("exploration", exploration, low=0)
        self._trust_region = check_real("trust_region", trust_region, low=0)
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {', '.join(map(repr, ACQUISITIONS))}. "
                             f"Got {acquisition!r}. Use e.g. acquisition='ucb'.")
        self._acquisition_kind = acquisition
        self._predictor_template = predictor or NARSPredictor()
        self._gp_labels = check_int("gp_labels", gp_labels, minimum=0)
        if not isinstance(model_choice, bool):
            raise ValueError(f"model_choice must be True or False. Got {model_choice!r}.")
        self._model_choice = model_choice
        self._neighbours = check_int("neighbours", neighbours, minimum=0)
        self._remeasure_every = check_int("remeasure_every", remeasure_every, minimum=0)
        self._remeasure_from = check_int("remeasure_from", remeasure_from, minimum=1)
        self._remeasure_bonus = check_real("remeasure_bonus", remeasure_bonus, low=0)
        self._objective_metrics = _pareto.check_objective_metrics(
            objective_metrics, search_space, proxy_metrics is not None)
        self._complete_init()

    @property
    def plan(self) -> StagePlan:
        """Trials per stage: what the dashboard and the benchmarks show of the schedule. The
        plan of the latest space this sampler prepared (a study has one); before it has
        proposed, the plan its arguments imply (a pretrained encoder with a SearchSpace or
        ``proxy_metrics`` and ``n_pretrain > 0``)."""
        with self._lock:
            prepared = [c.plan for c in self._contexts.values()
                        if isinstance(c, NARSContext) and c.plan is not None]
        if prepared:
            return prepared[-1]
        free_metrics = isinstance(self._space, SearchSpace) or self._proxy_metrics is not None
        return self._plan(free_metrics and self._n_pretrain > 0)

    def _plan(self, pretrained: bool) -> StagePlan:
        return StagePlan(startup_trials(self._n_startup_trials, pretrained), self._n_rounds,
                         self._batch_size)

    @property
    def timings(self) -> tuple[Timing, ...]:
        """Wall times of this process's pretraining, refits and genetic searches, in order.

        A per-process record (a pickled or fresh sampler starts empty; a cached fit, or one
        that another worker published to the study, is not timed again), for benchmarks and
        profiling.
        """
        return tuple(self._timings)

    def _init_runtime(self) -> None:
        super()._init_runtime()
        self._timings: list[Timing] = []
        settings = FitSettings(
            seed=self._seed, n_pretrain=self._n_pretrain, exploration=self._exploration,
            trust_region=self._trust_region, acquisition=self._acquisition_kind,
            predictor=self._predictor_template, gp_labels=self._gp_labels,
            neighbours=self._neighbours, model_choice=self._model_choice)
        extra = ({} if self._objective_metrics is None  # single-objective digests unchanged
                 else {"objective_metrics": self._objective_metrics})
        self._fitter = Fitter(settings, self._lock, self._timings, extra)

    def _prepare_context(self, ctx: SpaceContext, constraints: Constraints | None) -> None:
        ctx = cast(NARSContext, ctx)
        pool = ctx.param_space.sample_values(self._pool_size, seed=self._seed)
        feasible = ctx.feasible(pool)
        if not feasible.any():
            raise ValueError(
                infeasible_message(ctx.constraint_names, ctx.violations(pool), constraints)
            )
        ctx.pool = pool[feasible]
        ctx.plan = self._plan(pretrains(ctx.param_space, ctx.metrics, self._n_pretrain))
        if self._objective_metrics is not None:
            ctx.pareto = ParetoCache(
                _pareto.pool_metrics(ctx, self._objective_metrics, ctx.pool))

    def _check_study(self, study: Study) -> None:
        _pareto.check_study(self._objective_metrics, study)

    # ---- sampling --------------------------------------------------------------------------

    def _propose(
        self, study: Study, trial: FrozenTrial, ctx: SpaceContext, rows: StudyRows
    ) -> Claim:
        ctx = cast(NARSContext, ctx)
        plan = stage_plan(ctx)
        stage = plan.stage(trial.number)
        if study._is_multi_objective():
            assert self._objective_metrics is not None
            claim = _pareto.propose_pareto(self._fitter, self._objective_metrics, study, trial,
                                           ctx, rows)
            if claim is not None:
                return claim
            stage = Stage.QMC  # the warm start's pool order, then its fallbacks
        if stage != Stage.QMC and self._remeasures(study, trial.number):
            row = remeasure_row(study, ctx, rows, self._remeasure_bonus)
            if row is not None:
                return Claim(row, Stage.REMEASURE)
        fit: Ranked | None = None
        quality = None
        rankings: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
        if stage != Stage.QMC:
            # The first K labelled trials in order of completion, K on a fixed schedule: any
            # worker holding the same storage derives the same fit set. Not before a round's
            # worth of labels (the warm start's trials may still run in other workers: every
            # label would make a new set to fit).
            numbers, x, y = fit_set(study, rows, plan)
            if len(numbers) >= 2 and np.ptp(y) > 0:
                fit = self._fitter.ranked(study, ctx, numbers, x, y, trial.number, stage,
                                          rows.claimed, recorded_predictions(study, rows, numbers))
            if fit is not None:
                quality = fit.quality
                rankings += fit.rankings(trust_weight(trial.number, self._trust_region),
                                         stage == Stage.EVOLUTION)
            else:
                # Too few distinct labels to fit yet, or another worker makes the first fit.
                stage = Stage.QMC
        rankings.append((ctx.pool, None, None))
        sign = direction_sign(study) if fit is not None else 1.0
        for values, mean, std in rankings:
            i = rows.pick(values)
            if i is not None:
                claim = Claim(values[i], stage, quality=quality)
                return _with_prediction(claim, fit, mean, std, i, sign)
        # Every pool point is taken: continue with fresh feasible random points.
        row = ctx.random_feasible_row(rows, self._seed, trial.number)
        if row is not None:
            return Claim(row, Stage.RANDOM)
        # A small space can be exhausted; then, as Optuna's samplers do, repeat the best.
        _logger.warning(
            "Every feasible candidate NARSSampler found has been evaluated or is running; "
            "repeating the best-ranked one."
        )
        values, mean, std = rankings[0]
        return _with_prediction(Claim(values[0], Stage.REPEAT), fit, mean, std, 0, sign)

    def _remeasures(self, study: Study, number: int) -> bool:
        """Whether trial ``number`` measures a pair again (``remeasure_every``)."""
        return (self._remeasure_every > 0 and number >= self._remeasure_from
                and (number - self._remeasure_from) % self._remeasure_every == 0
                and not study._is_multi_objective())

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
        the new constraints, run the genetic search over the predictor, and rank.

        Args:
            study: A single-objective study with at least two labelled trials of different
                values.
            constraints: The budget, as for the constructor (checked the same way). ``None``
                (the default) is the sampler's own budget; ``{}`` searches with no budget.
            n: How many proposals to return.

        Raises:
            ValueError: If the budget is malformed or no candidate meets it, or the study has
                fewer than two distinct labels.
        """
        return search(self, self._fitter, study, constraints, n)


def _with_prediction(
    claim: Claim, fit: Ranked | None, mean: np.ndarray | None, std: np.ndarray | None, i: int,
    sign: float,
) -> Claim:
    """``claim`` with the prediction of row ``i`` of a ranking, when it has one."""
    if fit is not None and mean is not None and std is not None:
        value, spread = fit.to_value(mean[i], std[i])
        claim.predicted, claim.predicted_std = sign * value, spread
        claim.interval_scale = fit.interval_scale
        claim.interval_95 = fit.interval_95(sign * value, spread)
    return claim
