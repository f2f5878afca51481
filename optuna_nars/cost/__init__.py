"""The cost model: exact analytic FLOPs and parameter counts (:mod:`.analytic`), and latency
summed from a table measured on the target device (:mod:`.latency`, over the blocks of
:mod:`.blocks`; the measuring itself, which needs torch, is :mod:`.measure`)."""

from __future__ import annotations

from optuna_nars.cost.analytic import (
    METRICS,
    UNITS,
    block_channels,
    constraint_violations,
    costs,
    count_flops,
    count_params,
    format_budget,
    make_divisible,
    space_costs,
)
from optuna_nars.cost.latency import LATENCY, LatencyTable

__all__ = [
    "LATENCY",
    "METRICS",
    "UNITS",
    "LatencyTable",
    "block_channels",
    "constraint_violations",
    "costs",
    "count_flops",
    "count_params",
    "format_budget",
    "make_divisible",
    "space_costs",
]
