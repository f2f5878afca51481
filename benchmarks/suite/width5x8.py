"""The width5x8 problem: LayerNAS's NATS-Bench size-search set-up on a table of our own.

5 layers x 8 width options (every 5-hidden-layer MLP on scikit-learn's digits, exhaustively
trained by :mod:`benchmarks.width_table`); maximise validation accuracy (%) under half of the
largest model's FLOPs. The table ships in ``benchmarks/data/width5x8/`` (README there) and is
validated on load, so a truncated or hand-edited file is a clear error, not wrong results.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from benchmarks.suite.problems import ROOT, TabularProblem
from benchmarks.width_table import N_LAYERS, WIDTHS, all_configs, flops_and_params

WIDTH5X8_PATH = Path(
    os.environ.get(
        "WIDTH5X8", ROOT / "benchmarks" / "data" / "width5x8" / "width5x8_digits.npz"
    )
)
_REGENERATE = "regenerate it with `python -m benchmarks.width_table` (see its README)"


class TableError(ValueError):
    """The width5x8 table is missing or inconsistent."""


def _check(ok: bool, path: Path, problem: str) -> None:
    if not ok:
        raise TableError(f"The width5x8 table {path} is invalid: {problem}; {_REGENERATE}.")


@functools.cache
def load_width_table(path: Path = WIDTH5X8_PATH) -> dict[str, np.ndarray]:
    """The table's arrays, checked: every configuration once, in order, the exact cost columns
    (recomputed), at least two runs per configuration, accuracies in [0, 1]."""
    if not path.exists():
        raise TableError(f"The width5x8 table is not at {path}: {_REGENERATE}, or set WIDTH5X8 "
                         "to its path.")
    with np.load(path) as f:
        table = {k: f[k] for k in f.files if k != "meta"}
    missing = {"configs", "widths", "val_acc", "flops", "params"} - set(table)
    _check(not missing, path, f"arrays {sorted(missing)} are missing")
    configs, acc = table["configs"], table["val_acc"]
    _check(tuple(table["widths"]) == WIDTHS, path, f"widths {table['widths']} != {WIDTHS}")
    _check(configs.shape == (len(WIDTHS) ** N_LAYERS, N_LAYERS)
           and np.array_equal(configs, all_configs()), path,
           f"configs of shape {configs.shape} are not all 8^5 width choices in order")
    _check(acc.ndim == 2 and acc.shape[0] == len(configs) and acc.shape[1] >= 2, path,
           f"val_acc has shape {acc.shape}, expected ({len(configs)}, >= 2 seeds)")
    _check(bool(np.all(np.isfinite(acc)) and np.all((acc >= 0) & (acc <= 1))), path,
           "val_acc has values outside [0, 1]")
    flops, params = flops_and_params(np.asarray(WIDTHS)[configs])
    _check(np.array_equal(table["flops"], flops) and np.array_equal(table["params"], params),
           path, "the flops / params columns do not match the architectures")
    return table


@functools.cache
def width5x8(budget_fraction: float = 0.5, path: Path = WIDTH5X8_PATH) -> TabularProblem:
    """5 layers x 8 widths on digits, budget ``flops <= budget_fraction * max flops``. Widths
    are ordinal indices (``width0`` .. ``width4`` in 0..7, the layer order LayerNAS searches);
    an evaluation is one training seed's validation accuracy (%), the truth their mean."""
    table = load_width_table(path)
    configs = table["configs"]
    flops = table["flops"].astype(float)
    names = [f"width{i}" for i in range(N_LAYERS)]
    return TabularProblem(
        name=f"width5x8-flops-{'half' if budget_fraction == 0.5 else budget_fraction}",
        direction="maximize",
        grid={name: list(WIDTHS) for name in names},
        ordinal=tuple(names),
        index={tuple(int(c) for c in row): i for i, row in enumerate(configs)},
        runs=100.0 * table["val_acc"].astype(float),
        proxy_names=("flops", "params"),
        proxy=np.stack([flops, table["params"].astype(float)], axis=1),
        budgets={"flops": budget_fraction * float(flops.max())},
        layers=tuple((name,) for name in names),
    )
