"""The values-matrix view of any set of named parameters.

A :class:`ParamSpace` is an ordered tuple of named dimensions
(:class:`~optuna_nars.space.Dimension`), each tagged as architecture or recipe. It turns Optuna
params into a *values* matrix (one row per point, one column per parameter, holding the raw form
described in :mod:`optuna_nars.space.dimensions`) and back, samples it, and encodes it for the
predictor. A :class:`~optuna_nars.SearchSpace` builds one of its free parameters;
:meth:`ParamSpace.from_distributions` builds one for any Optuna search space, so that the
sampler, the predictor and the genetic search need nothing else.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from scipy.stats import qmc

from optuna_nars.space.dimensions import Dimension, _dimension_of

__all__ = ["ParamSpace", "unique_rows"]


def unique_rows(values: np.ndarray) -> np.ndarray:
    """``values`` without repeated rows, first occurrences in order."""
    _, first = np.unique(values, axis=0, return_index=True)
    return values[np.sort(first)]


@dataclass(frozen=True)
class _Param:
    """One named column of a values matrix."""

    name: str
    dim: Dimension
    part: Literal["architecture", "recipe"]


class ParamSpace:
    """The values-matrix view of named parameters: one column per parameter, holding the choice
    index of a categorical parameter and the value of a numerical one.

    :class:`SearchSpace` has one (``space.param_space``); :meth:`from_distributions` makes one for
    any Optuna search space, so the sampler, the predictor and the genetic search work alike on
    both.
    """

    def __init__(self, params: Sequence[_Param]) -> None:
        self.params = tuple(params)
        self._index = {p.name: i for i, p in enumerate(self.params)}

    @classmethod
    def from_distributions(
        cls,
        distributions: Mapping[str, BaseDistribution],
        architecture: Collection[str] | None = None,
    ) -> ParamSpace:
        """``architecture`` names the architecture parameters (the rest are the recipe); by
        default every parameter counts as architecture."""
        names = sorted(distributions)
        if architecture is not None:
            unknown = set(architecture) - set(names)
            if unknown:
                raise ValueError(
                    f"architecture names {sorted(unknown)} are not in the search space."
                )
        return cls(
            [
                _Param(
                    name,
                    _dimension_of(distributions[name]),
                    "architecture" if architecture is None or name in architecture else "recipe",
                )
                for name in names
            ]
        )

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters' names, in column order."""
        return tuple(p.name for p in self.params)

    def index(self, name: str) -> int:
        """The column of parameter ``name`` (``KeyError`` if there is none)."""
        return self._index[name]

    @property
    def categorical(self) -> np.ndarray:
        """Boolean mask of the categorical columns."""
        return np.array([p.dim.categorical for p in self.params], dtype=bool)

    def part_columns(self, part: Literal["architecture", "recipe"]) -> np.ndarray:
        """Column indices of the architecture or the recipe parameters."""
        return np.array([i for i, p in enumerate(self.params) if p.part == part], dtype=int)

    def distributions(self) -> dict[str, BaseDistribution]:
        """The Optuna distribution of every parameter, in column order."""
        return {p.name: p.dim.distribution() for p in self.params}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest every parameter on ``trial`` with exactly its :meth:`distributions` entry
        (step and log scale included); return the params."""
        params = {}
        for name, dist in self.distributions().items():
            if isinstance(dist, CategoricalDistribution):
                params[name] = trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, IntDistribution):
                params[name] = trial.suggest_int(
                    name, dist.low, dist.high, step=dist.step, log=dist.log
                )
            else:
                params[name] = trial.suggest_float(
                    name, dist.low, dist.high, step=dist.step, log=dist.log
                )
        return params

    def params_to_values(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Values matrix of many params dicts (one row each)."""
        out = np.empty((len(params_list), len(self.params)))
        for r, params in enumerate(params_list):
            for c, p in enumerate(self.params):
                out[r, c] = p.dim.to_raw(params[p.name])
        return out

    def values_to_params(self, values: np.ndarray) -> list[dict[str, Any]]:
        """Optuna params of every row of a values matrix."""
        values = np.atleast_2d(values)
        return [
            {p.name: p.dim.from_raw(row[c]) for c, p in enumerate(self.params)} for row in values
        ]

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map points of the unit cube (one column per parameter) to a values matrix."""
        u = np.atleast_2d(u)
        if not self.params:
            return np.zeros((len(u), 0))
        return np.column_stack([p.dim.from_unit(u[:, c]) for c, p in enumerate(self.params)])

    def to_unit(self, values: np.ndarray) -> np.ndarray:
        """The unit-cube point at the centre of each row's cell (inverse of :meth:`from_unit`)."""
        values = np.atleast_2d(values)
        if not self.params:
            return np.zeros((len(values), 0))
        return np.column_stack([p.dim.to_unit(values[:, c]) for c, p in enumerate(self.params)])

    @property
    def size(self) -> float:
        """How many points the space holds (``inf`` if a float range has no step)."""
        return math.prod(p.dim.size for p in self.params)

    def grid(self) -> np.ndarray:
        """Every point of a finite space as a values matrix, in lexicographic order of the
        columns (``ValueError`` if a float range has no step)."""
        grids = [p.dim.grid() for p in self.params]
        points = list(itertools.product(*grids))
        return np.array(points, dtype=float).reshape(len(points), len(grids))

    def sample_values(
        self, n: int, *, seed: int | None = None, method: Literal["sobol", "random"] = "sobol"
    ) -> np.ndarray:
        """``n`` points as a values matrix: scrambled Sobol (in QMC order) or uniform random."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}.")
        d = len(self.params)
        if method == "sobol":
            engine = qmc.Sobol(max(d, 1), scramble=True, seed=seed)
            with warnings.catch_warnings():
                # Prefixes of a Sobol sequence are fine for us; the warning is about balance.
                warnings.simplefilter("ignore", UserWarning)
                u = engine.random(n)[:, :d]
        elif method == "random":
            u = np.random.default_rng(seed).random((n, d))
        else:
            raise ValueError(f"method must be 'sobol' or 'random', got {method!r}.")
        return self.from_unit(u)

    def encode(
        self,
        values: np.ndarray,
        part: Literal["all", "architecture", "recipe"] = "all",
    ) -> np.ndarray:
        """Predictor inputs: one-hot for categorical, min-max to [0, 1] for ranges."""
        values = np.atleast_2d(values)
        blocks = [
            p.dim.encode(values[:, c])
            for c, p in enumerate(self.params)
            if part == "all" or p.part == part
        ]
        if not blocks:
            return np.zeros((len(values), 0))
        return np.concatenate(blocks, axis=1)
