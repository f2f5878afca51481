"""How well a latency look-up table predicts the measured latency of whole networks.

For a preset space (``tiny`` at 16/24 px, ``cifar`` at 32 px), the script builds the space's
latency table on this machine (``optuna_nars.cost.measure.build_table``: every distinct block
timed with ``torch.utils.benchmark``, batch 1, ``--threads`` threads), then times N random
architectures of the space end to end with the same timer (``build_model``, ``eval()``,
inference mode; ``time_networks``) and compares each network's measured minimum and median
with the table's sums: R-squared (of measured against the sum itself, no fitting), median and
worst relative error (goal: R-squared >= 0.95, median error <= 5%). Blocks and networks are both
timed in ``--passes`` rounds (each round over all of them), so that a burst of slowness on a
shared machine lands in one round only.

A table can hardly predict a network better than the network's own timings repeat: with rounds,
the networks' odd rounds are also compared with their even rounds (the ceiling row).

To tell the blocks' additivity from drift between building the table and timing the networks
(other load on a shared machine), the first ``--diagnose`` networks also have their blocks timed
again right after the network, and their fresh sum is compared with the measured network too.

It also reports the table with a fitted constant overhead (the network's cost outside its
blocks, e.g. the forward's Python dispatch): the median of ``measured - sum`` over the first
half of the networks, evaluated on the other half only, so the "after" numbers are held out.

Run from the repository root, on an otherwise idle machine::

    python benchmarks/latency_table.py --quick      # tiny, 100 networks, 10 x 10 runs of ~2 ms
    python benchmarks/latency_table.py              # tiny and cifar, 10 x 10 runs of ~5 ms

Results go to ``benchmarks/results/latency_table.json`` (the tables themselves to
``benchmarks/results/latency_tables/``, measured afresh on every run).
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
from optuna_nars.cost.measure import (  # noqa: E402
    block_module,
    build_table,
    time_module,
    time_networks,
)
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
    """The table's sums against the networks; held out, with a fitted constant overhead and
    with a fitted scale and overhead (``--calibrate``'s fit, on the first half); and (first
    ``len(fresh)`` networks) the blocks re-timed beside them."""
    n, k = len(measured), len(fresh)
    half = n // 2
    overhead = float(np.median(measured[:half] - predicted[:half]))
    scale, offset = np.polyfit(predicted[:half], measured[:half], 1)
    held_out = slice(half, None)
    return {
        "before": errors(measured, predicted),
        "before_held_out": errors(measured[held_out], predicted[held_out]),
        "fitted_overhead_ms": overhead,
        "after_held_out": errors(measured[held_out], predicted[held_out] + overhead),
        "fitted_scale": float(scale), "fitted_scale_overhead_ms": float(offset),
        "scaled_held_out": errors(measured[held_out], scale * predicted[held_out] + offset),
        "diagnose_table": errors(measured[:k], predicted[:k]) if k > 2 else None,
        "diagnose_fresh": errors(measured[:k], fresh) if k > 2 else None,
        "measured_ms": measured.tolist(), "predicted_ms": predicted.tolist(),
        "fresh_ms": fresh.tolist(),
    }


def timed_rounds(space: SearchSpace, path: Path, values: np.ndarray, timer: Any,
                 threads: int, passes: int, sequential: bool, info: dict[str, Any]
                 ) -> tuple[LatencyTable, dict[str, np.ndarray], float]:
    """The table (``passes`` rounds) and the networks' timings (as many rounds), and the
    table's build time. Interleaved (the default), round r times every block, then every
    network, so that both see the machine in the same states; ``sequential``, all the
    table's rounds come first (as a table built once and used later)."""
    rounds: list[dict[str, np.ndarray]] = []
    table_s = 0.0
    for r in range(1, passes + 1):
        if not sequential or r == 1:  # sequential: every round of the table at once
            start = time.perf_counter()
            table = build_table(space, path, threads=threads, timer=timer,
                                passes=passes if sequential else r, progress=False, info=info)
            table_s += time.perf_counter() - start
        rounds.append(time_networks(space, values, timer, passes=1))
        print(f"  round {r}/{passes} done", flush=True)
    return table, {"all": combined(rounds), "odd": combined(rounds[0::2]),
                   "even": combined(rounds[1::2])}, table_s


