"""Argument checkers shared by every public constructor: one message format for one mistake.

A message names the argument (and, with ``owner``, the class it belongs to), what it must be,
what it got, and, with ``example``, a value that works::

    batch_size must be an integer >= 1. Got 0. Use e.g. batch_size=10.
    The 'threshold' parameter of EarlyStoppingPruner must be in (0.0, 1.0]. Got 1.5.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

__all__ = ["check_choice", "check_int", "check_real", "finite_interval", "finite_number"]


def _subject(name: str, owner: str | None) -> str:
    return f"The {name!r} parameter of {owner}" if owner else name


def _fix(name: str, example: Any, hint: str) -> str:
    out = f" {hint}" if hint else ""
    return out + (f" Use e.g. {name}={example!r}." if example is not None else "")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int,
    maximum: int | None = None,
    allow_none: bool = False,
    example: Any = None,
    owner: str | None = None,
    hint: str = "",
) -> int | None:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (``None`` passes with ``allow_none``)."""
    if value is None and allow_none:
        return None
    bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    what = f"an integer {bound}{' or None' if allow_none else ''}"
    if not _is_int(value):
        got = f"{value!r} of type {type(value).__name__}"
        raise ValueError(f"{_subject(name, owner)} must be {what}. Got {got}."
                         f"{_fix(name, example, '')}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{_subject(name, owner)} must be {what}. Got {value!r}."
                         f"{_fix(name, example, hint)}")
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    example: Any = None,
    owner: str | None = None,
    hint: str = "",
) -> float:
    """``value`` as a finite ``float`` within the given bounds (open or closed)."""
    subject = _subject(name, owner)
    if not isinstance(value, (int, float, np.number)) or isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{subject} must be a number (int or float). Got {value!r} of type "
                         f"{type(value).__name__}.{_fix(name, example, '')}")
    if math.isnan(value):
        raise ValueError(f"{subject} must be a number, not NaN.{_fix(name, example, '')}")
    if low is not None and high is not None:
        what = f"in {'(' if low_open else '['}{low!r}, {high!r}{')' if high_open else ']'}"
    elif low is not None:
        what = f"a number {'>' if low_open else '>='} {low!r}"
    elif high is not None:
        what = f"a number {'<' if high_open else '<='} {high!r}"
    else:
        what = "a finite number"
    ok = math.isfinite(value)
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{subject} must be {what}. Got {value!r}."
                         f"{_fix(name, example, hint)}")
    return float(value)


def check_choice(name: str, value: Any, choices: Collection[Any], *,
                 owner: str | None = None) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{_subject(name, owner)} must be one of {list(choices)}. "
                         f"Got {value!r}.")
    return value


def finite_number(x: Any) -> float | None:
    """``x`` as a ``float`` if it is a finite int or float (attributes may hold anything)."""
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def finite_interval(x: Any) -> tuple[float, float] | None:
    """``x`` as ``(low, high)`` if it is a pair of finite numbers with ``low <= high``."""
    if not isinstance(x, (list, tuple)) or len(x) != 2:
        return None
    low, high = finite_number(x[0]), finite_number(x[1])
    return (low, high) if low is not None and high is not None and low <= high else None
