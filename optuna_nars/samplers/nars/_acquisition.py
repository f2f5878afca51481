"""What NARSSampler maximises: the predicted score, optionally penalised, and its search.

The acquisition of a candidate is ``mean + exploration * std`` (``kind="ucb"``; with
``exploration=0`` pure exploitation) or the expected improvement of a normal ``(mean, std)``
over the best label's score (``kind="ei"``: uncertain candidates win when means tie, a sure
loser scores nothing however uncertain), minus ``trust * novelty`` when ``trust > 0``
(:meth:`~optuna_nars.samplers.nars._model.Fit.novelty` is the distance to the nearest measured
pair). The pool is scored once per fit and trust weight; the adaptive genetic search (stage 3)
climbs the same acquisition from the best measured and the best-scored pool candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from optuna_nars.evolution import adaptive_genetic_search
from optuna_nars.predictor import encode_split
from optuna_nars.samplers.nars._model import Fit, Ranking
from optuna_nars.samplers.nars._neighbours import neighbours
from optuna_nars.space import ParamSpace

__all__ = ["ACQUISITIONS", "Acquisition", "expected_improvement"]

ACQUISITIONS = ("ucb", "ei")
_POOL_BEST = 100  # the pool rows ranked together with the neighbours


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """E[max(0, Y - best)] for Y ~ N(mean, std^2) (the limit ``max(0, mean - best)`` where
    ``std`` is 0)."""
    std = np.maximum(std, 1e-12)
    u = (mean - best) / std
    return std * (u * norm.cdf(u) + norm.pdf(u))


@dataclass(frozen=True)
class Acquisition:
    """The acquisition of one fit over one space, at one trust-region weight."""

    fit: Fit
    param_space: ParamSpace
    exploration: float
    trust: float
    kind: str = "ucb"

    def score(self, values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """The acquisition of rows ``values`` predicted ``mean`` +- ``std``."""
        if self.kind == "ei":
            # The fit's scores are normal scores of the labels: the best label's is the last.
            score = expected_improvement(mean, std, float(self.fit.labels[1][-1]))
        else:
            score = mean + self.exploration * std
        if self.trust > 0:
            score = score - self.trust * self.fit.novelty(
                np.hstack(encode_split(self.param_space, values))
            )
        return score

    def pool_scores(self, pool: np.ndarray) -> np.ndarray:
        """The acquisition of the fit's pool (computed once per trust weight)."""
        fit = self.fit
        if self.trust not in fit.pool_scores:
            fit.pool_scores[self.trust] = self.score(pool, fit.pool_mean, fit.pool_std)
        return fit.pool_scores[self.trust]

    def neighbourhood(
        self,
        pool: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        feasible: Callable[[np.ndarray], np.ndarray],
        n: int,
        seed: int,
    ) -> Ranking:
        """About ``n`` neighbours of the best measured rows ``x`` (labels ``y``, larger is
        better; :func:`~optuna_nars.samplers.nars._neighbours.neighbours`) and the pool's
        best-scored rows, best acquisition first: the pool's best stay ahead of neighbours
        they outscore. Computed once per fit and trust weight."""
        if self.trust in self.fit.near:
            return self.fit.near[self.trust]
        rng = np.random.default_rng([seed, len(y)])
        near = neighbours(self.param_space, x, y, feasible, n, rng)
        values = np.vstack([near, pool[np.argsort(-self.pool_scores(pool))[:_POOL_BEST]]])
        mean, std = self.fit.predictor.predict(*encode_split(self.param_space, values))
        order = np.argsort(-self.score(values, mean, std), kind="stable")
        self.fit.near[self.trust] = values[order], mean[order], std[order]
        return self.fit.near[self.trust]

    def evolve(
        self,
        pool: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        feasible: Callable[[np.ndarray], np.ndarray],
        seed: int,
    ) -> Ranking:
        """The adaptive genetic search over the predictor, started from the 16 best measured
        rows ``x`` (labels ``y``, larger is better) and the 48 best-scored pool rows; its
        final population, best acquisition first."""
        predictor = self.fit.predictor

        def score(values: np.ndarray) -> np.ndarray:
            mean, std = predictor.predict(*encode_split(self.param_space, values))
            return self.score(values, mean, std)

        best_measured = x[np.argsort(-y)[:16]]
        best_predicted = pool[np.argsort(-self.pool_scores(pool))[:48]]
        initial = np.unique(np.vstack([best_measured, best_predicted]), axis=0)
        initial = initial[feasible(initial)]
        rng = np.random.default_rng([seed, len(y)])
        values, _ = adaptive_genetic_search(
            self.param_space, score, initial, feasible=feasible, rng=rng
        )
        mean, std = predictor.predict(*encode_split(self.param_space, values))
        order = np.argsort(-self.score(values, mean, std), kind="stable")
        return values[order], mean[order], std[order]
