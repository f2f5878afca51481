"""The joint architecture-recipe search space, declared once.

A :class:`SearchSpace` maps to Optuna distributions with stable, readable names
(``stage2.kernel``, ``recipe.lr``), suggests typed :class:`~optuna_nars.candidate.Candidate`
objects, and converts many candidates at once to and from a *values* matrix (its
:class:`~optuna_nars.space.ParamSpace`): one row per candidate, one column per free parameter.
Fixed dimensions are constants, not parameters: they have no column and no distribution.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution

from optuna_nars.candidate import ACTIVATIONS, Candidate
from optuna_nars.space import presets
from optuna_nars.space._naming import build_candidate, flatten_candidate, named_dimensions
from optuna_nars.space.dimensions import Choice, Dimension, IntRange
from optuna_nars.space.param_space import ParamSpace, _Param
from optuna_nars.space.specs import (
    RecipeSpec,
    StageSpec,
    _check_values,
    _dimension_fields,
    _normalise,
)

__all__ = ["SearchSpace"]


@dataclass(frozen=True)
class SearchSpace:
    """A joint architecture-recipe search space.

    ``in_channels`` and ``num_classes`` describe the task; the cost model needs them for exact
    FLOPs and parameter counts. Build one from the presets (:meth:`fbnetv3`, :meth:`cifar`,
    :meth:`tiny`), from :class:`StageSpec` / :class:`RecipeSpec`, or from JSON.
    """

    stages: tuple[StageSpec, ...]
    resolution: Any = 224
    stem_channels: Any = IntRange(16, 32, 8)
    stem_stride: Any = 2
    head_channels: Any = IntRange(960, 1280, 64)
    feature_channels: Any = None
    activation: Any = "hswish"
    recipe: RecipeSpec = field(default_factory=RecipeSpec, metadata={"dimension": False})
    in_channels: int = field(default=3, metadata={"dimension": False})
    num_classes: int = field(default=1000, metadata={"dimension": False})

    def __post_init__(self) -> None:
        stages = tuple(
            s if isinstance(s, StageSpec) else StageSpec(**s) for s in self.stages
        )
        object.__setattr__(self, "stages", stages)
        if isinstance(self.recipe, Mapping):
            object.__setattr__(self, "recipe", RecipeSpec(**self.recipe))
        _normalise(self, skip=("stages",))
        self._validate()
        params = [_Param(name, dim, part) for name, dim, part in named_dimensions(self)]
        object.__setattr__(self, "_all", tuple(params))
        object.__setattr__(self, "_free", tuple(p for p in params if not p.dim.is_fixed))
        object.__setattr__(self, "_index", {p.name: i for i, p in enumerate(self._free)})
        object.__setattr__(self, "param_space", ParamSpace(self._free))

    # ---- validation and structure ----------------------------------------------------------

    def _validate(self) -> None:
        if not self.stages:
            raise ValueError("stages: a space needs at least one stage.")
        for i, stage in enumerate(self.stages, start=1):
            stage._validate(f"stage{i}")
        self.recipe._validate("recipe")
        for name in ("resolution", "stem_channels", "head_channels"):
            dim = getattr(self, name)
            dim._validate(name)
            _check_values(name, dim, lambda v: isinstance(v, (int, np.integer)) and v >= 1,
                          "a positive integer")
        self.stem_stride._validate("stem_stride")
        _check_values("stem_stride", self.stem_stride, lambda s: s in (1, 2), "1 or 2")
        self.feature_channels._validate("feature_channels")
        _check_values("feature_channels", self.feature_channels,
                      lambda v: v is None or (isinstance(v, (int, np.integer)) and v >= 1),
                      "None or a positive integer")
        self.activation._validate("activation")
        _check_values("activation", self.activation, lambda a: a in ACTIVATIONS,
                      f"one of {sorted(ACTIVATIONS)}")
        if not (isinstance(self.in_channels, int) and self.in_channels >= 1):
            raise ValueError(f"in_channels must be a positive integer, got {self.in_channels!r}.")
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise ValueError(f"num_classes must be an integer >= 2, got {self.num_classes!r}.")

    @property
    def names(self) -> tuple[str, ...]:
        """The free parameters' names, in the column order of the values matrix."""
        return self.param_space.names

    def part_columns(self, part: Literal["architecture", "recipe"]) -> np.ndarray:
        """Column indices of the architecture or the recipe parameters in the values matrix."""
        return self.param_space.part_columns(part)

    def dimension(self, name: str) -> Dimension:
        """The dimension of parameter ``name``, free or fixed (``KeyError`` if there is none)."""
        for p in self._all:
            if p.name == name:
                return p.dim
        raise KeyError(f"No parameter {name!r} in this space; see SearchSpace.names.")

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna distributions of the free parameters, with stable, readable names."""
        return self.param_space.distributions()

    def n_architectures(self) -> float:
        """How many distinct architectures the space holds (``inf`` with float dimensions)."""
        return float(np.prod([p.dim.size for p in self._free if p.part == "architecture"]))

    # ---- candidates <-> params <-> values --------------------------------------------------

    def _fixed_value(self, name: str) -> Any:
        dim = self.dimension(name)
        return dim.values[0] if isinstance(dim, Choice) else dim.low

    def suggest(self, trial: optuna.Trial) -> Candidate:
        """Suggest every free parameter on ``trial`` (with its :meth:`distributions` entry) and
        return the candidate."""
        return self.from_params(self.param_space.suggest(trial))

    def from_params(self, params: Mapping[str, Any]) -> Candidate:
        """Rebuild a candidate from Optuna params (e.g. ``study.best_params``)."""
        missing = [name for name in self._index if name not in params]
        if missing:
            raise ValueError(
                f"params lack {missing[:5]}{'...' if len(missing) > 5 else ''}: they do not come "
                "from this search space (compare with SearchSpace.names)."
            )
        for name in self._index:
            if not self.dimension(name).contains(params[name]):
                raise ValueError(f"{name}={params[name]!r} lies outside this search space.")
        return build_candidate(
            lambda name: params[name] if name in params else self._fixed_value(name),
            len(self.stages),
            self.recipe,
        )

    def to_params(self, candidate: Candidate) -> dict[str, Any]:
        """The Optuna params of a candidate (free parameters only)."""
        arch = candidate.architecture
        if len(arch.stages) != len(self.stages):
            raise ValueError(
                f"The architecture has {len(arch.stages)} stages, the space {len(self.stages)}."
            )
        flat = flatten_candidate(candidate, self.recipe)
        for p in self._all:
            value = flat[p.name]
            if isinstance(p.dim, Choice) and isinstance(value, float) and value.is_integer():
                value = int(value) if int(value) in p.dim.values else value
            if not p.dim.contains(value):
                raise ValueError(f"{p.name}={value!r} lies outside this search space.")
        return {p.name: flat[p.name] for p in self._free}

    def contains(self, candidate: Candidate) -> bool:
        """Whether every field of ``candidate`` lies in this space."""
        try:
            self.to_params(candidate)
        except ValueError:
            return False
        return True

    def params_to_values(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Values matrix of many params dicts (one row each)."""
        return self.param_space.params_to_values(params_list)

    def values_to_params(self, values: np.ndarray) -> list[dict[str, Any]]:
        """Optuna params of every row of a values matrix."""
        return self.param_space.values_to_params(values)

    def decode(self, values: np.ndarray) -> list[Candidate]:
        """The candidate of every row of a values matrix."""
        return [self.from_params(params) for params in self.values_to_params(values)]

    def to_values(self, candidates: Sequence[Candidate]) -> np.ndarray:
        """Values matrix of many candidates (one row each; inverse of :meth:`decode`)."""
        return self.params_to_values([self.to_params(c) for c in candidates])

    def column(self, values: np.ndarray, name: str) -> np.ndarray:
        """The actual values of parameter ``name`` for every row (fixed ones broadcast); also
        ``recipe.lr``, the learning rates, where the space searches ``recipe.lr_factor``."""
        values = np.atleast_2d(values)
        if name == "recipe.lr" and self.recipe.base_lr is not None:
            optimizers = self.column(values, "recipe.optimizer")
            factors = self.column(values, "recipe.lr_factor").astype(float)
            return np.array([self.recipe.learning_rate(str(o), float(f))
                             for o, f in zip(optimizers, factors, strict=True)])
        if name in self._index:
            p = self._free[self._index[name]]
            return p.dim.actual(values[:, self._index[name]])
        return np.full(len(values), self._fixed_value(name), dtype=object)

    # ---- sampling and encoding --------------------------------------------------------------

    def sample_values(
        self, n: int, *, seed: int | None = None, method: Literal["sobol", "random"] = "sobol"
    ) -> np.ndarray:
        """``n`` points as a values matrix: scrambled Sobol (in QMC order) or uniform random."""
        return self.param_space.sample_values(n, seed=seed, method=method)

    def sample(
        self, n: int, *, seed: int | None = None, method: Literal["sobol", "random"] = "sobol"
    ) -> list[Candidate]:
        """``n`` candidates, drawn as by :meth:`sample_values`."""
        return self.decode(self.sample_values(n, seed=seed, method=method))

    def encode(
        self,
        values: np.ndarray,
        part: Literal["all", "architecture", "recipe"] = "all",
    ) -> np.ndarray:
        """Predictor inputs: one-hot for categorical, min-max to [0, 1] for ranges."""
        return self.param_space.encode(values, part)

    # ---- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every dimension (each in its ``to_json`` form) and the task."""
        def dims(obj: Any) -> dict[str, Any]:
            return {name: dim.to_json() for name, dim in _dimension_fields(obj)}

        out = {name: dim.to_json() for name, dim in _dimension_fields(self) if name != "stages"}
        out["stages"] = [dims(stage) for stage in self.stages]
        out["recipe"] = dims(self.recipe)
        if self.recipe.base_lr is not None:
            out["recipe"]["base_lr"] = dict(self.recipe.base_lr)
        out["in_channels"] = self.in_channels
        out["num_classes"] = self.num_classes
        return out

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text (``json.dumps`` keywords pass through; indent 2)."""
        return json.dumps(self.to_dict(), indent=kwargs.pop("indent", 2), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """The space of a :meth:`to_dict` dict (rejects unknown fields)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"Unknown search-space fields {sorted(unknown)}; known: {sorted(known)}."
            )
        if "stages" not in data:
            raise ValueError("A search space needs 'stages': a list of stage specs.")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        """The space of a :meth:`to_json` text; the round trip is exact."""
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> SearchSpace:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    # ---- presets (defined in optuna_nars.space.presets) ------------------------------------

    @classmethod
    def fbnetv3(cls, *, in_channels: int = 3, num_classes: int = 1000) -> SearchSpace:
        """ImageNet-scale joint space around FBNetV3 (paper Table 2, the released A..E models).

        Each row of the released model definitions is a stage here; the stride-2 first block of a
        resolution stage is its own single-block stage because the released models give it
        another kernel and expansion than the repeated blocks.
        """
        return presets.fbnetv3(cls, in_channels, num_classes)

    @classmethod
    def cifar(cls, *, in_channels: int = 3, num_classes: int = 10) -> SearchSpace:
        """A space for 32x32 inputs (CIFAR, and 28x28 sets upsampled), about 1-60 MFLOPs."""
        return presets.cifar(cls, in_channels, num_classes)

    @classmethod
    def tiny(cls, *, in_channels: int = 1, num_classes: int = 10) -> SearchSpace:
        """A small space for tests and quick starts (digits, MNIST-sized inputs)."""
        return presets.tiny(cls, in_channels, num_classes)
