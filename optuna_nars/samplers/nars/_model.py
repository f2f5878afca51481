"""NARSSampler's predictor: pretrained on free labels, fitted on normal scores of the labels.

The predictor learns the normal scores of the labels' ranks (robust to diverged runs and to
errors spanning decades); a :class:`Fit` maps its predictions back to the objective's scale and
measures how far a candidate lies from the measured ones (for the trust region).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import norm, rankdata

from optuna_nars.predictor import NARSPredictor, encode_split, prequential_kendall_tau
from optuna_nars.predictor.gp import GPPredictor
from optuna_nars.predictor.metrics import out_of_fold, ranking_tau
from optuna_nars.predictor.pretraining import PretrainedEncoder
from optuna_nars.samplers._constraints import Metrics
from optuna_nars.samplers.nars._intervals import interval_95, interval_scales
from optuna_nars.samplers.nars._scale import scores_to_values
from optuna_nars.samplers.nars._shared_encoder import encoder_digest
from optuna_nars.space import ParamSpace

__all__ = [
    "CHOICE_LABELS",
    "CHOICE_UNTIL",
    "CV_LABELS",
    "MIN_PREQUENTIAL_PAIRS",
    "MODELS",
    "PREQUENTIAL_WINDOW",
    "Fit",
    "Ranking",
    "ShareEncoder",
    "choose_model",
    "fit_predictor",
    "normal_scores",
    "pretrain_predictor",
    "pretrains",
    "ranking_quality",
]

Ranking = tuple[np.ndarray, np.ndarray, np.ndarray]  # values, mean, std: best first
Predictor = NARSPredictor | GPPredictor  # what a fit predicts with (see NARSSampler gp_labels)
MODELS = ("ensemble", "gp")  # Fit.model: which of the two it is

# The prequential tau needs this many predicted-then-measured trials in the fit set (fewer: the
# cross-validated one), and uses the latest this many: it follows the current predictors rather
# than the first rounds' (about +-0.1 of sampling error at 50 pairs).
MIN_PREQUENTIAL_PAIRS = 10
PREQUENTIAL_WINDOW = 50
CV_LABELS = 200  # the cross-validated tau's labels: the latest this many
# model_choice compares the models on CHOICE_LABELS to CHOICE_UNTIL - 1 labels: on fewer, five
# folds of two or three labels each choose at random; from CHOICE_UNTIL on, the pretrained
# ensemble is the model (five fits of each per refit would cost ever more).
CHOICE_LABELS = 20
CHOICE_UNTIL = 50


@dataclass
class Fit:
    """A predictor fitted on one set of labelled trials, with its pool ranking (the process's
    own; what other workers read of it is a :class:`~optuna_nars.samplers.nars._shared_fit.Ranked`).

    The predictor learns the labels' normal scores; ``labels`` (sorted label values, their
    sorted scores) maps a predicted score back to the objective's scale.
    """

    predictor: Predictor
    pool_mean: np.ndarray
    pool_std: np.ndarray
    kendall_tau: float | None
    labels: tuple[np.ndarray, np.ndarray]
    labelled: np.ndarray  # the labelled candidates, encoded
    tau_method: str | None = None  # "prequential" or "cross-validated" (see ranking_quality)
    # The multiples of the predictor's spread that reported spreads and 95% intervals carry
    # (_intervals).
    interval_scale: float = 1.0
    interval_scale_95: float = math.nan  # NaN: no calibrated 95% interval yet
    # Per trust weight: the pool's acquisition scores, the genetic search's ranking, and the
    # neighbourhood's (the trust region's only).
    pool_scores: dict[float, np.ndarray] = field(default_factory=dict)
    evolved: dict[float, Ranking] = field(default_factory=dict)
    near: dict[float, Ranking] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """``"gp"`` when a Gaussian process predicts (``gp_labels``, ``model_choice``), else
        ``"ensemble"``."""
        return "gp" if isinstance(self.predictor, GPPredictor) else "ensemble"

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

    def to_values(self, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted scores and spreads as values and spreads on the objective's scale
        (:func:`~optuna_nars.samplers.nars._scale.scores_to_values`: monotone beyond the
        measured range), the spreads times :attr:`interval_scale`."""
        value, spread = scores_to_values(self.labels, np.asarray(mean), np.asarray(std))
        return value, spread * self.interval_scale

    def to_value(self, mean: float, std: float) -> tuple[float, float]:
        """One prediction as :meth:`to_values` gives it."""
        value, spread = self.to_values(np.asarray(mean), np.asarray(std))
        return float(value), float(spread)

    def interval_95(self, predicted: float, spread: float) -> tuple[float, float] | None:
        """The 95% interval around ``predicted``, reported with ``spread`` (``None``: none)."""
        return interval_95(predicted, spread, self.interval_scale, self.interval_scale_95)


