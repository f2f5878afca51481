"""NARSSampler's fits: the pretrained predictor, the fits on labelled trials, their rankings.

A :class:`Fitter` holds what every fit depends on besides the labels (:class:`FitSettings`)
and does this process's fitting for one sampler: it pretrains the encoder once per study
(shared among workers: :mod:`~optuna_nars.samplers.nars._shared_encoder`), fits the predictor
on a fit set and caches the fit by what it was fitted on, and ranks the pool (and, near the
genetic search, the search's population) at every trust weight. The rankings of one fit are
shared through the study (:mod:`~optuna_nars.samplers.nars._shared_fit`): the first worker to
need them computes and publishes them, the others read them.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

import numpy as np
from optuna.study import Study

from optuna_nars._keys import Stage
from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers._context import RowKey
from optuna_nars.samplers.nars._acquisition import Acquisition
from optuna_nars.samplers.nars._model import Fit, Ranking, fit_predictor, pretrain_predictor
from optuna_nars.samplers.nars._ranked import Ranked, rank_fit
from optuna_nars.samplers.nars._schedule import trust_weight
from optuna_nars.samplers.nars._shared_encoder import obtain_encoder
from optuna_nars.samplers.nars._shared_fit import base_digest, fit_digest, obtain
from optuna_nars.samplers.nars._state import NARSContext, Timing, stage_plan

__all__ = ["FitSettings", "Fitter"]


@dataclass(frozen=True)
class FitSettings:
    """The sampler's arguments that its fits and rankings depend on (see :class:`NARSSampler`)."""

    seed: int
    n_pretrain: int
    exploration: float
    trust_region: float
    acquisition: str
    predictor: NARSPredictor
    gp_labels: int
    neighbours: int
    model_choice: bool

    def digest_settings(self) -> dict[str, object]:
        """The settings as JSON values, for :func:`base_digest`."""
        return {
            "seed": self.seed, "n_pretrain": self.n_pretrain, "exploration": self.exploration,
            "trust_region": self.trust_region, "acquisition": self.acquisition,
            "predictor": self.predictor.get_params(), "gp_labels": self.gp_labels,
            "model_choice": self.model_choice, "neighbours": self.neighbours,
        }


