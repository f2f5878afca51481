"""Dimensions: the set of values one parameter can take, and how a value is stored.

A value has three forms, and a :class:`Dimension` converts between them:

* the *value* itself: what an Optuna trial's ``params`` hold and a candidate field takes;
* its *raw* form: the float in a values-matrix column (the index of a :class:`Choice`, the
  number itself for an :class:`IntRange` or a :class:`FloatRange`);
* a point of the unit interval ``[0, 1]``: what Sobol sampling draws.

The array methods take and return one column: raw values of shape ``(n,)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

__all__ = ["Choice", "Dimension", "FloatRange", "IntRange"]


@runtime_checkable
class Dimension(Protocol):
    """What every dimension (:class:`Choice`, :class:`IntRange`, :class:`FloatRange`) provides."""

    #: Whether the raw form is a choice index (one-hot encoded) rather than a number.
    categorical: bool

    @property
    def is_fixed(self) -> bool:
        """Whether the dimension holds one value only: then it is a constant, not a parameter."""
        ...

    @property
    def size(self) -> float:
        """How many values the dimension holds (``inf`` for a float range without a step)."""
        ...

    @property
    def width(self) -> int:
        """How many columns :meth:`encode` gives: the number of choices, or 1 for a range."""
        ...

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution with the same values."""
        ...

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Points of ``[0, 1]``, shape ``(n,)``, to raw values, shape ``(n,)``.

        The unit interval is cut into one cell per value (bins centred on the values for
        integers), so that uniform points give every value its share.
        """
        ...

    def to_unit(self, raw: np.ndarray) -> np.ndarray:
        """Raw values, shape ``(n,)``, to points of ``[0, 1]``, shape ``(n,)``: the centre of
        each value's cell, so ``from_unit(to_unit(raw)) == raw``."""
        ...

    def grid(self) -> np.ndarray:
        """Every raw value, in order, exactly as :meth:`from_unit` gives them (``ValueError``
        for a float range without a step)."""
        ...

    def to_raw(self, value: Any) -> float:
        """One value to its raw float."""
        ...

    def from_raw(self, raw: float) -> Any:
        """One raw float back to the value (a choice, an ``int`` or a ``float``)."""
        ...

    def actual(self, raw: np.ndarray) -> np.ndarray:
        """Raw values, shape ``(n,)``, to the values, shape ``(n,)`` (object dtype for choices)."""
        ...

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """Raw values, shape ``(n,)``, to predictor inputs, shape ``(n, width)``: one-hot for a
        choice, scaled to ``[0, 1]`` (on the log scale for log ranges) for a range."""
        ...

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of the dimension's values."""
        ...

    def to_json(self) -> Any:
        """A JSON-ready form that :func:`_as_dimension` reads back: the constant of a fixed
        choice, the list of choices, or a dict with ``"type": "int"`` or ``"float"``."""
        ...

    def _validate(self, name: str) -> None:
        """Raise ``ValueError`` naming the parameter ``name`` if the dimension is malformed."""
        ...


@dataclass(frozen=True)
class Choice:
    """A categorical dimension; a single value makes the dimension fixed.

    ``Choice(3, 5)`` and ``Choice([3, 5])`` are the same; the raw form is the index of a value.
    """

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

    def grid(self) -> np.ndarray:
        return np.arange(len(self.values), dtype=float)

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

    def grid(self) -> np.ndarray:
        return self.low + self.step * np.arange(int(self.size), dtype=float)

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
        if self.step is None:
            return
        if not (math.isfinite(self.step) and self.step > 0) or self.log:
            raise ValueError(f"{name}: step must be positive and cannot go with log.")
        # Decimal arithmetic as Optuna's FloatDistribution uses: a step that does not divide the
        # range would make Optuna lower ``high`` silently, so the space would not say what it does.
        span, step = Decimal(str(self.high)) - Decimal(str(self.low)), Decimal(str(self.step))
        if span % step:
            fix = Decimal(str(self.low)) + (span // step) * step
            raise ValueError(
                f"{name}: step {self.step} does not divide the range {self.low}..{self.high}; "
                f"make high - low a multiple of step (e.g. high={float(fix)})."
            )

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

    def _bounds(self) -> tuple[float, float]:
        # With a step, bins of width ``step`` centred on the grid values (as for IntRange), so
        # that the two end values get a whole cell, not half of one.
        if self.step is not None:
            return self.low - 0.5 * self.step, self.high + 0.5 * self.step
        return float(self._scale(self.low)), float(self._scale(self.high))

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi = self._bounds()
        x = lo + u * (hi - lo)
        if self.step is not None:
            k = np.clip(np.round((x - self.low) / self.step), 0, self.size - 1)
            x = self.low + self.step * k
        # The clip also puts the last grid value exactly on ``high`` (0.1 * 3 > 0.3).
        return np.clip(np.exp(x) if self.log else x, self.low, self.high)

    def grid(self) -> np.ndarray:
        if self.step is None:
            raise ValueError("A float range without a step has no grid of values.")
        return np.clip(self.low + self.step * np.arange(int(self.size), dtype=float),
                       self.low, self.high)

    def to_unit(self, raw: np.ndarray) -> np.ndarray:
        lo, hi = self._bounds()
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
        if not (isinstance(value, (int, float, np.number)) and self.low <= value <= self.high):
            return False
        if self.step is None:
            return True
        # On the grid, with the tolerance of Optuna's FloatDistribution.
        k = (value - self.low) / self.step
        return abs(k - round(k)) < 1e-8

    def to_json(self) -> Any:
        out = {"type": "float", "low": self.low, "high": self.high, "log": self.log}
        return {**out, "step": self.step} if self.step is not None else out


# ---- turning values into dimensions ---------------------------------------------------------


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


def _dimension_of(distribution: BaseDistribution) -> Dimension:
    """The dimension with the values of an Optuna distribution (inverse of ``distribution()``)."""
    if isinstance(distribution, CategoricalDistribution):
        return Choice(*distribution.choices)
    if isinstance(distribution, IntDistribution):
        return IntRange(distribution.low, distribution.high, distribution.step, distribution.log)
    if isinstance(distribution, FloatDistribution):
        return FloatRange(distribution.low, distribution.high, distribution.log, distribution.step)
    raise ValueError(f"Unsupported distribution {distribution!r}.")

