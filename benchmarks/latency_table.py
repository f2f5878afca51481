"""How well a latency look-up table predicts the measured latency of whole networks.

For a preset space (``tiny`` at 16/24 px, ``cifar`` at 32 px), the script builds the space's
latency table on this machine (``optuna_nars.cost.measure.build_table``: every distinct block
timed with ``torch.utils.benchmark``, batch 1, ``--threads`` threads), then times N random
architectures of the space end to end with the same timer (``build_model``, ``eval()``,
inference mode) and compares each network's measured median with the table's sum:
R-squared (of measured against the sum itself, no fitting), median and worst relative error
(goal: R-squared >= 0.95, median error <= 5%).

To tell the blocks' additivity from drift between building the table and timing the networks
(other load on a shared machine), the first ``--diagnose`` networks also have their blocks timed
again right after the network, and their fresh sum is compared with the measured network too.

It also reports the table with a fitted constant overhead (the network's cost outside its
blocks, e.g. the forward's Python dispatch): the median of ``measured - sum`` over the first
half of the networks, evaluated on the other half only, so the "after" numbers are held out.

Run from the repository root (on a shared machine, under ``flock /tmp/cpu-heavy.lock``)::

    python benchmarks/latency_table.py --quick      # tiny, 100 networks, shorter timings
    python benchmarks/latency_table.py              # tiny and cifar, 100 networks each

Results go to ``benchmarks/results/latency_table.json`` (the tables themselves to
``benchmarks/results/latency_tables/``; a table found there is reused).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS_DIR, benchmark_parser, markdown_table, parse_run_args, save_results  # noqa: E402

from optuna_nars.cost import LatencyTable  # noqa: E402
from optuna_nars.cost.blocks import block_slots, enumerate_blocks  # noqa: E402
from optuna_nars.cost.measure import block_module, build_table, time_module  # noqa: E402
from optuna_nars.models import build_model  # noqa: E402
from optuna_nars.space import SearchSpace  # noqa: E402

RESULTS = RESULTS_DIR / "latency_table.json"
TABLES = RESULTS_DIR / "latency_tables"


def errors(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """R-squared of ``measured`` against ``predicted`` (no fitting) and relative errors."""
    residual = measured - predicted
    r2 = 1.0 - float(np.sum(residual**2) / np.sum((measured - measured.mean()) ** 2))
    rel = np.abs(residual) / measured
    return {"r2": r2, "median_rel_error": float(np.median(rel)),
            "worst_rel_error": float(np.max(rel)),
            "mean_signed_rel_error": float(np.mean(residual / measured))}


def time_networks(space: SearchSpace, n: int, seed: int, timer: Any) -> tuple[list[str],
                                                                               np.ndarray,
                                                                               np.ndarray]:
    """``n`` random architectures of ``space``: their arch strings, values rows and measured
    medians (ms, batch 1)."""
    values = space.sample_values(n, seed=seed, method="random")
    archs, measured = [], []
    with torch.inference_mode():
        for i, candidate in enumerate(space.decode(values)):
            arch = candidate.architecture
            model = build_model(arch, space.num_classes, space.in_channels).eval()
            x = torch.randn(1, space.in_channels, arch.resolution, arch.resolution)
            median, _, _ = timer(model, x)
            archs.append(str(arch))
            measured.append(median * 1e3)
            if (i + 1) % 20 == 0:
                print(f"  {i + 1}/{n} networks timed", flush=True)
    return archs, values, np.array(measured)


def fresh_sums(space: SearchSpace, values: np.ndarray, timer: Any) -> np.ndarray:
    """Each row's blocks timed now, one after another, and summed (ms)."""
    blocks = {b.key: b for b in enumerate_blocks(space)}
    out = np.zeros(len(values))
    with torch.inference_mode():
        for slot in block_slots(space, values):
            ms = []
            for key in slot.keys:
                module, shape = block_module(blocks[key])
                ms.append(timer(module.eval(), torch.randn(1, *shape))[0] * 1e3)
            out += slot.count * np.array(ms)[slot.index]
    return out