def combined(rounds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The networks' statistics over several rounds: minimum of minima, median of medians."""
    return {"min_ms": np.min([m["min_ms"] for m in rounds], axis=0),
            "median_ms": np.median([m["median_ms"] for m in rounds], axis=0)}


def run_space(name: str, n: int, seed: int, threads: int, repeats: int,
              run_ms: float, passes: int, diagnose: int, sequential: bool) -> dict[str, Any]:
    space = getattr(SearchSpace, name)()
    timer = time_module(threads, repeats=repeats, run_ms=run_ms)
    TABLES.mkdir(parents=True, exist_ok=True)
    path = TABLES / f"{name}.json"
    path.unlink(missing_ok=True)  # the table's rounds belong to this run's networks' rounds
    values = space.sample_values(n, seed=seed, method="random")
    archs = [str(c.architecture) for c in space.decode(values)]
    print(f"{name}: {passes} rounds over the blocks and {n} networks "
          f"({'sequential' if sequential else 'interleaved'}) ...", flush=True)
    table, timings, table_s = timed_rounds(
        space, path, values, timer, threads, passes, sequential,
        {"space": name, "timer": [repeats, run_ms, passes, list(STATS)]})
    fresh = fresh_sums(space, values[:min(diagnose, n)], timer)
    out: dict[str, Any] = {"space": name, "n_blocks": len(table), "table_s": table_s,
                           "n_networks": n, "diagnosed": min(diagnose, n), "archs": archs}
    for stat in STATS:
        summed = LatencyTable.from_dict({**table.to_dict(), "statistic": stat})
        out[stat] = compare(timings["all"][stat], summed.latency_ms(space, values),
                            fresh[stat])
        if passes > 1:  # the ceiling: the networks' odd rounds predicting their even rounds
            out[stat]["repeatability"] = errors(timings["even"][stat], timings["odd"][stat])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "tiny only, shorter timings (a few minutes)")
    parser.add_argument("--spaces", nargs="+", choices=("tiny", "cifar"), default=None)
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per block/network")
    parser.add_argument("--run-ms", type=float, default=None, help="length of one timed run")
    parser.add_argument("--passes", type=int, default=10,
                        help="rounds over all blocks (and over all networks)")
    parser.add_argument("--sequential", action="store_true",
                        help="time the networks after all of the table's rounds, not "
                        "interleaved with them")
    parser.add_argument("--diagnose", type=int, default=20,
                        help="networks whose blocks are timed again right after them")
    args = parse_run_args(parser, argv, output=RESULTS)
    spaces = args.spaces or (["tiny"] if args.quick else ["tiny", "cifar"])
    repeats = args.repeats or 10
    run_ms = args.run_ms or (2.0 if args.quick else 5.0)
    started = time.perf_counter()
    results = [run_space(s, args.networks, args.seed, args.threads, repeats, run_ms,
                         args.passes, args.diagnose, args.sequential) for s in spaces]
    rows = []
    for r in results:
        k = r["diagnosed"]
        for stat in STATS:
            c = r[stat]
            for label, key in (("table sum, all", "before"),
                               ("table sum, held-out half", "before_held_out"),
                               (f"+ fitted overhead {c['fitted_overhead_ms']:+.4f} ms, "
                                "held-out half", "after_held_out"),
                               (f"x fitted scale {c['fitted_scale']:.3f} "
                                f"{c['fitted_scale_overhead_ms']:+.4f} ms, held-out half",
                                "scaled_held_out"),
                               (f"table sum, first {k}", "diagnose_table"),
                               (f"blocks re-timed beside the network, first {k}",
                                "diagnose_fresh"),
                               ("ceiling: the networks' odd rounds predicting their even "
                                "rounds", "repeatability")):
                e = c.get(key)
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
                           "passes": args.passes, "sequential": args.sequential,
                           "batch": 1},
              "wall_s": time.perf_counter() - started, "results": results}
    save_results(args.output, "latency_table", args, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