class Fitter:
    """One sampler's fitting in this process: contexts' caches are filled under ``lock`` and
    every pretraining, refit and genetic search is appended to ``timings``."""

    def __init__(self, settings: FitSettings, lock: threading.RLock,
                 timings: list[Timing], extra: dict[str, object] | None = None) -> None:
        self.settings = settings
        self._lock = lock
        self._timings = timings
        self._extra = extra or {}  # more digest settings (multi-objective)

    def _timed(self, step: str, n_labels: int, start: float) -> None:
        self._timings.append(Timing(step, n_labels, time.perf_counter() - start))

    def pretrained(self, ctx: NARSContext, study: Study) -> NARSPredictor:
        """The pretrained predictor of ``ctx``: its encoder pretrained once per study among all
        workers (:mod:`~optuna_nars.samplers.nars._shared_encoder`)."""
        s = self.settings
        with self._lock:
            if ctx.pretrained is None:
                start = time.perf_counter()
                ctx.pretrained, here = pretrain_predictor(
                    s.predictor, ctx.param_space, ctx.metrics, s.n_pretrain, s.seed,
                    functools.partial(obtain_encoder, study, ctx.owner),
                )
                self._timed("pretrain" if here else "shared_encoder", 0, start)
            return ctx.pretrained

    def base(self, ctx: NARSContext) -> str:
        """The digest of the settings and the pool that every fit of ``ctx`` depends on."""
        if not ctx.base:
            settings = {**self.settings.digest_settings(), "metrics": ctx.metrics is not None,
                        "constraints": ctx.constraint_names, **self._extra}
            ctx.base = base_digest(settings, ctx.param_space, ctx.pool)
        return ctx.base

    def fit(self, study: Study, ctx: NARSContext, numbers: list[int], x: np.ndarray,
            y: np.ndarray, recorded: tuple[np.ndarray, np.ndarray] | None = None) -> Fit:
        """This process's fit on rows ``x`` labelled ``y`` (of trials ``numbers``, proposed
        with the ``recorded`` predictions and spreads:
        :func:`~optuna_nars.samplers.nars._shared_fit.recorded_predictions`), cached by what it
        was fitted on."""
        s = self.settings
        predicted, spread = recorded if recorded is not None else (None, None)
        key = fit_digest(self.base(ctx), x, y, predicted, spread)
        with self._lock:
            fit = ctx.fits.get(key)
            if fit is None:
                pretrained = self.pretrained(ctx, study)
                start = time.perf_counter()
                # A fresh seed per label count.
                fit = fit_predictor(pretrained, ctx.param_space, ctx.pool, x, y,
                                    seed=s.seed + len(numbers), predicted=predicted,
                                    gp_labels=s.gp_labels, spread=spread,
                                    model_choice=s.model_choice)
                self._timed("refit", len(numbers), start)
                ctx.fits = {key: fit}  # keep only the latest fit
            return fit

    def acquisition(self, fit: Fit, ctx: NARSContext, trust: float) -> Acquisition:
        s = self.settings
        return Acquisition(fit, ctx.param_space, s.exploration, trust, s.acquisition)

    def evolve(self, ctx: NARSContext, acquisition: Acquisition, x: np.ndarray,
               y: np.ndarray) -> Ranking:
        """The genetic search's ranking over ``acquisition``, timed."""
        start = time.perf_counter()
        ranking = acquisition.evolve(ctx.pool, x, y, ctx.feasible, self.settings.seed)
        self._timed("genetic_search", len(y), start)
        return ranking

    def ranked(
        self, study: Study, ctx: NARSContext, numbers: list[int], x: np.ndarray, y: np.ndarray,
        trial_number: int, stage: Stage, claimed: set[RowKey],
        recorded: tuple[np.ndarray, np.ndarray],
    ) -> Ranked | None:
        """The rankings of the fit on ``x``, ``y`` (trials ``numbers``) for trial
        ``trial_number``: shared through the study (one fit per label set among all workers;
        ``None`` while another worker makes the first one); when a proposal would run past the
        shared top rows (all of them in ``claimed``), the complete rankings of this process's
        own fit."""
        base = self.base(ctx)
        digest = fit_digest(base, x, y, *recorded)
        evolve = stage == Stage.EVOLUTION
        trust_region = self.settings.trust_region

        def compute(shared: bool) -> Ranked:
            return self._rank(study, ctx, numbers, x, y, trial_number, stage, recorded,
                              base, digest, shared)

        with self._lock:
            ranked = ctx.ranked.get(digest)
            if ranked is None or not ranked.covers(evolve):
                ranked = obtain(study, ctx.pool, base, digest, evolve, ctx.owner,
                                lambda: compute(shared=True))
                if ranked is None:
                    return None
                if ranked.digest == digest:  # not a stand-in while another worker fits
                    ctx.ranked = {digest: ranked}
            if ranked.exhausted(trust_weight(trial_number, trust_region), evolve, claimed):
                complete = ctx.complete.get(digest)
                if complete is None or not complete.covers(evolve):
                    complete = compute(shared=False)
                    ctx.complete = {digest: complete}
                ranked = complete
            return ranked

    def _rank(
        self, study: Study, ctx: NARSContext, numbers: list[int], x: np.ndarray, y: np.ndarray,
        trial_number: int, stage: Stage, recorded: tuple[np.ndarray, np.ndarray], base: str,
        digest: str, shared: bool,
    ) -> Ranked:
        """The fit's rankings at every trust weight: the pool's, the neighbourhood's (stage 2's
        trust region) and the genetic search's."""
        s = self.settings
        fit = self.fit(study, ctx, numbers, x, y, recorded)
        # A fit of stage 2's last round may well serve stage 3 (labels lag trial numbers): it
        # runs the genetic search too, so that no worker refits the same labels for it.
        plan = stage_plan(ctx)
        evolve_here = plan.stage(trial_number + plan.batch_size) == Stage.EVOLUTION
        evolved, scores, near = {}, {}, {}
        for trust in sorted({0.0, s.trust_region}):  # every trust_weight
            acquisition = self.acquisition(fit, ctx, trust)
            if evolve_here:
                if trust not in fit.evolved:
                    fit.evolved[trust] = self.evolve(ctx, acquisition, x, y)
                evolved[trust] = fit.evolved[trust]
            if trust > 0 and s.neighbours > 0 and stage == Stage.PREDICTOR:
                near[trust] = acquisition.neighbourhood(
                    ctx.pool, x, y, ctx.feasible, s.neighbours, s.seed)
            scores[trust] = acquisition.pool_scores(ctx.pool)
        return rank_fit(fit, scores, evolved, ctx.pool, x, near=near, digest=digest,
                        base=base, shared=shared)
