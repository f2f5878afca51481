"""PARSEC's architecture distribution: one categorical per discrete parameter.

:class:`Structure` is what a search space fixes once: which columns of the values matrix are
modelled (categorical parameters and integer ranges of at most :data:`MAX_CHOICES` values), the
raw value and the user-facing value of every choice, and the *groups* of parameters tied in
FP-NAS's coarse phase. :class:`Distribution` holds the logits (one vector per modelled column),
samples rows from them, and reads and writes the ``{param: {choice: probability}}`` form of
:meth:`PARSECSampler.distribution` and ``prior=``.

Groups: parameters whose names differ only in their digits (``layer0`` .. ``layer7``,
``stage1.kernel`` .. ``stage4.kernel``, ``n_units_1`` / ``n_units_2``) and that offer the same
choices share one categorical while the distribution is coarse: the layers of a stage, or of a
cell, start from one shared distribution (far fewer parameters) that is then refined per layer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from optuna_nars.space import ParamSpace
from optuna_nars.space.dimensions import Choice, IntRange

__all__ = ["MAX_CHOICES", "Distribution", "Prior", "Structure"]

# Integer ranges up to this many values are modelled as categoricals; longer ones (epochs,
# seeds) are sampled at random like the continuous parameters.
MAX_CHOICES = 64

Prior = Mapping[str, Mapping[Any, float]]


@dataclass(frozen=True)
class Structure:
    """The modelled part of a :class:`ParamSpace`: columns, choices and coarse groups."""

    columns: np.ndarray  # values-matrix columns of the modelled parameters
    names: tuple[str, ...]
    raw: tuple[np.ndarray, ...]  # raw value of each choice, ascending, per modelled column
    values: tuple[tuple[Any, ...], ...]  # the choices as the trial's params hold them
    groups: tuple[tuple[int, ...], ...]  # modelled-column indices tied while coarse

    @classmethod
    def of(cls, param_space: ParamSpace) -> Structure:
        columns, names, raw, values = [], [], [], []
        for c, p in enumerate(param_space.params):
            dim = p.dim
            if not (isinstance(dim, Choice)
                    or (isinstance(dim, IntRange) and dim.size <= MAX_CHOICES)):
                continue
            r = dim.grid()
            if len(r) < 2:
                continue  # a constant: nothing to learn
            columns.append(c)
            names.append(p.name)
            raw.append(r)
            values.append(tuple(dim.from_raw(x) for x in r))
        by_key: dict[tuple, list[int]] = {}
        for j, (name, vals) in enumerate(zip(names, values, strict=True)):
            by_key.setdefault((re.sub(r"\d+", "#", name), vals), []).append(j)
        groups = tuple(tuple(g) for g in by_key.values())
        return cls(np.array(columns, dtype=int), tuple(names), tuple(raw), tuple(values), groups)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def tied(self) -> bool:
        """Whether the coarse phase has anything to tie (a group of two or more)."""
        return any(len(g) > 1 for g in self.groups)

    def indices(self, values: np.ndarray) -> np.ndarray:
        """The choice index of every modelled column of a values matrix, ``(n, len(self))``."""
        values = np.atleast_2d(values)
        out = np.empty((len(values), len(self)), dtype=int)
        for j, (c, r) in enumerate(zip(self.columns, self.raw, strict=True)):
            out[:, j] = np.clip(np.searchsorted(r, values[:, c] - 1e-9), 0, len(r) - 1)
        return out

    def uniform_entropy(self) -> float:
        """The entropy (nats) of the uniform distribution: the largest there is."""
        return float(sum(math.log(len(r)) for r in self.raw))


@dataclass
class Distribution:
    """Logits of one categorical per modelled column (``-inf``: a choice never sampled)."""

    structure: Structure
    logits: list[np.ndarray]

    @classmethod
    def uniform(cls, structure: Structure) -> Distribution:
        return cls(structure, [np.zeros(len(r)) for r in structure.raw])

    @classmethod
    def from_prior(cls, structure: Structure, prior: Prior) -> Distribution:
        """The distribution of ``prior`` (``{param: {choice: probability}}``, e.g. learnt on a
        smaller problem). Parameters it lacks are uniform; each choice it lacks gets a uniform
        share ``1/n`` and the listed choices share the rest in proportion; choices and
        parameters the space does not have are ignored.

        Raises:
            ValueError: If a parameter's listed probabilities are negative, not finite, or
                all zero while every choice is listed.
        """
        logits = []
        for name, choices in zip(structure.names, structure.values, strict=True):
            given = prior.get(name)
            if given is None:
                logits.append(np.zeros(len(choices)))
                continue
            n = len(choices)
            p = np.array([float(given.get(v, math.nan)) for v in choices])
            listed = ~np.isnan(p)
            if np.any(p[listed] < 0) or not np.all(np.isfinite(p[listed])):
                raise ValueError(f"prior[{name!r}] must hold finite probabilities >= 0, "
                                 f"got {dict(given)!r}.")
            total = p[listed].sum()
            if total <= 0 and listed.all():
                raise ValueError(f"prior[{name!r}] gives every choice probability 0; give at "
                                 "least one choice a positive probability.")
            missing = n - int(listed.sum())
            share = np.where(listed, p * (1 - missing / n) / total if total > 0 else 0.0, 1 / n)
            with np.errstate(divide="ignore"):
                logits.append(np.log(share / share.sum()))
        return cls(structure, logits)

    def copy(self) -> Distribution:
        return Distribution(self.structure, [v.copy() for v in self.logits])

    def probabilities(self) -> list[np.ndarray]:
        out = []
        for v in self.logits:
            e = np.exp(v - v.max())
            out.append(e / e.sum())
        return out

    def entropy(self) -> float:
        """The entropy (nats) of the distribution over architectures: the sum over columns."""
        total = 0.0
        for p in self.probabilities():
            q = p[p > 0]
            total -= float(np.sum(q * np.log(q)))
        return total

    def tie(self) -> None:
        """Make the coarse distribution: every group shares the mean of its members' logits
        (the normalised geometric mean of their probabilities)."""
        for group in self.structure.groups:
            with np.errstate(invalid="ignore"):
                shared = np.mean([self.logits[j] for j in group], axis=0)
            shared = np.where(np.isnan(shared), -np.inf, shared)
            for j in group:
                self.logits[j] = shared.copy()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws: the choice index of each modelled column, ``(n, len(structure))``."""
        out = np.empty((n, len(self.structure)), dtype=int)
        for j, p in enumerate(self.probabilities()):
            cdf = np.cumsum(p)
            out[:, j] = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"),
                                   len(p) - 1)
        return out

    def log_prob(self, indices: np.ndarray) -> np.ndarray:
        """Log-probability of each row of choice indices, ``(n,)``."""
        total = np.zeros(len(indices))
        for j, p in enumerate(self.probabilities()):
            with np.errstate(divide="ignore"):
                total += np.log(p[indices[:, j]])
        return total

    def as_dict(self) -> dict[str, dict[Any, float]]:
        """``{param: {choice: probability}}``: what ``prior=`` reads back."""
        s = self.structure
        return {
            name: {v: float(x) for v, x in zip(values, p, strict=True)}
            for name, values, p in zip(s.names, s.values, self.probabilities(), strict=True)
        }
