"""NARSSampler's predictor: pretrained on free labels, fitted on normal scores of the labels.

The predictor learns the normal scores of the labels' ranks (robust to diverged runs and to
errors spanning decades); a :class:`Fit` maps its predictions back to the objective's scale and
measures how far a candidate lies from the measured ones (for the trust region).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import norm, rankdata

from optuna_nars.predictor import NARSPredictor, encode_split
from optuna_nars.samplers._constraints import Metrics
from optuna_nars.space import ParamSpace

__all__ = ["Fit", "Ranking", "fit_predictor", "normal_scores", "pretrain_predictor"]

Ranking = tuple[np.ndarray, np.ndarray, np.ndarray]  # values, mean, std: best first


@dataclass
class Fit:
    """A predictor fitted on one set of labelled trials, with its pool ranking (the process's
    own; what other workers read of it is a :class:`~optuna_nars.samplers.nars._shared_fit.Ranked`).

    The predictor learns the labels' normal scores; ``labels`` (sorted label values, their
    sorted scores) maps a predicted score back to the objective's scale.
    """

    predictor: NARSPredictor
    pool_mean: np.ndarray
    pool_std: np.ndarray
    kendall_tau: float | None
    labels: tuple[np.ndarray, np.ndarray]
    labelled: np.ndarray  # the labelled candidates, encoded
    # Per trust weight: the pool's acquisition scores, and the genetic search's ranking.
    pool_scores: dict[float, np.ndarray] = field(default_factory=dict)
    evolved: dict[float, Ranking] = field(default_factory=dict)

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
        value, spread = self.to_values(np.asarray(mean), np.asarray(std))
        return float(value), float(spread)

    def to_values(self, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`to_value` of arrays of scores and spreads."""
        y, z = self.labels
        scale = float(np.std(y) / np.std(z)) if np.std(z) > 0 else 0.0
        return np.interp(mean, z, y), std * scale


def normal_scores(y: np.ndarray) -> np.ndarray:
    """Rank-based Gaussianisation: heavy tails (a diverged run, errors spanning decades) would
    otherwise dominate a fit on standardised values."""
    return norm.ppf((rankdata(y) - 0.5) / len(y))


def pretrain_predictor(
    template: NARSPredictor,
    param_space: ParamSpace,
    metrics: Metrics | None,
    n_pretrain: int,
    seed: int,
) -> NARSPredictor:
    """A copy of ``template`` whose encoder learned ``metrics`` (log-scaled when positive) of
    ``n_pretrain`` random architectures: free labels. Without metrics, or without
    architecture parameters (a recipe-only search: nothing to pretrain on), just the copy."""
    predictor = template.clone(seed=seed)
    has_architecture = len(param_space.part_columns("architecture")) > 0
    if metrics is not None and n_pretrain > 0 and has_architecture:
        sample = param_space.sample_values(n_pretrain, seed=seed + 1, method="random")
        m = metrics(sample)
        proxy = np.column_stack(
            [np.log(np.maximum(v, 1e-12)) if (v > 0).all() else v for v in m.values()]
        )
        predictor.pretrain(param_space.encode(sample, "architecture"), proxy)
    return predictor


def fit_predictor(
    pretrained: NARSPredictor,
    param_space: ParamSpace,
    pool: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
) -> Fit:
    """Fit a copy of ``pretrained`` (it keeps the pretrained encoder) on rows ``x`` labelled
    ``y`` (larger is better), predict ``pool``, and cross-validate the ranking quality."""
    predictor = pretrained.clone(seed=seed)
    arch_x, recipe_x = encode_split(param_space, x)
    z = normal_scores(y)
    predictor.fit(arch_x, recipe_x, z)
    mean, std = predictor.predict(*encode_split(param_space, pool))
    tau = None
    if len(y) >= 10:
        # 5-fold CV on at most the latest 200 labels bounds its cost.
        recent = slice(-200, None)
        tau = predictor.kendall_tau_cv(arch_x[recent], recipe_x[recent], z[recent], k=5)
    return Fit(predictor, mean, std, tau, (np.sort(y), np.sort(z)),
               np.hstack([arch_x, recipe_x]))
