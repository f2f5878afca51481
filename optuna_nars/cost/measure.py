"""Measuring a latency table: every distinct block of a space, built from the same torchvision
blocks as :func:`~optuna_nars.models.build_model` and timed with ``torch.utils.benchmark``.

Each block runs in inference mode (``eval()``, ``torch.inference_mode``) on a batch of its
input shape: a warm-up, then ``repeats`` timed runs of ``number`` calls each (``number`` chosen
so that a run lasts about ``run_ms``), with a fixed thread count. The blocks are timed in
``passes`` rounds, each round over every block, so that one block's runs lie seconds apart:
on a shared (virtual) machine the speed changes while the table is built, and a block timed
only inside one slow spell would be wrong in every network that uses it. Per block the table
keeps the minimum over all runs, the median of the rounds' medians and their inter-quartile
range; other processes only ever add time (``timeit``'s documentation), so the minimum, the
default sum, is the steady statistic. The partial table is saved as it grows, so an
interrupted build continues where it stopped. Optionally (``calibrate``) a few whole networks
are timed too (as many rounds), to fit the scale and the overhead the networks cost beyond
their blocks.
"""

from __future__ import annotations

import math
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

from optuna_nars._validation import check_int
from optuna_nars.cost.blocks import Block, enumerate_blocks, space_fingerprint
from optuna_nars.cost.latency import LatencyTable
from optuna_nars.models import InvertedResidual, activation_layer, build_model
from optuna_nars.space import SearchSpace

__all__ = ["Timed", "Timing", "block_module", "build_table", "time_module", "time_networks"]

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


def _passes(entry: dict[str, Any] | None) -> int:
    """Rounds an entry holds (a table from before rounds holds one)."""
    return 0 if entry is None else int(entry.get("passes", 1))


def _merged(entry: dict[str, Any] | None, t: Timed) -> dict[str, Any]:
    """A block's entry with one more round's timing ``t`` folded in."""
    entry = entry or {}
    medians = [*entry.get("pass_medians_ms", []), t.median * 1e3]
    iqrs = [*entry.get("pass_iqrs_ms", []), t.iqr * 1e3]
    minimum = min(t.minimum * 1e3, entry.get("min_ms", math.inf))
    return {"median_ms": float(np.median(medians)), "iqr_ms": float(np.median(iqrs)),
            "min_ms": minimum, "runs": entry.get("runs", 0) + t.runs,
            "passes": len(medians), "pass_medians_ms": medians, "pass_iqrs_ms": iqrs}


def time_networks(space: SearchSpace, values: np.ndarray, measure: Timing, *,
                  device: str = "cpu", batch_size: int = 1, passes: int = 1
                  ) -> dict[str, np.ndarray]:
    """Every row of ``values`` built whole and timed in ``passes`` rounds over all rows:
    ``{"min_ms", "median_ms"}`` per row (minimum over all runs, median of the rounds'
    medians), the statistics a table's sum predicts."""
    models = []
    for candidate in space.decode(values):
        arch = candidate.architecture
        model = build_model(arch, space.num_classes, space.in_channels).to(device).eval()
        models.append((model, torch.randn(batch_size, space.in_channels, arch.resolution,
                                          arch.resolution, device=device)))
    entries: list[dict[str, Any] | None] = [None] * len(models)
    with torch.inference_mode():
        for _ in range(passes):
            for i, (model, x) in enumerate(models):
                entries[i] = _merged(entries[i], measure(model, x))
    return {stat: np.array([e[stat] for e in entries if e]) for stat in ("min_ms", "median_ms")}


def _calibrate(table: LatencyTable, space: SearchSpace, n: int, measure: Timing, device: str,
               batch_size: int, passes: int) -> None:
    """Fit ``table.scale`` and ``table.overhead_ms`` to ``n`` random networks (seed 0) timed
    whole: least squares of measured on summed; with fewer than 3 distinct sums, or a fit
    that is not increasing, only the median overhead."""
    table.overhead_ms, table.scale = 0.0, 1.0
    values = space.sample_values(n, seed=0, method="random")
    measured = time_networks(space, values, measure, device=device, batch_size=batch_size,
                             passes=passes)[table.statistic]
    summed = table.latency_ms(space, values)
    if len(np.unique(summed)) >= 3:
        scale, overhead = np.polyfit(summed, measured, 1)
        if scale > 0:
            table.scale, table.overhead_ms = float(scale), float(overhead)
    if table.scale == 1.0:
        table.overhead_ms = float(np.median(measured - summed))
    residual = measured - table.latency_ms(space, values)
    table.info["calibration"] = {"networks": n, "overhead_ms": table.overhead_ms,
                                 "scale": table.scale,
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
    passes: int = 10,
    progress: bool = True,
    statistic: str = "min_ms",
    calibrate: int = 0,
    info: dict[str, Any] | None = None,
) -> LatencyTable:
    """Measure every block of ``space`` on ``device`` and save the table to ``path``,
    continuing a partial table found there.

    Args:
        timer: How a block is timed (default :func:`time_module` with ``threads``).
        passes: Rounds over all blocks; each block is timed once per round. Spreading every
            block's runs over the build steadies the sums on a machine whose speed drifts
            (``benchmarks/latency_table.py`` compares 5 and 10 rounds).
        progress: Show a tqdm progress bar.
        statistic: What the table sums, ``"min_ms"`` (default, the steady one) or
            ``"median_ms"``; both are kept.
        calibrate: Once every block is measured, time this many random networks of the space
            whole and fit the table's ``scale`` and ``overhead_ms`` (measured = scale * summed
            + overhead, least squares): a whole network's cost beyond its blocks timed alone
            (its forward's dispatch; probably weights that no longer all stay in cache). 0
            leaves them at 1 and 0.
        info: Extra fields for the table's ``info`` (e.g. the space's name).

    Raises:
        ValueError: If ``path`` holds a table of another space or settings, or the space has a
            continuous architecture dimension.
    """
    passes = int(check_int("passes", passes, minimum=1, owner="build_table"))
    path = Path(path)
    blocks = enumerate_blocks(space)
    table = _resumed(path, space, device, threads, batch_size)
    if table is None:
        table = _fresh_table(space, device, threads, batch_size, statistic, dict(info or {}))
    table.info["passes"] = passes
    measure = timer or time_module(threads)
    from tqdm.auto import tqdm

    done = sum(min(passes, _passes(table.entries.get(b.key))) for b in blocks)
    bar = tqdm(desc="blocks x passes", disable=not progress, initial=done,
               total=len(blocks) * passes)
    saved = time.monotonic()
    try:
        with torch.inference_mode():
            for round_ in range(1, passes + 1):
                for block in blocks:
                    if _passes(table.entries.get(block.key)) >= round_:
                        continue  # measured in this round before an interruption
                    module, shape = block_module(block)
                    t = measure(module.to(device).eval(),
                                torch.randn(batch_size, *shape, device=device))
                    table.entries[block.key] = _merged(table.entries.get(block.key), t)
                    bar.update()
                    if time.monotonic() - saved > _SAVE_EVERY_S:
                        table.save(path)
                        saved = time.monotonic()
            if calibrate and "calibration" not in table.info:
                _calibrate(table, space, calibrate, measure, device, batch_size, passes)
    finally:
        bar.close()
        table.info["complete"] = all(_passes(table.entries.get(b.key)) >= passes
                                     for b in blocks)
        table.save(path)
    _logger.info(f"Latency table {path}: {len(table)} blocks measured on {device}.")
    return table
