"""Speed and exactness of the analytic cost model (``optuna_nars.cost``).

Measures, for each preset search space (tiny, cifar, fbnetv3):

* **Filtering speed**: the wall time of ``space_costs(space, values)`` plus a FLOPs/params budget
  filter on a pool of 20,000 scrambled-Sobol candidates (median of N repetitions). The baseline
  is what one would do without a cost model: build every candidate with ``build_model`` and count
  its FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` (one forward pass of one image) and
  its parameters from the module. The baseline runs on a small sample per repetition, interleaved
  with the analytic repetitions (ABAB), and its median per-candidate time is extrapolated to the
  whole pool; the table reports the ratio baseline / analytic.
* **Agreement**: on K random architectures per preset, the analytic FLOPs (``count_flops``) against
  ``FlopCounterMode``'s total / 2 (it counts a multiply-add as 2 FLOPs), the analytic parameter
  count against the built module's, and the vectorised ``space_costs`` against the single-
  architecture ``count_flops`` / ``count_params``.

Run from the repository root::

    python benchmarks/cost_model.py --quick   # about a minute
    python benchmarks/cost_model.py           # more repetitions and architectures

Results go to ``benchmarks/results/cost_model.json``.
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
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from _common import RESULTS_DIR, benchmark_parser, markdown_table, parse_run_args, save_results  # noqa: E402

from optuna_nars.candidate import Architecture  # noqa: E402
from optuna_nars.cost import count_flops, count_params, space_costs  # noqa: E402
from optuna_nars.models import build_model  # noqa: E402
from optuna_nars.space import SearchSpace  # noqa: E402

RESULTS = RESULTS_DIR / "cost_model.json"
PRESETS = ("tiny", "cifar", "fbnetv3")


def analytic_filter(
    space: SearchSpace, values: np.ndarray, max_flops: float, max_params: float
) -> tuple[float, int]:
    """Seconds for costing and filtering the whole pool, and how many candidates pass."""
    start = time.perf_counter()
    costs = space_costs(space, values)
    feasible = values[(costs["flops"] <= max_flops) & (costs["params"] <= max_params)]
    return time.perf_counter() - start, len(feasible)


def torch_costs(arch: Architecture, space: SearchSpace) -> tuple[int, int]:
    """(multiply-adds, parameters) of the built module, measured by PyTorch."""
    model = build_model(arch, space.num_classes, space.in_channels).eval()
    x = torch.zeros(1, space.in_channels, arch.resolution, arch.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2, sum(p.numel() for p in model.parameters())


def baseline_filter(
    space: SearchSpace, values: np.ndarray, max_flops: float, max_params: float
) -> float:
    """Seconds per candidate to build, count and filter with FlopCounterMode."""
    start = time.perf_counter()
    keep = 0
    for candidate in space.decode(values):
        flops, params = torch_costs(candidate.architecture, space)
        keep += int(flops <= max_flops and params <= max_params)
    return (time.perf_counter() - start) / len(values)


def agreement(space: SearchSpace, values: np.ndarray) -> dict[str, Any]:
    vector = space_costs(space, values)
    rows = []
    for i, candidate in enumerate(space.decode(values)):
        arch = candidate.architecture
        flops = count_flops(arch, space.in_channels, space.num_classes)
        params = count_params(arch, space.in_channels, space.num_classes)
        t_flops, t_params = torch_costs(arch, space)
        rows.append({
            "arch": str(arch),
            "flops": flops,
            "params": params,
            "torch_flops": int(t_flops),
            "torch_params": int(t_params),
            "space_costs_flops": int(vector["flops"][i]),
            "space_costs_params": int(vector["params"][i]),
        })
    rel = [abs(r["flops"] - r["torch_flops"]) / r["torch_flops"] for r in rows]
    return {
        "k": len(rows),
        "max_rel_flops_error": max(rel),
        "exact_flops_matches": sum(r["flops"] == r["torch_flops"] for r in rows),
        "exact_param_matches": sum(r["params"] == r["torch_params"] for r in rows),
        "vectorised_matches": sum(
            r["space_costs_flops"] == r["flops"] and r["space_costs_params"] == r["params"]
            for r in rows
        ),
        "rows": rows,
    }


def run_preset(
    name: str, *, pool_size: int, reps: int, baseline_per_rep: int, k: int, seed: int
) -> dict[str, Any]:
    space: SearchSpace = getattr(SearchSpace, name)()
    values = space.sample_values(pool_size, seed=seed)
    costs = space_costs(space, values)
    # Budget: the pool medians, so about a third to a half of the pool passes both.
    max_flops = float(np.median(costs["flops"]))
    max_params = float(np.median(costs["params"]))
    baseline_values = space.sample_values(reps * baseline_per_rep, seed=seed + 1, method="random")

    analytic_filter(space, values, max_flops, max_params)  # warm-up (imports, caches)
    baseline_filter(space, baseline_values[:1], max_flops, max_params)
    analytic_s: list[float] = []
    baseline_s: list[float] = []
    n_feasible = 0
    for rep in range(reps):  # ABAB: analytic, baseline, analytic, baseline, ...
        seconds, n_feasible = analytic_filter(space, values, max_flops, max_params)
        analytic_s.append(seconds)
        chunk = baseline_values[rep * baseline_per_rep:(rep + 1) * baseline_per_rep]
        baseline_s.append(baseline_filter(space, chunk, max_flops, max_params))
    analytic = statistics.median(analytic_s)
    per_candidate = statistics.median(baseline_s)
    extrapolated = per_candidate * pool_size
    agree = agreement(space, space.sample_values(k, seed=seed + 2, method="random"))
    return {
        "preset": name,
        "n_params": len(space.names),
        "pool_size": pool_size,
        "budget": {"flops": max_flops, "params": max_params},
        "n_feasible": n_feasible,
        "analytic_seconds": analytic_s,
        "analytic_median_s": analytic,
        "baseline_seconds_per_candidate": baseline_s,
        "baseline_candidates_per_rep": baseline_per_rep,
        "baseline_median_s_per_candidate": per_candidate,
        "baseline_extrapolated_s": extrapolated,
        "speedup": extrapolated / analytic,
        "agreement": agree,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "few repetitions (~1 min)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (quick 5, full 15)")
    parser.add_argument("--pool-size", type=int, default=20_000, help="candidates per pool")
    parser.add_argument("--k", type=int, default=None,
                        help="architectures per preset for the agreement check "
                             "(quick 20/20/5, full 200/100/30 for tiny/cifar/fbnetv3)")
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=list(PRESETS))
    args = parse_run_args(parser, argv, output=RESULTS)

    quick = args.quick
    reps = args.reps or (5 if quick else 15)
    ks = {"tiny": 20, "cifar": 20, "fbnetv3": 5} if quick else \
        {"tiny": 200, "cifar": 100, "fbnetv3": 30}
    baseline_per_rep = {"tiny": 4, "cifar": 4, "fbnetv3": 1} if quick else \
        {"tiny": 8, "cifar": 8, "fbnetv3": 2}
    started = time.perf_counter()
    results = []
    for name in args.presets:
        print(f"{name}: {reps} repetitions ...", flush=True)
        results.append(run_preset(
            name, pool_size=args.pool_size, reps=reps, baseline_per_rep=baseline_per_rep[name],
            k=args.k or ks[name], seed=args.seed,
        ))

    print()
    print(f"Filtering {args.pool_size:,} candidates (space_costs + budget filter), "
          f"median of {reps} repetitions:\n")
    print(markdown_table(
        ["preset", "params", "analytic (ms)", "FlopCounterMode per candidate (ms)",
         f"FlopCounterMode x {args.pool_size:,} (s, extrapolated)", "speed-up", "feasible"],
        [[r["preset"], r["n_params"], f"{1e3 * r['analytic_median_s']:.1f}",
          f"{1e3 * r['baseline_median_s_per_candidate']:.1f}",
          f"{r['baseline_extrapolated_s']:.0f}", f"{r['speedup']:,.0f}x",
          f"{r['n_feasible']:,}"] for r in results],
    ))
    print("\nAgreement with PyTorch (FlopCounterMode / 2, module parameter count):\n")
    print(markdown_table(
        ["preset", "K", "max rel. FLOPs error", "exact FLOPs", "exact params",
         "space_costs == count_*"],
        [[r["preset"], r["agreement"]["k"], f"{r['agreement']['max_rel_flops_error']:.2e}",
          f"{r['agreement']['exact_flops_matches']}/{r['agreement']['k']}",
          f"{r['agreement']['exact_param_matches']}/{r['agreement']['k']}",
          f"{r['agreement']['vectorised_matches']}/{r['agreement']['k']}"] for r in results],
    ))
    record = {
        "settings": {"reps": reps, "pool_size": args.pool_size, "seed": args.seed,
                     "baseline_candidates_per_rep": baseline_per_rep},
        "wall_s": time.perf_counter() - started,
        "results": results,
    }
    save_results(args.output, "cost_model", args, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