def normal_scores(y: np.ndarray) -> np.ndarray:
    """Rank-based Gaussianisation: heavy tails (a diverged run, errors spanning decades) would
    otherwise dominate a fit on standardised values."""
    return norm.ppf((rankdata(y) - 0.5) / len(y))


# How a sampler shares encoders: (digest, dimensions, pretrain) -> (encoder, pretrained here).
ShareEncoder = Callable[[str, dict[str, int], Callable[[], PretrainedEncoder]],
                        tuple[PretrainedEncoder, bool]]


def pretrains(param_space: ParamSpace, metrics: Metrics | None, n_pretrain: int) -> bool:
    """Whether :func:`pretrain_predictor` pretrains an encoder: free metrics to learn, and
    architecture parameters to learn them from (a recipe-only search has nothing)."""
    return (metrics is not None and n_pretrain > 0
            and len(param_space.part_columns("architecture")) > 0)


def pretrain_predictor(
    template: NARSPredictor,
    param_space: ParamSpace,
    metrics: Metrics | None,
    n_pretrain: int,
    seed: int,
    share: ShareEncoder | None = None,
) -> tuple[NARSPredictor, bool]:
    """``(predictor, built_here)``: a copy of ``template`` whose encoder learned ``metrics``
    (log-scaled when positive) of ``n_pretrain`` random architectures: free labels. Without
    metrics, or without architecture parameters (a recipe-only search: nothing to pretrain on),
    just the copy. With ``share`` (see :mod:`._shared_encoder`), the encoder comes from there
    when another worker pretrained it already (``built_here`` is then ``False``)."""
    predictor = template.clone(seed=seed)
    if not pretrains(param_space, metrics, n_pretrain):
        return predictor, True
    assert metrics is not None
    sample = param_space.sample_values(n_pretrain, seed=seed + 1, method="random")
    m = metrics(sample)
    proxy = np.column_stack(
        [np.log(np.maximum(v, 1e-12)) if (v > 0).all() else v for v in m.values()]
    )
    arch_x = param_space.encode(sample, "architecture")
    if share is None:
        return predictor.pretrain(arch_x, proxy), True
    dims = {"arch_dim": arch_x.shape[1], "n_proxy": proxy.shape[1],
            "hidden": predictor.hidden, "embedding_dim": predictor.embedding_dim}

    def pretrain() -> PretrainedEncoder:
        return cast(PretrainedEncoder, predictor.clone().pretrain(arch_x, proxy).pretrained_)

    predictor.pretrained_, here = share(encoder_digest(predictor, arch_x, proxy), dims, pretrain)
    return predictor, here


def fit_predictor(
    pretrained: NARSPredictor,
    param_space: ParamSpace,
    pool: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    predicted: np.ndarray | None = None,
    gp_labels: int = 0,
    spread: np.ndarray | None = None,
    model_choice: bool = False,
) -> Fit:
    """Fit a copy of ``pretrained`` (it keeps the pretrained encoder) on rows ``x`` labelled
    ``y`` (larger is better), predict ``pool``, and measure the ranking quality
    (:func:`ranking_quality`; ``predicted``: each row's prediction recorded when it was proposed,
    on ``y``'s scale, NaN where there was none) and the interval scales (``spread``: the raw
    spreads recorded with them, :func:`~optuna_nars.samplers.nars._intervals.interval_scales`).
    With fewer than ``gp_labels`` labels and no pretrained encoder, a
    :class:`~optuna_nars.predictor.gp.GPPredictor` instead: without anything learned
    beforehand, a Gaussian process's prior ranks tens of labels better."""
    small = len(y) < gp_labels and not pretrained.is_pretrained
    predictor = (GPPredictor() if small else pretrained).clone(seed=seed)
    arch_x, recipe_x = encode_split(param_space, x)
    z = normal_scores(y)
    oof = None
    if (model_choice and CHOICE_LABELS <= len(y) < min(gp_labels, CHOICE_UNTIL)
            and pretrained.is_pretrained):
        predictor, oof = choose_model([predictor, GPPredictor(seed=seed)], arch_x, recipe_x, z,
                                      seed)
    predictor.fit(arch_x, recipe_x, z)
    mean, std = predictor.predict(*encode_split(param_space, pool))
    tau, method, cv = ranking_quality(predictor, arch_x, recipe_x, z, predicted, oof)
    scales = None
    if predicted is not None and spread is not None:
        scales = interval_scales(y, predicted, spread)
    if scales is None and cv is not None:
        # No measured proposal yet: the cross-validation's own errors, in normal scores; they
        # are too few and too small for a 95% interval.
        cv_scales = interval_scales(*cv)
        scales = None if cv_scales is None else (cv_scales[0], math.nan)
    return Fit(predictor, mean, std, tau, (np.sort(y), np.sort(z)),
               np.hstack([arch_x, recipe_x]), tau_method=method,
               **({} if scales is None else
                  {"interval_scale": scales[0], "interval_scale_95": scales[1]}))


