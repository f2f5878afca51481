"""The building blocks of a :class:`~optuna_nars.SearchSpace`: one stage's choices, the recipe's.

Every field of a spec is a dimension; a constant, a list/tuple of choices or a dimension's JSON
form is turned into one on construction. Validation happens when a space is built, so that a
message can name the field by its parameter name (``stage2.kernel: 4 is not ...``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from optuna_nars.candidate import ACTIVATIONS, OPTIMIZERS, PADDINGS
from optuna_nars.space.dimensions import (
    Choice,
    Dimension,
    FloatRange,
    IntRange,
    _as_dimension,
)

__all__ = ["RecipeSpec", "StageSpec"]


def _dimension_fields(obj: Any) -> Iterator[tuple[str, Dimension]]:
    """The (name, dimension) of every field of a spec dataclass that holds a dimension."""
    for f in fields(obj):
        if f.metadata.get("dimension", True):
            yield f.name, getattr(obj, f.name)


def _normalise(obj: Any, skip: Collection[str] = ()) -> None:
    """Turn every dimension field of a frozen spec (but those in ``skip``) into a dimension."""
    for f in fields(obj):
        if f.metadata.get("dimension", True) and f.name not in skip:
            object.__setattr__(obj, f.name, _as_dimension(getattr(obj, f.name)))


#: A discrete range of at most this many values is checked value by value.
_LISTED = 1000


def _values_to_check(dim: Dimension) -> list[Any]:
    """Every value of a choice or of a short discrete range, else a range's two ends.

    The ends stand for a long range because every check here either accepts an interval
    (``>= 1``, ``[0, 1)``) or a few values only (kernel sizes, strides), which a long range
    fails at its ends anyway. A short range is listed: ``IntRange(3, 7)`` as a kernel holds 4.
    """
    if isinstance(dim, Choice):
        return list(dim.values)
    if dim.size > _LISTED:
        return [dim.low, dim.high]
    if isinstance(dim, IntRange):
        return list(range(dim.low, dim.high + 1, dim.step))
    return np.linspace(dim.low, dim.high, int(dim.size)).tolist()


def _check_values(name: str, dim: Dimension, ok: Callable[[Any], bool], what: str) -> None:
    """Check every value a dimension can take with ``ok`` (see :func:`_values_to_check`)."""
    bad = [v for v in _values_to_check(dim) if not ok(v)]
    if bad:
        raise ValueError(f"{name}: {bad[0]!r} is not {what}.")


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
    """The training-recipe half of the joint space.

    ``base_lr`` (``{optimizer: learning rate}``, one for every optimizer the space holds) makes
    the learning rate relative to the chosen optimizer: ``lr`` then ranges over multiples of
    its base rate, the parameter ``recipe.lr_factor`` (the candidate's ``Recipe.lr`` is still
    the rate it trains with). One absolute range cannot suit SGD and the adaptive optimizers
    at once: rates that SGD needs make RMSprop and AdamW diverge, and theirs leave SGD barely
    moving. Without it, ``lr`` is the learning rate itself (``recipe.lr``). Base rates that are
    powers of two (as the presets') keep the round trip candidate -> params -> candidate exact
    in floating point; with others a factor may come back an ulp off.
    """

    optimizer: Any = OPTIMIZERS
    lr: Any = FloatRange(1e-3, 0.5, log=True)
    weight_decay: Any = FloatRange(1e-6, 1e-3, log=True)
    mixup_alpha: Any = FloatRange(0.0, 0.4)
    dropout: Any = FloatRange(0.0, 0.3)
    stochastic_depth: Any = FloatRange(0.0, 0.2)
    ema: Any = (True, False)
    label_smoothing: Any = FloatRange(0.0, 0.2)
    base_lr: Any = field(default=None, metadata={"dimension": False})

    def __post_init__(self) -> None:
        _normalise(self)
        if isinstance(self.base_lr, Mapping):  # frozen and hashable: sorted (name, rate) pairs
            pairs = sorted(self.base_lr.items(), key=lambda pair: str(pair[0]))
            object.__setattr__(self, "base_lr", tuple(pairs))

    @property
    def lr_name(self) -> str:
        """The learning rate's parameter, after ``recipe.``: ``lr_factor`` with ``base_lr``."""
        return "lr" if self.base_lr is None else "lr_factor"

    def learning_rate(self, optimizer: str, value: float) -> float:
        """The rate ``optimizer`` trains with for the ``lr`` dimension's ``value``."""
        return value if self.base_lr is None else value * dict(self.base_lr)[optimizer]

    def lr_value(self, optimizer: str, rate: float) -> float:
        """The ``lr`` dimension's value for a rate (inverse of :meth:`learning_rate`); a
        factor within rounding of the range's ends is put on them."""
        if self.base_lr is None:
            return rate
        base = dict(self.base_lr).get(optimizer)
        if base is None:
            return math.nan  # an optimizer the space does not hold: outside it
        value = rate / base
        ends = self.lr.values if isinstance(self.lr, Choice) else (self.lr.low, self.lr.high)
        return next((end for end in ends if math.isclose(value, end, rel_tol=1e-12)), value)

    def _validate(self, prefix: str) -> None:
        for name, dim in _dimension_fields(self):
            dim._validate(f"{prefix}.{name}")
        _check_values(f"{prefix}.optimizer", self.optimizer, lambda o: o in OPTIMIZERS,
                      f"one of {OPTIMIZERS}")
        positive = lambda x: isinstance(x, (int, float)) and x > 0  # noqa: E731
        fraction = lambda x: isinstance(x, (int, float)) and 0 <= x < 1  # noqa: E731
        if self.base_lr is None:
            _check_values(f"{prefix}.lr", self.lr, positive, "a positive learning rate")
        else:
            self._validate_base_lr(prefix, positive)
        _check_values(f"{prefix}.weight_decay", self.weight_decay,
                      lambda x: isinstance(x, (int, float)) and x >= 0, "a weight decay >= 0")
        _check_values(f"{prefix}.mixup_alpha", self.mixup_alpha,
                      lambda x: isinstance(x, (int, float)) and x >= 0, "a mixup alpha >= 0")
        for name in ("dropout", "stochastic_depth", "label_smoothing"):
            _check_values(f"{prefix}.{name}", getattr(self, name), fraction, "a rate in [0, 1)")
        _check_values(f"{prefix}.ema", self.ema, lambda s: isinstance(s, bool), "True or False")

    def _validate_base_lr(self, prefix: str, positive: Callable[[Any], bool]) -> None:
        example = "e.g. base_lr={'sgd': 0.1, 'rmsprop': 0.01, 'adamw': 0.003}"
        if not isinstance(self.base_lr, tuple) or not all(
                isinstance(p, tuple) and len(p) == 2 for p in self.base_lr):
            raise ValueError(f"{prefix}.base_lr must map optimizers to learning rates ({example}).")
        rates = dict(self.base_lr)
        for name, rate in rates.items():
            if name not in OPTIMIZERS:
                raise ValueError(f"{prefix}.base_lr: unknown optimizer {name!r}; "
                                 f"choose from {OPTIMIZERS}.")
            if not (positive(rate) and math.isfinite(rate)):
                raise ValueError(f"{prefix}.base_lr[{name!r}]: {rate!r} is not a positive "
                                 f"learning rate ({example}).")
        _check_values(f"{prefix}.base_lr", self.optimizer, lambda o: o in rates,
                      f"given a base rate (add it to base_lr, {example})")
        _check_values(f"{prefix}.lr_factor", self.lr, positive,
                      "a positive multiple of the optimizer's base rate")
