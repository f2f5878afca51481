"""Analytic cost model: FLOPs (multiply-adds) and parameter counts without building a module.

One vectorised implementation serves both a single :class:`Architecture` and a whole values
matrix of a :class:`SearchSpace`, so filtering a pool of tens of thousands of candidates against
a budget costs a few NumPy passes. It counts what ``torch.utils.flop_counter.FlopCounterMode``
counts (convolutions and matrix products; FLOPs there are 2 x multiply-adds) and exactly the
parameters :func:`optuna_nars.models.build_model` creates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from optuna_nars.candidate import Architecture

if TYPE_CHECKING:
    from optuna_nars.cost.latency import LatencyTable
    from optuna_nars.space import SearchSpace

__all__ = [
    "METRICS",
    "UNITS",
    "format_budget",
    "make_divisible",
    "block_channels",
    "count_flops",
    "count_params",
    "costs",
    "space_costs",
    "constraint_violations",
]

METRICS = ("flops", "params")
# How budgets and costs are shown to people: (divisor, unit) per metric.
UNITS = {"flops": (1e6, "MFLOPs"), "params": (1e3, "k params"), "latency_ms": (1.0, "ms")}


def format_budget(budget: Mapping[str, float], *, le: str = "≤", empty: str = "none") -> str:
    """``{"flops": 2e6}`` as ``"flops ≤ 2 MFLOPs"`` (metrics sorted; ``empty`` for no budget)."""
    if not budget:
        return empty
    parts = []
    for metric, limit in sorted(budget.items()):
        scale, unit = UNITS.get(metric, (1.0, metric))
        parts.append(f"{metric} {le} {limit / scale:.4g} {unit}")
    return ", ".join(parts)


def make_divisible(value: np.ndarray | float, divisor: int = 8) -> np.ndarray:
    """Round to the nearest multiple of ``divisor``, never more than 10% down (as torchvision's
    ``_make_divisible`` and timm do), element-wise."""
    value = np.asarray(value, dtype=float)
    rounded = np.maximum(divisor, np.floor(value + divisor / 2) // divisor * divisor)
    return np.where(rounded < 0.9 * value, rounded + divisor, rounded).astype(np.int64)


def block_channels(
    in_channels: np.ndarray | int, expansion: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Hidden (depthwise) and squeeze-excitation channels of an inverted-residual block.

    Hidden: ``make_divisible(c_in * e)``, or ``c_in`` with no expansion conv when ``e == 1``.
    SE: a quarter of the block's *input* channels, as FBNetV3's ``less_se_channels``.
    """
    c_in = np.asarray(in_channels, dtype=np.int64)
    e = np.asarray(expansion, dtype=float)
    hidden = np.where(e == 1, c_in, make_divisible(c_in * e))
    return hidden, make_divisible(c_in * 0.25)


def _conv_out(
    size: np.ndarray, stride: np.ndarray, kernel: np.ndarray | int = 3, trim: np.ndarray | int = 0
) -> np.ndarray:
    # Padding k // 2 - trim ("same" for trim 0, "tight" for trim 1).
    padding = np.asarray(kernel) // 2 - trim
    return (size + 2 * padding - kernel) // stride + 1


