"""The Gaussian process's kernel and the marginal likelihood its hyperparameters are fitted by.

:func:`kernel` is the process's prior: a constant times a Matern-5/2 kernel with one length scale
per encoded column (ARD), plus white noise. :class:`LikelihoodOptimizer` fits its hyperparameters as
scikit-learn's default optimiser does (L-BFGS-B from the same starting points, within the same
bounds), on :func:`neg_log_marginal_likelihood` instead of scikit-learn's own evaluation, which
builds an ``n x n x columns`` gradient tensor: at 200 labels and 37 columns that took eleven times
as long as the whole likelihood here (``benchmarks/gp_fit_cost.py``). The value and gradient are
the same to rounding (``tests/test_gp_predictor.py`` holds them against scikit-learn's).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
from scipy.linalg import LinAlgError, cho_solve, cholesky
from scipy.spatial.distance import squareform
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, Matern, WhiteKernel

__all__ = ["LikelihoodOptimizer", "kernel", "neg_log_marginal_likelihood", "squared_differences"]

JITTER = 1e-10  # GaussianProcessRegressor's default alpha, added to the diagonal
_SQRT5 = math.sqrt(5.0)


def kernel(n_columns: int) -> Kernel:
    """The prior on ``n_columns`` encoded columns. Its hyperparameters, in log space and in
    this order, are :func:`neg_log_marginal_likelihood`'s ``theta``: the constant, the
    ``n_columns`` length scales, the noise level."""
    return (ConstantKernel(1.0, (1e-2, 1e2))
            * Matern(np.ones(n_columns), (1e-2, 1e2), nu=2.5)
            + WhiteKernel(1e-2, (1e-6, 1.0)))


def squared_differences(x: np.ndarray) -> np.ndarray:
    """``(x_ik - x_jk)^2`` of every pair of rows ``i < j`` (in ``pdist``'s order), one column
    per column of ``x``: what every likelihood evaluation of a fit shares."""
    i, j = np.triu_indices(len(x), k=1)
    return (x[i] - x[j]) ** 2


def neg_log_marginal_likelihood(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, sq_diffs: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Minus the log marginal likelihood of standardised ``y`` at rows ``x`` under
    :func:`kernel` with log hyperparameters ``theta``, and minus its gradient in ``theta``
    (``(inf, zeros)`` where the covariance is not positive definite). ``sq_diffs``:
    :func:`squared_differences` of ``x``, when the caller keeps them."""
    if sq_diffs is None:
        sq_diffs = squared_differences(x)
    constant, noise = math.exp(theta[0]), math.exp(theta[-1])
    inverse_sq_scales = np.exp(-2.0 * theta[1:-1])
    s = _SQRT5 * squareform(np.sqrt(sq_diffs @ inverse_sq_scales))
    decay = np.exp(-s)
    matern = (1.0 + s + s * s / 3.0) * decay
    cov = constant * matern
    cov[np.diag_indices_from(cov)] += noise + JITTER
    try:
        factor = (cholesky(cov, lower=True, check_finite=False), True)
    except LinAlgError:
        return math.inf, np.zeros_like(theta)
    alpha = cho_solve(factor, y, check_finite=False)
    lml = (-0.5 * float(y @ alpha) - float(np.log(np.diag(factor[0])).sum())
           - 0.5 * len(y) * math.log(2.0 * math.pi))
    # d lml / d theta_p = tr(q dK/d theta_p) / 2, with q = alpha alpha^T - K^-1, and
    # dK_ij / d log l_k = constant 5/3 (1 + s_ij) e^(-s_ij) (x_ik - x_jk)^2 / l_k^2: summed
    # over the pairs (each twice), with no n x n x columns tensor.
    q = np.outer(alpha, alpha) - cho_solve(factor, np.eye(len(y)), check_finite=False)
    grad = np.empty(len(theta))
    grad[0] = 0.5 * constant * float(np.sum(q * matern))
    grad[-1] = 0.5 * noise * float(np.trace(q))
    pair_weights = squareform(q * (1.0 + s) * decay, checks=False)
    grad[1:-1] = constant * (5.0 / 3.0) * (pair_weights @ sq_diffs) * inverse_sq_scales
    return -lml, -grad


class LikelihoodOptimizer:
    """A ``GaussianProcessRegressor(optimizer=...)`` for :func:`kernel` on rows ``x`` and
    targets ``y``, standardised as ``normalize_y=True`` does: it minimises
    :func:`neg_log_marginal_likelihood` instead of the ``obj_func`` it is handed (the same
    function, evaluated the slow way). A class, not a closure, so that a fitted model pickles;
    the pairs' squared differences are recomputed rather than pickled."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        std = float(np.std(y))
        self.x = x
        self.y = (y - np.mean(y)) / (std if std >= 10 * np.finfo(float).eps else 1.0)
        self._sq_diffs: np.ndarray | None = None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_sq_diffs": None}

    def __call__(self, obj_func: object, initial_theta: np.ndarray,
                 bounds: np.ndarray) -> tuple[np.ndarray, float]:
        if self._sq_diffs is None:
            self._sq_diffs = squared_differences(self.x)
        result = scipy.optimize.minimize(neg_log_marginal_likelihood, initial_theta,
                                         args=(self.x, self.y, self._sq_diffs),
                                         method="L-BFGS-B", jac=True, bounds=bounds)
        return result.x, float(result.fun)
