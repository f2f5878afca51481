"""A Gaussian-process predictor for the first labels, where an MLP ensemble has too little to go on.

:class:`GPPredictor` has :class:`~optuna_nars.predictor.NARSPredictor`'s fitting interface
(``fit(arch_x, recipe_x, y)``, ``predict`` -> mean and standard deviation, ``clone``,
``kendall_tau_cv``) on scikit-learn's :class:`~sklearn.gaussian_process.GaussianProcessRegressor`:
a Matern-5/2 kernel with one length scale per encoded column (ARD) plus a white-noise term, its
hyperparameters fitted by marginal likelihood (:mod:`.gp_likelihood`: the kernel, and the
likelihood evaluated without scikit-learn's per-column gradient tensor). The encodings are
already on ``[0, 1]`` scales.
"""

from __future__ import annotations

import functools
import warnings
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from threadpoolctl import ThreadpoolController

from optuna_nars._validation import check_int
from optuna_nars.predictor._plumbing import as_2d
from optuna_nars.predictor.gp_likelihood import LikelihoodOptimizer, kernel
from optuna_nars.predictor.metrics import kendall_tau_cv as _kendall_tau_cv

__all__ = ["GPPredictor"]


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[Any]:
    """BLAS on one thread for the block: on matrices of a few hundred rows more threads gain
    nothing, and when the other cores are busy (another worker, a training run) they wait on
    each other: a 200-label fit then took three times as long."""
    return _blas().limit(limits=1, user_api="blas")


class GPPredictor:
    """A Gaussian process on the candidates' encodings (architecture and recipe columns side by
    side), sklearn-like.

    Args:
        n_restarts: Restarts of the marginal-likelihood optimiser beyond the first.
        seed: Seed of the restarts' starting points.
    """

    def __init__(self, *, n_restarts: int = 2, seed: int = 0) -> None:
        self.n_restarts = check_int("n_restarts", n_restarts, minimum=0, example=2)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer. Got {seed!r} of type "
                             f"{type(seed).__name__}. Use e.g. seed=0.")
        self.seed = int(seed)
        self.model_: GaussianProcessRegressor | None = None

    def get_params(self) -> dict[str, Any]:
        return {"n_restarts": self.n_restarts, "seed": self.seed}

    def clone(self, **changes: Any) -> GPPredictor:
        """An unfitted copy with the same arguments (``changes`` override them)."""
        return GPPredictor(**{**self.get_params(), **changes})

    @property
    def is_fitted(self) -> bool:
        return self.model_ is not None

    def __repr__(self) -> str:
        return f"GPPredictor(n_restarts={self.n_restarts}, seed={self.seed})"

    def fit(self, arch_x: np.ndarray, recipe_x: np.ndarray | None, y: np.ndarray) -> GPPredictor:
        """Fit the process on the measured ``y`` (any scale; standardised internally)."""
        y = np.asarray(y, dtype=float).reshape(-1)
        if len(y) < 1:
            raise ValueError("fit needs at least 1 sample, got 0.")
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite values; drop those samples.")
        x = self._inputs(arch_x, recipe_x, len(y))
        model = GaussianProcessRegressor(kernel(x.shape[1]), normalize_y=True,
                                         optimizer=LikelihoodOptimizer(x, y),
                                         n_restarts_optimizer=self.n_restarts,
                                         random_state=self.seed)
        with warnings.catch_warnings(), _one_blas_thread():
            # A length scale at its bound means the column does not matter: a fit, not an error.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, y)
        self.model_ = model
        return self

    def predict(
        self, arch_x: np.ndarray, recipe_x: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the measured value, each ``(n,)``."""
        if self.model_ is None:
            raise RuntimeError("The predictor is not fitted; call fit() first.")
        x = self._inputs(arch_x, recipe_x, None)
        if x.shape[1] != self.model_.n_features_in_:
            raise ValueError(f"Expected {self.model_.n_features_in_} encoded columns, got "
                             f"{x.shape[1]}; encode with the fitted space.")
        with _one_blas_thread():
            mean, std = self.model_.predict(x, return_std=True)
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

    @staticmethod
    def _inputs(arch_x: np.ndarray, recipe_x: np.ndarray | None, n: int | None) -> np.ndarray:
        arch_x = as_2d("arch_x", arch_x, n)
        return np.hstack([arch_x, as_2d("recipe_x", recipe_x, len(arch_x))])

    kendall_tau_cv = _kendall_tau_cv