def run_space(name: str, n: int, seed: int, threads: int, repeats: int,
              run_ms: float, diagnose: int) -> dict[str, Any]:
    space = getattr(SearchSpace, name)()
    timer = time_module(threads, repeats=repeats, run_ms=run_ms)
    TABLES.mkdir(parents=True, exist_ok=True)
    path = TABLES / f"{name}.json"
    if path.exists() and LatencyTable.load(path).info.get("timer") != [repeats, run_ms]:
        path.unlink()  # measured with other settings: start again
    start = time.perf_counter()
    table = build_table(space, path, threads=threads, timer=timer, progress=False,
                        info={"space": name, "timer": [repeats, run_ms]})
    table_s = time.perf_counter() - start
    print(f"{name}: table of {len(table)} blocks in {table_s:.0f} s; timing {n} networks ...",
          flush=True)
    archs, values, measured = time_networks(space, n, seed, timer)
    predicted = table.latency_ms(space, values)
    k = min(diagnose, n)
    fresh = fresh_sums(space, values[:k], timer) if k else np.zeros(0)
    half = n // 2
    overhead = float(np.median(measured[:half] - predicted[:half]))
    held_out = slice(half, None)
    return {
        "space": name, "n_blocks": len(table), "table_s": table_s, "n_networks": n,
        "before": errors(measured, predicted),
        "before_held_out": errors(measured[held_out], predicted[held_out]),
        "fitted_overhead_ms": overhead,
        "after_held_out": errors(measured[held_out], predicted[held_out] + overhead),
        "diagnosed": k,
        "diagnose_table": errors(measured[:k], predicted[:k]) if k > 2 else None,
        "diagnose_fresh": errors(measured[:k], fresh) if k > 2 else None,
        "fresh_ms": fresh.tolist(),
        "measured_ms": measured.tolist(), "predicted_ms": predicted.tolist(), "archs": archs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "tiny only, shorter timings (a few minutes)")
    parser.add_argument("--spaces", nargs="+", choices=("tiny", "cifar"), default=None)
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per block/network")
    parser.add_argument("--run-ms", type=float, default=None, help="length of one timed run")
    parser.add_argument("--diagnose", type=int, default=20,
                        help="networks whose blocks are timed again right after them")
    args = parse_run_args(parser, argv, output=RESULTS)
    spaces = args.spaces or (["tiny"] if args.quick else ["tiny", "cifar"])
    repeats = args.repeats or (10 if args.quick else 20)
    run_ms = args.run_ms or (5.0 if args.quick else 10.0)
    started = time.perf_counter()
    results = [run_space(s, args.networks, args.seed, args.threads, repeats, run_ms,
                         args.diagnose) for s in spaces]
    rows = []
    for r in results:
        for label, key in (("table sum, all", "before"),
                           ("table sum, held-out half", "before_held_out"),
                           (f"+ fitted overhead {r['fitted_overhead_ms']:.4f} ms, held-out half",
                            "after_held_out"),
                           (f"table sum, first {r['diagnosed']}", "diagnose_table"),
                           (f"blocks re-timed beside the network, first {r['diagnosed']}",
                            "diagnose_fresh")):
            e = r[key]
            if e is None:
                continue
            rows.append([r["space"], label, f"{e['r2']:.4f}", f"{100 * e['median_rel_error']:.2f}%",
                         f"{100 * e['worst_rel_error']:.2f}%",
                         f"{100 * e['mean_signed_rel_error']:+.2f}%"])
    print(f"\nMeasured latency of {args.networks} random networks (batch 1, {args.threads} "
          f"thread(s)) against the latency table (goal: R2 >= 0.95, median error <= 5%):\n")
    print(markdown_table(["space", "prediction", "R2", "median |error|", "worst |error|",
                          "mean signed error"], rows))
    for r in results:
        print(f"{r['space']}: measured median {statistics.median(r['measured_ms']):.3f} ms, "
              f"table {r['n_blocks']} blocks built in {r['table_s']:.0f} s")
    record = {"settings": {"networks": args.networks, "repeats": repeats, "run_ms": run_ms,
                           "batch": 1},
              "wall_s": time.perf_counter() - started, "results": results}
    save_results(args.output, "latency_table", args, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
