"""NARSSampler's per-process state: a space's context (pool, predictors, fits) and its timings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

from optuna_nars.predictor import NARSPredictor
from optuna_nars.samplers._context import SpaceContext
from optuna_nars.samplers.nars._model import Fit
from optuna_nars.samplers.nars._ranked import Ranked
from optuna_nars.samplers.nars._schedule import StagePlan

__all__ = ["NARSContext", "ParetoCache", "Timing", "stage_plan"]


@dataclass(frozen=True)
class Timing:
    """One timed step of a :class:`NARSSampler`'s work (see :attr:`NARSSampler.timings`).

    ``step`` is ``"pretrain"`` (building the pretrained predictor: the encoder's pretraining on
    the free metrics), ``"shared_encoder"`` (building it from the encoder another worker
    pretrained and published to the study), ``"refit"`` (fitting the predictor on ``n_labels``
    labels, predicting the pool and its Kendall tau, cross-validated only before the free
    prequential one is available; pretraining excluded) or ``"genetic_search"`` (the genetic
    search over a predictor fitted on ``n_labels`` labels). ``n_labels`` is 0 for the first two.
    """

    step: str
    n_labels: int
    seconds: float


@dataclass
class ParetoCache:
    """Per context of a multi-objective study: the pool's free metrics, and the genetic
    search's rows per fit (:mod:`~optuna_nars.samplers.nars._pareto`)."""

    pool_metrics: dict[str, np.ndarray]
    evolved: dict[str, np.ndarray] = field(default_factory=dict)  # fit digest -> rows
    warned: bool = False


@dataclass
class NARSContext(SpaceContext):
    """The base context plus NARSSampler's pool and predictors for that space."""

    pool: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # feasible, QMC order
    # The stages by trial number: the warm start's length depends on the space (pretrained or
    # not), so it is set with the pool (NARSSampler._prepare_context).
    plan: StagePlan | None = None
    pretrained: NARSPredictor | None = None
    # Fits by the digest of what they were fitted on (_shared_fit.fit_digest), latest only: this
    # process's own fit, the shared rankings, the complete rankings of this process's fit.
    base: str = ""  # _shared_fit.base_digest, once the pool is known
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)  # this worker, in leases
    fits: dict[str, Fit] = field(default_factory=dict)
    ranked: dict[str, Ranked] = field(default_factory=dict)
    complete: dict[str, Ranked] = field(default_factory=dict)
    pareto: ParetoCache | None = None  # with objective_metrics (multi-objective)


def stage_plan(ctx: NARSContext) -> StagePlan:
    """``ctx``'s stage plan (set when the sampler prepared the context)."""
    if ctx.plan is None:  # pragma: no cover - every context is prepared before it is used
        raise RuntimeError("The context has no stage plan; NARSSampler prepares it first.")
    return ctx.plan
