"""The building blocks of a :class:`~optuna_nars.SearchSpace`: one stage's choices, the recipe's.

Every field of a spec is a dimension; a constant, a list/tuple of choices or a dimension's JSON
form is turned into one on construction. Validation happens when a space is built, so that a
message can name the field by its parameter name (``stage2.kernel: 4 is not ...``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, fields
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
