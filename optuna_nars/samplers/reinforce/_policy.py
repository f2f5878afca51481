"""REINFORCE's controller: a factorised categorical policy, one softmax per parameter.

As NAS-Bench-201's REINFORCE baseline (Dong & Yang, ICLR 2020; after Williams 1992): logits
``theta_c`` per parameter ``c``, an action ``a_c ~ softmax(theta_c)`` each, and per labelled
trial with reward ``r`` (the label, signed so that larger is better):

1. the baseline, an exponential moving average with bias correction, takes ``r`` first:
   ``num <- m num + (1 - m) r``, ``den <- m den + (1 - m)``, ``b = num / den``;
2. the loss ``-(r - b) sum_c log pi(a_c)`` has gradient ``-(r - b) (onehot(a_c) - p_c)`` in
   ``theta_c``;
3. one Adam step (``beta = (0.9, 0.999)``, ``eps = 1e-8``, PyTorch's defaults) at rate ``lr``.

The logits start at zero (the uniform policy; the paper draws ``1e-3 * N(0, 1)``).

A numeric parameter is discretised (:class:`Bins`): an integer or stepped range of at most
``n_bins`` values gets one action per value; any other range is cut into ``n_bins`` equal cells
of the unit interval (its sampling scale, log or linear), and a row takes a uniform point of its
cell, so the policy learns *where* in the range to sample and the value within stays random.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optuna_nars.space import ParamSpace
from optuna_nars.space.dimensions import Dimension

__all__ = ["Bins", "Policy"]

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


class Bins:
    """One parameter's actions: its values (a choice, a short grid) or cells of its range."""

    def __init__(self, dim: Dimension, n_bins: int) -> None:
        self.dim = dim
        size = dim.size
        self.grid: np.ndarray | None = None  # raw values, one per action, when exact
        if dim.categorical or size <= n_bins:
            self.grid = dim.grid()
        self.k = len(self.grid) if self.grid is not None else n_bins

    def actions(self, raw: np.ndarray) -> np.ndarray:
        """The action of each raw value."""
        if self.grid is not None:
            return np.argmin(np.abs(raw[:, None] - self.grid[None, :]), axis=1)
        cell = np.floor(self.dim.to_unit(raw) * self.k)
        return np.clip(cell, 0, self.k - 1).astype(int)

    def values(self, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Raw values for ``actions``: the value itself, or a uniform point of the cell."""
        if self.grid is not None:
            return self.grid[actions]
        return self.dim.from_unit((actions + rng.random(len(actions))) / self.k)


@dataclass
class Policy:
    """The logits, Adam's moments and the reward baseline; :meth:`update` is one REINFORCE
    step, :meth:`sample` draws rows."""

    bins: list[Bins]
    learning_rate: float
    momentum: float
    theta: list[np.ndarray] = field(default_factory=list)
    m: list[np.ndarray] = field(default_factory=list)
    v: list[np.ndarray] = field(default_factory=list)
    steps: int = 0
    baseline_num: float = 0.0
    baseline_den: float = 0.0

    @classmethod
    def uniform(cls, param_space: ParamSpace, n_bins: int, learning_rate: float,
                momentum: float) -> Policy:
        bins = [Bins(p.dim, n_bins) for p in param_space.params]
        zeros = [np.zeros(b.k) for b in bins]
        return cls(bins, learning_rate, momentum, [z.copy() for z in zeros],
                   [z.copy() for z in zeros], [z.copy() for z in zeros])

    def copy(self) -> Policy:
        return Policy(self.bins, self.learning_rate, self.momentum,
                      [t.copy() for t in self.theta], [a.copy() for a in self.m],
                      [a.copy() for a in self.v], self.steps, self.baseline_num,
                      self.baseline_den)

    def probabilities(self) -> list[np.ndarray]:
        """One probability vector per parameter."""
        out = []
        for t in self.theta:
            e = np.exp(t - t.max())
            out.append(e / e.sum())
        return out

    @property
    def baseline(self) -> float:
        return self.baseline_num / self.baseline_den if self.baseline_den else 0.0

    def update(self, row: np.ndarray, reward: float) -> None:
        """One REINFORCE step for a trial that ran values ``row`` and earned ``reward``."""
        mom = self.momentum
        self.baseline_num = mom * self.baseline_num + (1 - mom) * reward
        self.baseline_den = mom * self.baseline_den + (1 - mom)
        advantage = reward - self.baseline
        self.steps += 1
        lr, t = self.learning_rate, self.steps
        for c, (b, p) in enumerate(zip(self.bins, self.probabilities(), strict=True)):
            grad = p.copy()  # d(-A log p_a)/d theta = -A (onehot(a) - p)
            grad[b.actions(row[c : c + 1])[0]] -= 1.0
            grad *= advantage
            self.m[c] = _BETA1 * self.m[c] + (1 - _BETA1) * grad
            self.v[c] = _BETA2 * self.v[c] + (1 - _BETA2) * grad**2
            m_hat = self.m[c] / (1 - _BETA1**t)
            v_hat = self.v[c] / (1 - _BETA2**t)
            self.theta[c] = self.theta[c] - lr * m_hat / (np.sqrt(v_hat) + _EPS)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows drawn from the policy (a values matrix)."""
        cols = []
        for b, p in zip(self.bins, self.probabilities(), strict=True):
            cols.append(b.values(rng.choice(b.k, size=n, p=p), rng))
        return np.column_stack(cols) if cols else np.zeros((n, 0))
