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

Run from the repository root, on an otherwise idle machine::

    python benchmarks/latency_table.py --quick      # tiny, 100 networks, 20 runs of ~2 ms
    python benchmarks/latency_table.py              # tiny and cifar, 40 runs of ~5 ms

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


STATS = {"median_ms": "median", "min_ms": "minimum"}


def time_networks(space: SearchSpace, n: int, seed: int, timer: Any
                  ) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """``n`` random architectures of ``space``: their arch strings, values rows and measured
    median and minimum (ms, batch 1)."""
    values = space.sample_values(n, seed=seed, method="random")
    archs, measured = [], {stat: [] for stat in STATS}
    with torch.inference_mode():
        for i, candidate in enumerate(space.decode(values)):
            arch = candidate.architecture
            model = build_model(arch, space.num_classes, space.in_channels).eval()
            x = torch.randn(1, space.in_channels, arch.resolution, arch.resolution)
            timed = timer(model, x)
            archs.append(str(arch))
            for stat, field in STATS.items():
                measured[stat].append(getattr(timed, field) * 1e3)
            if (i + 1) % 20 == 0:
                print(f"  {i + 1}/{n} networks timed", flush=True)
    return archs, values, {k: np.array(v) for k, v in measured.items()}


def fresh_sums(space: SearchSpace, values: np.ndarray, timer: Any) -> dict[str, np.ndarray]:
    """Each row's blocks timed now, one after another, and summed (ms), per statistic."""
    blocks = {b.key: b for b in enumerate_blocks(space)}
    out = {stat: np.zeros(len(values)) for stat in STATS}
    with torch.inference_mode():
        for slot in block_slots(space, values):
            ms: dict[str, list[float]] = {stat: [] for stat in STATS}
            for key in slot.keys:
                module, shape = block_module(blocks[key])
                timed = timer(module.eval(), torch.randn(1, *shape))
                for stat, field in STATS.items():
                    ms[stat].append(getattr(timed, field) * 1e3)
            for stat in STATS:
                out[stat] += slot.count * np.array(ms[stat])[slot.index]
    return out


def compare(measured: np.ndarray, predicted: np.ndarray, fresh: np.ndarray) -> dict[str, Any]:
    """The table's sums against the networks, held out with a fitted overhead, and (first
    ``len(fresh)`` networks) the blocks re-timed beside them."""
    n, k = len(measured), len(fresh)
    half = n // 2
    overhead = float(np.median(measured[:half] - predicted[:half]))
    held_out = slice(half, None)
    return {
        "before": errors(measured, predicted),
        "before_held_out": errors(measured[held_out], predicted[held_out]),
        "fitted_overhead_ms": overhead,
        "after_held_out": errors(measured[held_out], predicted[held_out] + overhead),
        "diagnose_table": errors(measured[:k], predicted[:k]) if k > 2 else None,
        "diagnose_fresh": errors(measured[:k], fresh) if k > 2 else None,
        "measured_ms": measured.tolist(), "predicted_ms": predicted.tolist(),
        "fresh_ms": fresh.tolist(),
    }


def run_space(name: str, n: int, seed: int, threads: int, repeats: int,
              run_ms: float, diagnose: int) -> dict[str, Any]:
    space = getattr(SearchSpace, name)()
    timer = time_module(threads, repeats=repeats, run_ms=run_ms)
    TABLES.mkdir(parents=True, exist_ok=True)
    path = TABLES / f"{name}.json"
    settings = [repeats, run_ms, list(STATS)]
    if path.exists() and LatencyTable.load(path).info.get("timer") != settings:
        path.unlink()  # measured with other settings: start again
    start = time.perf_counter()
    table = build_table(space, path, threads=threads, timer=timer, progress=False,
                        info={"space": name, "timer": settings})
    table_s = time.perf_counter() - start
    print(f"{name}: table of {len(table)} blocks in {table_s:.0f} s; timing {n} networks ...",
          flush=True)
    archs, values, measured = time_networks(space, n, seed, timer)
    fresh = fresh_sums(space, values[:min(diagnose, n)], timer)
    out: dict[str, Any] = {"space": name, "n_blocks": len(table), "table_s": table_s,
                           "n_networks": n, "diagnosed": min(diagnose, n), "archs": archs}
    for stat in STATS:
        summed = LatencyTable.from_dict({**table.to_dict(), "statistic": stat})
        out[stat] = compare(measured[stat], summed.latency_ms(space, values), fresh[stat])
    return out


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
    repeats = args.repeats or (20 if args.quick else 40)
    run_ms = args.run_ms or (2.0 if args.quick else 5.0)
    started = time.perf_counter()
    results = [run_space(s, args.networks, args.seed, args.threads, repeats, run_ms,
                         args.diagnose) for s in spaces]
    rows = []
    for r in results:
        k = r["diagnosed"]
        for stat in STATS:
            c = r[stat]
            for label, key in (("table sum, all", "before"),
                               ("table sum, held-out half", "before_held_out"),
                               (f"+ fitted overhead {c['fitted_overhead_ms']:+.4f} ms, "
                                "held-out half", "after_held_out"),
                               (f"table sum, first {k}", "diagnose_table"),
                               (f"blocks re-timed beside the network, first {k}",
                                "diagnose_fresh")):
                e = c[key]
                if e is not None:
                    rows.append([r["space"], stat, label, f"{e['r2']:.4f}",
                                 f"{100 * e['median_rel_error']:.2f}%",
                                 f"{100 * e['worst_rel_error']:.2f}%",
                                 f"{100 * e['mean_signed_rel_error']:+.2f}%"])
    print(f"\nMeasured latency of {args.networks} random networks (batch 1, {args.threads} "
          f"thread(s)) against the latency table (goal: R2 >= 0.95, median error <= 5%):\n")
    print(markdown_table(["space", "statistic", "prediction", "R2", "median |error|",
                          "worst |error|", "mean signed error"], rows))
    for r in results:
        print(f"{r['space']}: median network "
              f"{statistics.median(r['median_ms']['measured_ms']):.3f} ms (median of runs), "
              f"table of {r['n_blocks']} blocks built in {r['table_s']:.0f} s")
    record = {"settings": {"networks": args.networks, "repeats": repeats, "run_ms": run_ms,
                           "batch": 1},
              "wall_s": time.perf_counter() - started, "results": results}
    save_results(args.output, "latency_table", args, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
