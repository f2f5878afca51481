"""The joint architecture-recipe search space, declared once.

A :class:`SearchSpace` maps to Optuna distributions with stable, readable names
(``stage2.kernel``, ``recipe.lr``), suggests typed :class:`~optuna_nars.candidate.Candidate`
objects, and converts many candidates at once to and from a *values* matrix: one row per
candidate, one column per free parameter, holding the choice index for categorical parameters and
the value itself for ranges. Samplers, the cost model and the predictor all work on that matrix.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from scipy.stats import qmc

from optuna_nars.candidate import (
    ACTIVATIONS,
    OPTIMIZERS,
    PADDINGS,
    Architecture,
    Candidate,
    Recipe,
    StageArch,
)

__all__ = [
    "Choice",
    "IntRange",
    "FloatRange",
    "StageSpec",
    "RecipeSpec",
    "ParamSpace",
    "SearchSpace",
]


# --------------------------------------------------------------------------------------------
# Dimensions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A categorical dimension; a single value makes the dimension fixed."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        if len(values) == 1 and isinstance(values[0], (list, tuple)):
            values = tuple(values[0])
        object.__setattr__(self, "values", tuple(values))

    def _validate(self, name: str) -> None:
        if not self.values:
            raise ValueError(f"{name}: the choices are empty; give at least one value.")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"{name}: the choices {self.values} repeat a value; list each once.")

    @property
    def is_fixed(self) -> bool:
        return len(self.values) == 1

    @property
    def size(self) -> float:
        return float(len(self.values))

    @property
    def width(self) -> int:
        return len(self.values)

    def distribution(self) -> BaseDistribution:
        return CategoricalDistribution(self.values)

    categorical = True

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.floor(u * len(self.values)), len(self.values) - 1)

    def to_unit(self, raw: np.ndarray) -> np.ndarray:
        return (raw + 0.5) / len(self.values)

    def to_raw(self, value: Any) -> float:
        return float(self.values.index(value))

    def from_raw(self, raw: float) -> Any:
        return self.values[int(raw)]

    def actual(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(self.values, dtype=object)[raw.astype(int)]

    def encode(self, raw: np.ndarray) -> np.ndarray:
        return np.eye(len(self.values))[raw.astype(int)]

    def contains(self, value: Any) -> bool:
        return value in self.values

    def to_json(self) -> Any:
        return self.values[0] if self.is_fixed else list(self.values)


@dataclass(frozen=True)
class IntRange:
    """Integers ``low, low + step, ..., high``; ``log`` samples them on a log scale (step 1)."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def _validate(self, name: str) -> None:
        if self.step <= 0:
            raise ValueError(f"{name}: step must be positive, got {self.step}.")
        if self.log and (self.step != 1 or self.low < 1):
            raise ValueError(f"{name}: a log range needs step=1 and low >= 1.")
        if self.low > self.high:
            raise ValueError(f"{name}: low={self.low} > high={self.high}; swap them.")
        if (self.high - self.low) % self.step:
            fix = self.low + math.ceil((self.high - self.low) / self.step) * self.step
            raise ValueError(
                f"{name}: step {self.step} does not divide the range {self.low}..{self.high}; "
                f"make high - low a multiple of step (e.g. high={fix})."
            )

    @property
    def is_fixed(self) -> bool:
        return self.low == self.high

    @property
    def size(self) -> float:
        return float((self.high - self.low) // self.step + 1)

    width = 1
    categorical = False

    def distribution(self) -> BaseDistribution:
        return IntDistribution(self.low, self.high, step=self.step, log=self.log)

    def _bounds(self) -> tuple[float, float]:
        # Bins of width ``step`` centred on the values, as Optuna's samplers treat ints.
        lo, hi = self.low - 0.5 * self.step, self.high + 0.5 * self.step
        return (math.log(lo), math.log(hi)) if self.log else (lo, hi)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi = self._bounds()
        x = lo + u * (hi - lo)
        x = np.exp(x) if self.log else x
        k = np.round((x - self.low) / self.step)
        return self.low + self.step * np.clip(k, 0, (self.high - self.low) // self.step)

    def to_unit(self, raw: np.ndarray) -> np.ndarray:
        lo, hi = self._bounds()
        x = np.log(raw) if self.log else raw
        return np.clip((x - lo) / (hi - lo), 0.0, 1.0)

    def to_raw(self, value: Any) -> float:
        return float(value)

    def from_raw(self, raw: float) -> int:
        return int(round(raw))

    def actual(self, raw: np.ndarray) -> np.ndarray:
        return raw

    def encode(self, raw: np.ndarray) -> np.ndarray:
        if self.log:
            span = max(math.log(self.high) - math.log(self.low), 1e-12)
            return ((np.log(raw) - math.log(self.low)) / span)[:, None]
        span = max(self.high - self.low, 1)
        return ((raw - self.low) / span)[:, None]

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, (int, np.integer))
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def to_json(self) -> Any:
        out = {"type": "int", "low": self.low, "high": self.high, "step": self.step}
        return {**out, "log": True} if self.log else out


@dataclass(frozen=True)
class FloatRange:
    """Reals in ``[low, high]``, optionally on a log scale or on a grid of ``step``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def _validate(self, name: str) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"{name}: the bounds must be finite numbers.")
        if self.low > self.high:
            raise ValueError(f"{name}: low={self.low} > high={self.high}; swap them.")
        if self.log and self.low <= 0:
            raise ValueError(f"{name}: a log range needs low > 0, got {self.low}; raise low.")
        if self.step is not None and (self.step <= 0 or self.log):
            raise ValueError(f"{name}: step must be positive and cannot go with log.")

    @property
    def is_fixed(self) -> bool:
        return self.low == self.high

    width = 1
    categorical = False

    @property
    def size(self) -> float:
        return math.inf if self.step is None else round((self.high - self.low) / self.step) + 1

    def distribution(self) -> BaseDistribution:
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def _scale(self, x: np.ndarray | float) -> np.ndarray:
        return np.log(x) if self.log else np.asarray(x, dtype=float)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi = self._scale(self.low), self._scale(self.high)
        x = lo + u * (hi - lo)
        if self.step is not None:
            x = self.low + self.step * np.round((x - self.low) / self.step)
        return np.clip(np.exp(x) if self.log else x, self.low, self.high)

    def to_unit(self, raw: np.ndarray) -> np.ndarray:
        lo, hi = self._scale(self.low), self._scale(self.high)
        return (self._scale(raw) - lo) / (hi - lo) if hi > lo else np.full(len(raw), 0.5)

    def to_raw(self, value: Any) -> float:
        return float(value)

    def from_raw(self, raw: float) -> float:
        return float(raw)

    def actual(self, raw: np.ndarray) -> np.ndarray:
        return raw

    def encode(self, raw: np.ndarray) -> np.ndarray:
        lo, hi = self._scale(self.low), self._scale(self.high)
        span = hi - lo if hi > lo else 1.0
        return ((self._scale(raw) - lo) / span)[:, None]

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float, np.number)) and self.low <= value <= self.high

    def to_json(self) -> Any:
        out = {"type": "float", "low": self.low, "high": self.high, "log": self.log}
        return {**out, "step": self.step} if self.step is not None else out


Dimension = Choice | IntRange | FloatRange


def _as_dimension(value: Any) -> Dimension:
    """A constant, a list/tuple of choices, or a dimension (also in its JSON form)."""
    if isinstance(value, (Choice, IntRange, FloatRange)):
        return value
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind == "int":
            return IntRange(
                int(value["low"]), int(value["high"]), int(value.get("step", 1)),
                bool(value.get("log", False)),
            )
        if kind == "float":
            step = value.get("step")
            return FloatRange(
                float(value["low"]), float(value["high"]), bool(value.get("log", False)),
                None if step is None else float(step),
            )
        raise ValueError(f"Unknown dimension {dict(value)!r}: 'type' must be 'int' or 'float'.")
    if isinstance(value, (list, tuple)):
        return Choice(*value)
    return Choice(value)


def _dimension_fields(obj: Any) -> Iterator[tuple[str, Dimension]]:
    for f in fields(obj):
        if f.metadata.get("dimension", True):
            yield f.name, getattr(obj, f.name)


def _normalise(obj: Any) -> None:
    for f in fields(obj):
        if f.metadata.get("dimension", True):
            object.__setattr__(obj, f.name, _as_dimension(getattr(obj, f.name)))


def _check_values(name: str, dim: Dimension, ok: Any, what: str) -> None:
    """Check every value a dimension can take with ``ok``."""
    if isinstance(dim, Choice):
        bad = [v for v in dim.values if not ok(v)]
    else:
        bad = [v for v in (dim.low, dim.high) if not ok(v)]
    if bad:
        raise ValueError(f"{name}: {bad[0]!r} is not {what}.")


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageSpec:
    """The choices for one stage. Each field is a constant, a tuple of choices or a range."""

    kernel: Any = (3, 5)
    expansion: Any = (3, 4, 6)
    channels: Any = IntRange(16, 32, 8)
    depth: Any = IntRange(1, 3)
    stride: Any = 1
    se: Any = False
    activation: Any = "hswish"
    padding: Any = "same"

    def __post_init__(self) -> None:
        _normalise(self)

    def _validate(self, prefix: str) -> None:
        for name, dim in _dimension_fields(self):
            dim._validate(f"{prefix}.{name}")
        _check_values(f"{prefix}.kernel", self.kernel, lambda k: k in (1, 3, 5, 7, 9),
                      "an odd kernel size in 1..9")
        _check_values(f"{prefix}.expansion", self.expansion,
                      lambda e: isinstance(e, (int, float)) and e >= 1, "an expansion >= 1")
        _check_values(f"{prefix}.channels", self.channels,
                      lambda c: isinstance(c, (int, np.integer)) and c >= 1, "a positive integer")
        _check_values(f"{prefix}.depth", self.depth,
                      lambda d: isinstance(d, (int, np.integer)) and d >= 1,
                      "a depth >= 1 (drop the stage instead of allowing 0 blocks)")
        _check_values(f"{prefix}.stride", self.stride, lambda s: s in (1, 2), "a stride of 1 or 2")
        _check_values(f"{prefix}.se", self.se, lambda s: isinstance(s, bool), "True or False")
        _check_values(f"{prefix}.activation", self.activation, lambda a: a in ACTIVATIONS,
                      f"one of {sorted(ACTIVATIONS)}")
        _check_values(f"{prefix}.padding", self.padding, lambda p: p in PADDINGS,
                      f"one of {PADDINGS}")
        if "tight" in self.padding.values and self.stride != Choice(2):
            raise ValueError(
                f"{prefix}.padding: 'tight' padding needs a fixed stride of 2 (it would shrink "
                "a stride-1 block and break its residual); set stride=2 or padding='same'."
            )


@dataclass(frozen=True)
class RecipeSpec:
    """The training-recipe half of the joint space."""

    optimizer: Any = OPTIMIZERS
    lr: Any = FloatRange(1e-3, 0.5, log=True)
    weight_decay: Any = FloatRange(1e-6, 1e-3, log=True)
    mixup_alpha: Any = FloatRange(0.0, 0.4)
    dropout: Any = FloatRange(0.0, 0.3)
    stochastic_depth: Any = FloatRange(0.0, 0.2)
    ema: Any = (True, False)
    label_smoothing: Any = FloatRange(0.0, 0.2)

    def __post_init__(self) -> None:
        _normalise(self)

    def _validate(self, prefix: str) -> None:
        for name, dim in _dimension_fields(self):
            dim._validate(f"{prefix}.{name}")
        _check_values(f"{prefix}.optimizer", self.optimizer, lambda o: o in OPTIMIZERS,
                      f"one of {OPTIMIZERS}")
        positive = lambda x: isinstance(x, (int, float)) and x > 0  # noqa: E731
        fraction = lambda x: isinstance(x, (int, float)) and 0 <= x < 1  # noqa: E731
        _check_values(f"{prefix}.lr", self.lr, positive, "a positive learning rate")
        _check_values(f"{prefix}.weight_decay", self.weight_decay,
                      lambda x: isinstance(x, (int, float)) and x >= 0, "a weight decay >= 0")
        _check_values(f"{prefix}.mixup_alpha", self.mixup_alpha,
                      lambda x: isinstance(x, (int, float)) and x >= 0, "a mixup alpha >= 0")
        for name in ("dropout", "stochastic_depth", "label_smoothing"):
            _check_values(f"{prefix}.{name}", getattr(self, name), fraction, "a rate in [0, 1)")
        _check_values(f"{prefix}.ema", self.ema, lambda s: isinstance(s, bool), "True or False")


@dataclass(frozen=True)
class _Param:
    name: str
    dim: Dimension
    part: Literal["architecture", "recipe"]


def _dimension_of(distribution: BaseDistribution) -> Dimension:
    if isinstance(distribution, CategoricalDistribution):
        return Choice(*distribution.choices)
    if isinstance(distribution, IntDistribution):
        return IntRange(distribution.low, distribution.high, distribution.step, distribution.log)
    if isinstance(distribution, FloatDistribution):
        return FloatRange(distribution.low, distribution.high, distribution.log, distribution.step)
    raise ValueError(f"Unsupported distribution {distribution!r}.")


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
        return tuple(p.name for p in self.params)

    def index(self, name: str) -> int:
        return self._index[name]

    @property
    def categorical(self) -> np.ndarray:
        """Boolean mask of the categorical columns."""
        return np.array([p.dim.categorical for p in self.params], dtype=bool)

    def part_columns(self, part: Literal["architecture", "recipe"]) -> np.ndarray:
        """Column indices of the architecture or the recipe parameters."""
        return np.array([i for i, p in enumerate(self.params) if p.part == part], dtype=int)

    def distributions(self) -> dict[str, BaseDistribution]:
        return {p.name: p.dim.distribution() for p in self.params}

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


# --------------------------------------------------------------------------------------------
# SearchSpace
# --------------------------------------------------------------------------------------------


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
        for f in fields(self):
            if f.metadata.get("dimension", True) and f.name != "stages":
                object.__setattr__(self, f.name, _as_dimension(getattr(self, f.name)))
        self._validate()
        params = [_Param(name, dim, part) for name, dim, part in self._all_dimensions()]
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

    def _all_dimensions(self) -> Iterator[tuple[str, Dimension, str]]:
        yield "resolution", self.resolution, "architecture"
        yield "stem.channels", self.stem_channels, "architecture"
        yield "stem.stride", self.stem_stride, "architecture"
        yield "activation", self.activation, "architecture"
        for i, stage in enumerate(self.stages, start=1):
            for name, dim in _dimension_fields(stage):
                yield f"stage{i}.{name}", dim, "architecture"
        yield "head.channels", self.head_channels, "architecture"
        yield "head.features", self.feature_channels, "architecture"
        for name, dim in _dimension_fields(self.recipe):
            yield f"recipe.{name}", dim, "recipe"

    @property
    def names(self) -> tuple[str, ...]:
        """The free parameters' names, in the column order of the values matrix."""
        return self.param_space.names

    def part_columns(self, part: Literal["architecture", "recipe"]) -> np.ndarray:
        """Column indices of the architecture or the recipe parameters in the values matrix."""
        return self.param_space.part_columns(part)

    def dimension(self, name: str) -> Dimension:
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

    def _build(self, get: Any) -> Candidate:
        n_stages = len(self.stages)
        stages = tuple(
            StageArch(
                kernel=int(get(f"stage{i}.kernel")),
                expansion=float(get(f"stage{i}.expansion")),
                channels=int(get(f"stage{i}.channels")),
                depth=int(get(f"stage{i}.depth")),
                stride=int(get(f"stage{i}.stride")),
                se=bool(get(f"stage{i}.se")),
                activation=str(get(f"stage{i}.activation")),
                padding=str(get(f"stage{i}.padding")),
            )
            for i in range(1, n_stages + 1)
        )
        features = get("head.features")
        arch = Architecture(
            resolution=int(get("resolution")),
            stem_channels=int(get("stem.channels")),
            stem_stride=int(get("stem.stride")),
            activation=str(get("activation")),
            stages=stages,
            head_channels=int(get("head.channels")),
            feature_channels=None if features is None else int(features),
        )
        recipe = Recipe(
            optimizer=str(get("recipe.optimizer")),
            lr=float(get("recipe.lr")),
            weight_decay=float(get("recipe.weight_decay")),
            mixup_alpha=float(get("recipe.mixup_alpha")),
            dropout=float(get("recipe.dropout")),
            stochastic_depth=float(get("recipe.stochastic_depth")),
            ema=bool(get("recipe.ema")),
            label_smoothing=float(get("recipe.label_smoothing")),
        )
        return Candidate(arch, recipe)

    def _fixed_value(self, name: str) -> Any:
        dim = self.dimension(name)
        return dim.values[0] if isinstance(dim, Choice) else dim.low

    def suggest(self, trial: optuna.Trial) -> Candidate:
        """Suggest every free parameter on ``trial`` and return the candidate."""
        params = {}
        for p in self._free:
            dim = p.dim
            if isinstance(dim, Choice):
                params[p.name] = trial.suggest_categorical(p.name, list(dim.values))
            elif isinstance(dim, IntRange):
                params[p.name] = trial.suggest_int(p.name, dim.low, dim.high, step=dim.step)
            else:
                params[p.name] = trial.suggest_float(p.name, dim.low, dim.high, log=dim.log)
        return self.from_params(params)

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
        return self._build(lambda name: params[name] if name in params else self._fixed_value(name))

    def to_params(self, candidate: Candidate) -> dict[str, Any]:
        """The Optuna params of a candidate (free parameters only)."""
        arch, recipe = candidate.architecture, candidate.recipe
        if len(arch.stages) != len(self.stages):
            raise ValueError(
                f"The architecture has {len(arch.stages)} stages, the space {len(self.stages)}."
            )
        flat: dict[str, Any] = {
            "resolution": arch.resolution,
            "stem.channels": arch.stem_channels,
            "stem.stride": arch.stem_stride,
            "activation": arch.activation,
            "head.channels": arch.head_channels,
            "head.features": arch.feature_channels,
        }
        for i, stage in enumerate(arch.stages, start=1):
            for f in fields(stage):
                flat[f"stage{i}.{f.name}"] = getattr(stage, f.name)
        for f in fields(recipe):
            flat[f"recipe.{f.name}"] = getattr(recipe, f.name)
        for p in self._all:
            value = flat[p.name]
            if isinstance(p.dim, Choice) and isinstance(value, float) and value.is_integer():
                value = int(value) if int(value) in p.dim.values else value
            if not p.dim.contains(value):
                raise ValueError(f"{p.name}={value!r} lies outside this search space.")
        return {p.name: flat[p.name] for p in self._free}

    def contains(self, candidate: Candidate) -> bool:
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
        return [self.from_params(params) for params in self.values_to_params(values)]

    def to_values(self, candidates: Sequence[Candidate]) -> np.ndarray:
        return self.params_to_values([self.to_params(c) for c in candidates])

    def column(self, values: np.ndarray, name: str) -> np.ndarray:
        """The actual values of parameter ``name`` for every row (fixed ones broadcast)."""
        values = np.atleast_2d(values)
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
        def dims(obj: Any) -> dict[str, Any]:
            return {name: dim.to_json() for name, dim in _dimension_fields(obj)}

        out = {name: dim.to_json() for name, dim in _dimension_fields(self) if name != "stages"}
        out["stages"] = [dims(stage) for stage in self.stages]
        out["recipe"] = dims(self.recipe)
        out["in_channels"] = self.in_channels
        out["num_classes"] = self.num_classes
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), indent=kwargs.pop("indent", 2), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
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
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> SearchSpace:
        return replace(self, **changes)

    # ---- presets ----------------------------------------------------------------------------

    @classmethod
    def fbnetv3(cls, *, in_channels: int = 3, num_classes: int = 1000) -> SearchSpace:
        """ImageNet-scale joint space around FBNetV3 (paper Table 2, the released A..E models).

        Each row of the released model definitions is a stage here; the stride-2 first block of a
        resolution stage is its own single-block stage because the released models give it
        another kernel and expansion than the repeated blocks.
        """
        c8 = lambda lo, hi: IntRange(lo, hi, 8)  # noqa: E731
        k, tight = (3, 5), ("same", "tight")
        stages = (
            StageSpec(k, 1, c8(16, 24), IntRange(1, 3), 1, False),
            StageSpec(k, (3, 4, 5, 6), c8(16, 40), 1, 2, False),
            StageSpec(k, (1, 2, 3, 4), c8(16, 40), IntRange(2, 6), 1, False),
            StageSpec(k, (3, 4, 5, 6), c8(32, 64), 1, 2, True),
            StageSpec(k, (2, 3, 4), c8(32, 64), IntRange(3, 6), 1, True),
            StageSpec(k, (3, 4, 5, 6), c8(64, 112), 1, 2, False, padding=tight),
            StageSpec(k, (2, 3, 4), c8(64, 112), IntRange(3, 6), 1, False),
            StageSpec(k, (3, 4, 5, 6), c8(112, 168), 1, 1, True),
            StageSpec(k, (2, 3, 4), c8(112, 168), IntRange(4, 9), 1, True),
            StageSpec(k, (4, 5, 6), c8(176, 272), 1, 2, True, padding=tight),
            StageSpec(k, (3, 4, 5, 6), c8(176, 272), IntRange(4, 7), 1, True),
            StageSpec(k, (4, 5, 6), c8(208, 288), IntRange(1, 2), 1, True),
        )
        recipe = RecipeSpec(
            optimizer=("rmsprop", "sgd", "adamw"),
            lr=FloatRange(5e-3, 0.5, log=True),
            weight_decay=FloatRange(5e-6, 5e-5, log=True),
            mixup_alpha=FloatRange(0.0, 0.4),
            dropout=FloatRange(0.05, 0.35),
            stochastic_depth=FloatRange(0.0, 0.4),
        )
        return cls(
            stages=stages,
            resolution=IntRange(224, 272, 8),
            stem_channels=c8(16, 32),
            stem_stride=2,
            head_channels=IntRange(1152, 1920, 16),
            feature_channels=1984,
            activation="hswish",
            recipe=recipe,
            in_channels=in_channels,
            num_classes=num_classes,
        )

    @classmethod
    def cifar(cls, *, in_channels: int = 3, num_classes: int = 10) -> SearchSpace:
        """A space for 32x32 inputs (CIFAR, and 28x28 sets upsampled), about 1-60 MFLOPs."""
        k = (3, 5)
        stages = (
            StageSpec(3, 1, IntRange(8, 16, 8), 1, 1, False),
            StageSpec(k, (2, 3, 4, 6), IntRange(16, 32, 8), IntRange(1, 3), 2, False),
            StageSpec(k, (2, 3, 4, 6), IntRange(24, 48, 8), IntRange(1, 4), 2, (False, True)),
            StageSpec(k, (2, 3, 4, 6), IntRange(48, 96, 16), IntRange(1, 4), 1, (False, True)),
            StageSpec(k, (2, 3, 4, 6), IntRange(64, 160, 16), IntRange(1, 3), 2, (False, True)),
        )
        return cls(
            stages=stages,
            resolution=32,
            stem_channels=IntRange(8, 24, 8),
            stem_stride=1,
            head_channels=IntRange(256, 1024, 128),
            activation="hswish",
            in_channels=in_channels,
            num_classes=num_classes,
        )

    @classmethod
    def tiny(cls, *, in_channels: int = 1, num_classes: int = 10) -> SearchSpace:
        """A small space for tests and quick starts (digits, MNIST-sized inputs)."""
        stages = (
            StageSpec((3, 5), (1, 2, 3), IntRange(8, 16, 8), IntRange(1, 2), 1, False),
            StageSpec((3, 5), (2, 3, 4), IntRange(16, 32, 8), IntRange(1, 2), 2, (False, True)),
            StageSpec(3, (2, 4), IntRange(24, 48, 8), IntRange(1, 2), 2, (False, True)),
        )
        return cls(
            stages=stages,
            resolution=(16, 24),
            stem_channels=IntRange(8, 16, 8),
            stem_stride=1,
            head_channels=IntRange(64, 128, 32),
            activation="hswish",
            in_channels=in_channels,
            num_classes=num_classes,
        )