def choose_model(
    candidates: list[Predictor], arch_x: np.ndarray, recipe_x: np.ndarray, z: np.ndarray,
    seed: int,
) -> tuple[Predictor, tuple[np.ndarray, np.ndarray] | None]:
    """``(model, out_of_fold)``: the candidate whose 5-fold out-of-fold predictions (the same
    folds for each, shuffled by ``seed``) rank ``z`` best, the first on ties, and those
    predictions (``None`` when none could be made)."""
    best: tuple[Predictor, tuple[np.ndarray, np.ndarray] | None] = (candidates[0], None)
    best_tau = -math.inf
    for model in candidates:
        oof = out_of_fold(model, arch_x, recipe_x, z, k=5, seed=seed)
        tau = math.nan if oof is None else ranking_tau(oof[0], z)
        if not math.isnan(tau) and tau > best_tau:
            best, best_tau = (model, oof), tau
    return best


def ranking_quality(
    predictor: Predictor,
    arch_x: np.ndarray,
    recipe_x: np.ndarray,
    z: np.ndarray,
    predicted: np.ndarray | None,
    oof: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float | None, str | None, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """``(kendall_tau, method, out_of_fold)`` of a fit on ``arch_x``, ``recipe_x`` labelled
    ``z``; ``out_of_fold`` is ``(z, mean, std)`` of the cross-validation when it ran.

    The **prequential** tau when the fit set holds at least :data:`MIN_PREQUENTIAL_PAIRS`
    trials proposed with a prediction (over the latest :data:`PREQUENTIAL_WINDOW` of them): free,
    and it judges the rankings the search acted on. Before that (the first refits after the warm
    start, or a study of enqueued trials), the 5-fold **cross-validated** tau, which costs five
    extra fits (about three quarters of a refit's CPU), so it is spent only while the free one
    is not available yet. ``(None, None, None)`` with fewer than 10 labels. The tau is reported
    (the study's ``nars:predictor`` attribute, the dashboard, the CLI); no proposal depends on
    it. The out-of-fold predictions also scale the first fits' intervals
    (:mod:`~optuna_nars.samplers.nars._intervals`). ``oof``: those predictions, when
    :func:`choose_model` made them already (on every label, fewer than :data:`CV_LABELS`).
    """
    if predicted is not None:
        # Ranks are all Kendall tau sees: the labels' normal scores rank as the labels do.
        pairs = np.flatnonzero(np.isfinite(predicted))
        if len(pairs) >= MIN_PREQUENTIAL_PAIRS:
            recent = pairs[-PREQUENTIAL_WINDOW:]
            return (prequential_kendall_tau(predicted[recent], z[recent]), "prequential",
                    None)
    if len(z) < 10:
        return None, None, None
    # 5-fold CV on at most the latest CV_LABELS labels bounds its cost.
    recent = slice(-CV_LABELS, None)
    if oof is None:
        oof = out_of_fold(predictor, arch_x[recent], recipe_x[recent], z[recent], k=5)
    if oof is None:
        return math.nan, "cross-validated", None
    return ranking_tau(oof[0], z[recent]), "cross-validated", (z[recent], *oof)