def _block_costs(
    c_in: np.ndarray,
    c_out: np.ndarray,
    kernel: np.ndarray,
    expansion: np.ndarray,
    stride: np.ndarray,
    se: np.ndarray,
    size: np.ndarray,
    trim: np.ndarray | int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FLOPs, params and output size of one inverted-residual block, element-wise."""
    hidden, squeeze = block_channels(c_in, expansion)
    out = _conv_out(size, stride, kernel, trim)
    expand = expansion != 1
    flops = np.where(expand, size * size * c_in * hidden, 0)
    params = np.where(expand, c_in * hidden + 2 * hidden, 0)
    flops = flops + out * out * hidden * kernel * kernel
    params = params + hidden * kernel * kernel + 2 * hidden
    # SE: two 1x1 convs (with bias) on the pooled 1x1 map.
    flops = flops + np.where(se, 2 * hidden * squeeze, 0)
    params = params + np.where(se, 2 * hidden * squeeze + hidden + squeeze, 0)
    flops = flops + out * out * hidden * c_out
    params = params + hidden * c_out + 2 * c_out
    return flops, params, out


def costs(
    fields: Mapping[str, np.ndarray],
    n_stages: int,
    in_channels: int,
    num_classes: int,
) -> dict[str, np.ndarray]:
    """FLOPs and params of many architectures given as arrays of their fields.

    ``fields`` maps the space's parameter names (``resolution``, ``stem.channels``,
    ``stage3.kernel``, ``stage3.tight`` (1 for "tight" padding), ``head.features`` (0 for
    none), ...) to equally long arrays.
    """

    def get(name: str) -> np.ndarray:
        return np.asarray(fields[name]).astype(np.int64)

    size = _conv_out(get("resolution"), get("stem.stride"))
    c = get("stem.channels")
    flops = size * size * in_channels * c * 9
    params = in_channels * c * 9 + 2 * c
    for i in range(1, n_stages + 1):
        kernel, depth = get(f"stage{i}.kernel"), get(f"stage{i}.depth")
        expansion = np.asarray(fields[f"stage{i}.expansion"], dtype=float)
        se = get(f"stage{i}.se").astype(bool)
        c_out, stride = get(f"stage{i}.channels"), get(f"stage{i}.stride")
        trim = get(f"stage{i}.tight") if f"stage{i}.tight" in fields else 0
        f1, p1, size = _block_costs(c, c_out, kernel, expansion, stride, se, size, trim)
        one = np.ones_like(size)
        fr, pr, _ = _block_costs(c_out, c_out, kernel, expansion, one, se, size)
        flops = flops + f1 + (depth - 1) * fr
        params = params + p1 + (depth - 1) * pr
        c = c_out
    head = get("head.channels")
    flops = flops + size * size * c * head
    params = params + c * head + 2 * head
    features = get("head.features")
    last = np.where(features > 0, features, head)
    flops = flops + head * features + last * num_classes
    params = params + head * features + features + last * num_classes + num_classes
    return {"flops": flops, "params": params}


def _architecture_fields(arch: Architecture) -> dict[str, np.ndarray]:
    fields: dict[str, list[float]] = {
        "resolution": [arch.resolution],
        "stem.channels": [arch.stem_channels],
        "stem.stride": [arch.stem_stride],
        "head.channels": [arch.head_channels],
        "head.features": [arch.feature_channels or 0],
    }
    for i, stage in enumerate(arch.stages, start=1):
        for name in ("kernel", "expansion", "channels", "depth", "stride", "se"):
            fields[f"stage{i}.{name}"] = [getattr(stage, name)]
        fields[f"stage{i}.tight"] = [stage.padding == "tight"]
    return {k: np.asarray(v) for k, v in fields.items()}


def _architecture_costs(arch: Architecture, in_channels: int, num_classes: int) -> dict[str, int]:
    out = costs(_architecture_fields(arch), len(arch.stages), in_channels, num_classes)
    return {k: int(v[0]) for k, v in out.items()}


def count_flops(arch: Architecture, in_channels: int = 3, num_classes: int = 1000) -> int:
    """Multiply-adds of one forward pass of a single image."""
    return _architecture_costs(arch, in_channels, num_classes)["flops"]


def count_params(arch: Architecture, in_channels: int = 3, num_classes: int = 1000) -> int:
    """Trainable parameters of :func:`~optuna_nars.models.build_model`'s network."""
    return _architecture_costs(arch, in_channels, num_classes)["params"]


def space_costs(space: SearchSpace, values: np.ndarray, *,
                latency_table: LatencyTable | None = None) -> dict[str, np.ndarray]:
    """FLOPs and params of every row of a values matrix of ``space`` (vectorised), and
    ``latency_ms`` summed from ``latency_table`` when one is given."""
    values = np.atleast_2d(values)
    names = ["resolution", "stem.channels", "stem.stride", "head.channels"]
    stage_fields = ("kernel", "expansion", "channels", "depth", "stride", "se")
    for i in range(1, len(space.stages) + 1):
        names += [f"stage{i}.{n}" for n in stage_fields]
    fields = {name: space.column(values, name).astype(float) for name in names}
    for i in range(1, len(space.stages) + 1):
        fields[f"stage{i}.tight"] = space.column(values, f"stage{i}.padding") == "tight"
    features = space.column(values, "head.features")
    fields["head.features"] = np.array([0 if f is None else f for f in features], dtype=float)
    out = costs(fields, len(space.stages), space.in_channels, space.num_classes)
    if latency_table is not None:
        out["latency_ms"] = latency_table.latency_ms(space, values)
    return out


def constraint_violations(
    space: SearchSpace, values: np.ndarray, limits: Mapping[str, float], *,
    latency_table: LatencyTable | None = None,
) -> dict[str, np.ndarray]:
    """For each budget in ``limits`` (``flops`` / ``params``, and ``latency_ms`` with a
    ``latency_table``), ``cost - limit`` per row (``<= 0`` is feasible), in Optuna's
    ``trial.set_constraint`` convention."""
    known = [*METRICS, "latency_ms"] if latency_table is not None else list(METRICS)
    unknown = set(limits) - set(known)
    if unknown:
        hint = (" A latency_ms budget needs latency_table=LatencyTable.load(path)."
                if "latency_ms" in unknown else "")
        raise ValueError(
            f"Unknown resource constraint(s) {sorted(unknown)}; the cost model knows "
            f"{known}. Pass a callable for other constraints.{hint}"
        )
    measured = space_costs(space, values, latency_table=latency_table)
    return {name: measured[name] - float(limit) for name, limit in limits.items()}
