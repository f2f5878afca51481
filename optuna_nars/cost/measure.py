"""Measuring a latency table: every distinct block of a space, built from the same torchvision
blocks as :func:`~optuna_nars.models.build_model` and timed with ``torch.utils.benchmark``.

Each block runs in inference mode (``eval()``, ``torch.inference_mode``) on a batch of its
input shape: a warm-up, then ``repeats`` timed runs of ``number`` calls each (``number`` chosen
so that a run lasts about ``run_ms``), with a fixed thread count; the table keeps the median,
the inter-quartile range and the minimum of the runs per block. On a machine shared with other
work the minimum is the steadier statistic (other processes only ever add time, as
``timeit``'s documentation says), so a table can be summed by either. The partial table is
saved as it grows, so an interrupted build continues where it stopped. Optionally
(``calibrate``) a few whole networks are timed too, to fit the constant the networks cost
beyond their blocks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn
from torch.utils import benchmark
from torchvision.ops import Conv2dNormActivation

from optuna_nars.cost.blocks import Block, enumerate_blocks, space_fingerprint
from optuna_nars.cost.latency import LatencyTable
from optuna_nars.models import InvertedResidual, activation_layer, build_model
from optuna_nars.space import SearchSpace

__all__ = ["Timed", "Timing", "block_module", "build_table", "time_module"]

_logger = optuna.logging.get_logger("optuna." + __name__)

@dataclass(frozen=True)
class Timed:
    """One block's (or network's) timing, in seconds per call over ``runs`` timed runs."""

    median: float
    iqr: float
    minimum: float
    runs: int


#: A timer: (module, input) -> its :class:`Timed`.
Timing = Callable[[nn.Module, torch.Tensor], Timed]
_SAVE_EVERY_S = 5.0


def block_module(block: Block) -> tuple[nn.Module, tuple[int, int, int]]:
    """The module of ``block`` as ``build_model`` builds it, and its input's ``(C, H, W)``."""
    f = block.fields
    if block.kind == "stem":
        module: nn.Module = Conv2dNormActivation(
            f["in_channels"], f["channels"], 3, stride=f["stride"],
            activation_layer=activation_layer(f["activation"]))
        return module, (f["in_channels"], f["size"], f["size"])
    if block.kind == "block":
        module = InvertedResidual(f["c_in"], f["c_out"], f["kernel"], f["expansion"],
                                  f["stride"], bool(f["se"]), f["activation"], 0.0, f["padding"])
        return module, (f["c_in"], f["size"], f["size"])
    act = activation_layer(f["activation"])
    layers: list[nn.Module] = [Conv2dNormActivation(f["c_in"], f["channels"], 1,
                                                    activation_layer=act),
                               nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    last = f["channels"]
    if f["features"]:
        layers += [nn.Linear(last, f["features"]), act(inplace=True)]
        last = f["features"]
    layers += [nn.Dropout(0.0), nn.Linear(last, f["classes"])]
    return nn.Sequential(*layers), (f["c_in"], f["size"], f["size"])


def time_module(threads: int, repeats: int = 20, warmup: int = 10,
                run_ms: float = 10.0) -> Timing:
    """The standard timer: ``torch.utils.benchmark.Timer`` with ``threads`` threads; ``warmup``
    calls, then ``repeats`` runs of ``number`` calls (about ``run_ms`` each)."""

    def measure(module: nn.Module, x: torch.Tensor) -> Timed:
        timer = benchmark.Timer(stmt="module(x)", globals={"module": module, "x": x},
                                num_threads=threads)
        one = timer.timeit(warmup).median
        number = max(1, int(run_ms / 1e3 / max(one, 1e-7)))
        runs = [timer.timeit(number) for _ in range(repeats)]
        merged = benchmark.Measurement.merge(runs)[0]
        return Timed(merged.median, merged.iqr, min(merged.times), repeats)

    return measure


def _fresh_table(space: SearchSpace, device: str, threads: int, batch_size: int,
                 statistic: str, info: dict[str, Any]) -> LatencyTable:
    return LatencyTable({}, space_fingerprint=space_fingerprint(space), device=device,
                        torch=torch.__version__, threads=threads, batch_size=batch_size,
                        statistic=statistic, info=info)


def _resumed(path: Path, space: SearchSpace, device: str, threads: int,
             batch_size: int) -> LatencyTable | None:
    """The partial table at ``path`` to continue, if there is one; one measured elsewhere or
    otherwise is an error (mixing them would sum incomparable numbers)."""
    if not path.exists():
        return None
    table = LatencyTable.load(path, space=space)
    theirs = (table.device, table.threads, table.batch_size, table.torch)
    ours = (device, threads, batch_size, torch.__version__)
    if theirs != ours:
        raise ValueError(
            f"{table.source} was measured with (device, threads, batch size, torch) = "
            f"{theirs}, not {ours}; remove it or write to another file (-o)."
        )
    return table


def _calibrate(table: LatencyTable, space: SearchSpace, n: int, measure: Timing, device: str,
               batch_size: int) -> None:
    """Set ``table.overhead_ms`` from ``n`` random networks timed whole (seed 0)."""
    table.overhead_ms = 0.0
    values = space.sample_values(n, seed=0, method="random")
    field = "median" if table.statistic == "median_ms" else "minimum"
    measured = []
    for candidate in space.decode(values):  # (in inference mode: the caller's)
        arch = candidate.architecture
        model = build_model(arch, space.num_classes, space.in_channels).to(device).eval()
        x = torch.randn(batch_size, space.in_channels, arch.resolution, arch.resolution,
                        device=device)
        measured.append(getattr(measure(model, x), field) * 1e3)
    residual = np.array(measured) - table.latency_ms(space, values)
    table.overhead_ms = float(np.median(residual))
    table.info["calibration"] = {"networks": n, "overhead_ms": table.overhead_ms,
                                 "residual_iqr_ms": float(np.subtract(
                                     *np.percentile(residual, [75, 25])))}


def build_table(
    space: SearchSpace,
    path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    threads: int = 1,
    batch_size: int = 1,
    timer: Timing | None = None,
    progress: bool = True,
    statistic: str = "median_ms",
    calibrate: int = 0,
    info: dict[str, Any] | None = None,
) -> LatencyTable:
    """Measure every block of ``space`` on ``device`` and save the table to ``path``,
    continuing a partial table found there.

    Args:
        timer: How a block is timed (default :func:`time_module` with ``threads``).
        progress: Show a tqdm progress bar.
        statistic: What the table sums, ``"median_ms"`` or ``"min_ms"`` (steadier on a
            busy machine); both are kept.
        calibrate: Once every block is measured, time this many random networks of the space
            whole and set the table's ``overhead_ms`` to the median of (measured - summed):
            the network's own cost outside its blocks (its forward, the containers'
            dispatch). 0 leaves it at 0.
        info: Extra fields for the table's ``info`` (e.g. the space's name).

    Raises:
        ValueError: If ``path`` holds a table of another space or settings, or the space has a
            continuous architecture dimension.
    """
    path = Path(path)
    blocks = enumerate_blocks(space)
    table = _resumed(path, space, device, threads, batch_size)
    if table is None:
        table = _fresh_table(space, device, threads, batch_size, statistic, dict(info or {}))
    todo = [b for b in blocks if b.key not in table.entries]
    measure = timer or time_module(threads)
    from tqdm.auto import tqdm

    saved = time.monotonic()
    try:
        with torch.inference_mode():
            for block in tqdm(todo, desc="blocks", disable=not progress,
                              initial=len(blocks) - len(todo), total=len(blocks)):
                module, shape = block_module(block)
                module = module.to(device).eval()
                x = torch.randn(batch_size, *shape, device=device)
                t = measure(module, x)
                table.entries[block.key] = {"median_ms": t.median * 1e3, "iqr_ms": t.iqr * 1e3,
                                            "min_ms": t.minimum * 1e3, "runs": t.runs}
                if time.monotonic() - saved > _SAVE_EVERY_S:
                    table.save(path)
                    saved = time.monotonic()
            if calibrate and "calibration" not in table.info:
                _calibrate(table, space, calibrate, measure, device, batch_size)
    finally:
        table.info["complete"] = len(table.entries) >= len(blocks)
        table.save(path)
    _logger.info(f"Latency table {path}: {len(table)} blocks measured on {device}.")
    return table
