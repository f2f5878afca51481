"""PARSEC's update of the architecture distribution from a batch of rewarded samples.

PARSEC (Casale et al. 2019) fits the distribution's parameters ``pi`` by empirical Bayes: the
gradient of the log marginal likelihood ``log p(y | pi)`` is estimated by Monte Carlo from ``K``
architectures ``a_k ~ p(a | pi)``, weighting each by its normalised importance weight::

    grad log p(y | pi)  ~=  sum_k w_k grad log p(a_k | pi),   w_k = p(y | a_k) / sum_j p(y | a_j)

Here ``p(y | a_k)`` is the likelihood of the validation data, ``exp(-loss)``. A trial gives one
number, on any scale, so :func:`weights` takes ``w = softmax(z / temperature)`` of the batch's
rewards ``z`` standardised (mean 0, standard deviation 1; larger is better), which is the
likelihood of a Gaussian model of the rewards with the batch's own scale. For a softmax
parameterisation (logits ``theta_l`` of layer ``l``, ``pi_l = softmax(theta_l)``),
``grad_theta_l log p(a | pi) = onehot(a_l) - pi_l``. The baseline ``1 / K`` (a zero-mean control
variate, ``E[onehot(a_l) - pi_l] = 0``) is subtracted from the weights, which cancels the
``pi_l`` term::

    theta_l  <-  theta_l + learning_rate * sum_k (w_k - 1/K) onehot(a_k,l)

so a batch whose rewards are all equal leaves the distribution where it is. Plain gradient
ascent (PARSEC uses Adam on a supernet's schedule; here every step is one batch of trials).
While the distribution is coarse, the members of a group share their logits and take the mean
of their gradients.
"""

from __future__ import annotations

import numpy as np

from optuna_nars.samplers.parsec._distribution import Distribution

__all__ = ["step", "weights"]


def weights(rewards: np.ndarray, temperature: float) -> np.ndarray:
    """The normalised importance weights of a batch minus the baseline ``1/K`` (sum 0)."""
    r = np.asarray(rewards, dtype=float)
    sd = r.std()
    if len(r) < 2 or sd <= 0:
        return np.zeros(len(r))
    z = (r - r.mean()) / sd / temperature
    w = np.exp(z - z.max())
    return w / w.sum() - 1.0 / len(r)


def step(
    dist: Distribution,
    indices: np.ndarray,
    rewards: np.ndarray,
    *,
    learning_rate: float,
    temperature: float,
    coarse: bool,
) -> None:
    """One update of ``dist`` in place from a batch: ``indices`` ``(K, L)`` choice indices of
    the sampled architectures, ``rewards`` ``(K,)`` (larger is better)."""
    w = weights(rewards, temperature)
    grads = []
    for j, logits in enumerate(dist.logits):
        grads.append(np.bincount(indices[:, j], weights=w, minlength=len(logits)))
    if coarse:
        for group in dist.structure.groups:
            shared = np.mean([grads[j] for j in group], axis=0)
            for j in group:
                grads[j] = shared
    for j, g in enumerate(grads):
        # -inf logits (probability 0 in the prior) stay where they are.
        dist.logits[j] = dist.logits[j] + learning_rate * g
