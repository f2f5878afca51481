"""Per-trial overhead of NARSSampler against Optuna's TPESampler and GPSampler.

Three studies (in-memory storage, maximise) run on the same instant objective over
``SearchSpace.tiny()``: a smooth synthetic function of the candidate's FLOPs (from the cost model)
and its recipe's learning rate, peaking at 2 MFLOPs and lr 0.05. Each sampler is wrapped in a
delegating sampler that times ``infer_relative_search_space`` + ``sample_relative`` +
``sample_independent`` + ``before_trial`` + ``after_trial``, summed per trial: only the sampler is
measured, not the objective or the storage outside it. The studies advance one trial at a time in
turn (NARS, TPE, GP, NARS, TPE, GP, ...) so that load from other processes hits all of them alike.

Reported: the median (and mean, which includes the predictor refits that land on one trial in
``batch_size``) overhead per trial overall and in windows around 100 / 500 / 1000 finished trials
(trials 90-110, 490-510, 990-1010), the ratios NARS/TPE and NARS/GP there, and every NARS
predictor refit's wall time against its number of labels, with the slope of log(time) on
log(labels) (1 = linear growth), and which Kendall tau each refit computed (the free
prequential one once the fit set holds 10 trials proposed with a prediction, the 5-fold
cross-validated one before). NARSSampler runs with its defaults (``NARSSampler(space,
seed=0)``); its refits, pretraining and genetic searches are read from its own per-process record,
``NARSSampler.timings``.

GPSampler costs seconds per trial on this 24-parameter space (and falls back to sequential
L-BFGS-B without the ``greenlet`` package), so it is capped (``--gp-trials``; quick 20, full 120)
and the output says so; windows past its cap show no GP numbers.

``--no-proxies`` gives NARSSampler the space's distributions alone (``NARSSampler(
space.distributions(), seed=0)``), as a generic Optuna space: no free metric, nothing to
pretrain, so its fits are Gaussian processes up to ``gp_labels`` (200) labels, then an ensemble
fitted from scratch; there is no refit breakdown (it rebuilds the pretrained ensemble).

Run from the repository root::

    python benchmarks/sampler_overhead.py --quick   # 150 trials (GP 20), about 2 minutes
    python benchmarks/sampler_overhead.py           # 1000 trials (GP 120), about 20 minutes
    python benchmarks/sampler_overhead.py --samplers nars tpe --no-proxies

Results go to ``benchmarks/results/sampler_overhead.json`` (``--no-proxies``:
``sampler_overhead_no_proxies.json``).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS_DIR, benchmark_parser, markdown_table, parse_run_args, save_results  # noqa: E402

from optuna_nars.cost import count_flops  # noqa: E402
from optuna_nars.labels import trial_labels  # noqa: E402
from optuna_nars.predictor import (  # noqa: E402
    NARSPredictor,
    encode_split,
    prequential_kendall_tau,
    proxy_targets,
)
from optuna_nars.samplers import PREDICTED_KEY, NARSSampler  # noqa: E402
from optuna_nars.space import SearchSpace  # noqa: E402

RESULTS = RESULTS_DIR / "sampler_overhead.json"
RESULTS_NO_PROXIES = RESULTS_DIR / "sampler_overhead_no_proxies.json"
WINDOW_CENTRES = (100, 500, 1000)
HALF_WINDOW = 10


class TimedSampler(BaseSampler):
    """Delegates to ``inner`` and adds up the wall time of its calls per trial number."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner
        self.seconds: dict[int, float] = defaultdict(float)

    def _timed(self, number: int, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds[number] += time.perf_counter() - start

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._timed(trial.number, self.inner.infer_relative_search_space, study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._timed(trial.number, self.inner.sample_relative, study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._timed(trial.number, self.inner.sample_independent, study, trial,
                           param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._timed(trial.number, self.inner.before_trial, study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._timed(trial.number, self.inner.after_trial, study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


# What NARSSampler(space, seed=seed) uses with its defaults, rebuilt by refit_breakdown.
POOL_SIZE = 20_000
N_PRETRAIN = 2_000


def timing_records(
    nars: NARSSampler,
) -> tuple[list[dict[str, float]], float | None, list[dict[str, float]]]:
    """``(refits, pretrain_s, evolve)`` from ``nars.timings``: each refit's and each genetic
    search's labels and seconds, and the (last) encoder pretraining's seconds."""
    records: dict[str, list[dict[str, float]]] = defaultdict(list)
    for t in nars.timings:
        records[t.step].append({"n_labels": t.n_labels, "seconds": t.seconds})
    pretrain_s = records["pretrain"][-1]["seconds"] if records["pretrain"] else None
    return records["refit"], pretrain_s, records["genetic_search"]


def refit_breakdown(space: SearchSpace, study: Study, seed: int) -> list[dict[str, float]]:
    """Re-run the parts of a refit (fit, pool prediction, and both Kendall taus: the
    cross-validated one of the first refits, the prequential one of the others) apart.

    Rebuilds what ``NARSSampler(space, seed=seed)`` fits from public parts: the labelled
    trials' rows, a predictor pretrained on the cost model of the same random architectures (so
    :meth:`NARSPredictor.pretrain`'s cache serves it without training again) and the pool.
    """
    labels = trial_labels(study)
    numbers = sorted(n for n, y in labels.items() if math.isfinite(y))
    params = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    x = space.params_to_values([params[n] for n in numbers])
    y = np.array([labels[n] for n in numbers], dtype=float)
    by_number = {t.number: t.user_attrs.get(PREDICTED_KEY) for t in study.get_trials()}
    predicted = np.array([np.nan if by_number.get(n) is None else by_number[n]
                          for n in numbers], dtype=float)
    sample = space.sample_values(N_PRETRAIN, seed=seed + 1, method="random")
    pretrained = NARSPredictor(seed=seed).pretrain(
        encode_split(space.param_space, sample)[0], proxy_targets(space, sample)
    )
    pool = space.sample_values(POOL_SIZE, seed=seed)
    out = []
    for k in sorted({n for n in (10, 100, 300, 1000) if n <= len(numbers)}):
        predictor = pretrained.clone(seed=seed + k)
        arch_x, recipe_x = encode_split(space.param_space, x[:k])
        start = time.perf_counter()
        predictor.fit(arch_x, recipe_x, y[:k])
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        predictor.predict(*encode_split(space.param_space, pool))
        predict_s = time.perf_counter() - start
        start = time.perf_counter()
        predictor.kendall_tau_cv(arch_x, recipe_x, y[:k], k=5)
        cv_s = time.perf_counter() - start
        start = time.perf_counter()
        prequential_kendall_tau(predicted[:k], y[:k])  # all k: the sampler takes the last 50
        prequential_s = time.perf_counter() - start
        out.append({"n_labels": k, "fit_s": fit_s, "predict_pool_s": predict_s,
                    "kendall_cv_s": cv_s, "kendall_prequential_s": prequential_s,
                    "pool_size": len(pool)})
    return out


def make_objective(space: SearchSpace) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        candidate = space.suggest(trial)
        flops = count_flops(candidate.architecture, space.in_channels, space.num_classes)
        lr = candidate.recipe.lr
        return 1.0 - 0.05 * math.log(flops / 2e6) ** 2 - 0.02 * math.log(lr / 0.05) ** 2

    return objective


def window(seconds: list[float], centre: int) -> list[float]:
    """Overheads of trials ``centre - 10 .. centre + 10`` (0-based trial numbers), if all ran."""
    lo, hi = centre - HALF_WINDOW, centre + HALF_WINDOW
    return seconds[lo:hi + 1] if hi < len(seconds) else []


def log_log_slope(n: Sequence[float], seconds: Sequence[float]) -> float | None:
    if len(n) < 3 or len(set(n)) < 2:
        return None
    slope, _ = np.polyfit(np.log(np.asarray(n, float)), np.log(np.asarray(seconds, float)), 1)
    return float(slope)


def ms(x: float | None) -> str:
    return "-" if x is None else f"{1e3 * x:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "150 trials, GP 20 (~2 min)")
    parser.add_argument("--trials", type=int, default=None, help="trials (quick 150, full 1000)")
    parser.add_argument("--gp-trials", type=int, default=None,
                        help="cap on GPSampler's trials (quick 20, full 120)")
    parser.add_argument("--samplers", nargs="+", choices=("nars", "tpe", "gp"),
                        default=["nars", "tpe", "gp"])
    parser.add_argument("--no-proxies", action="store_true",
                        help="NARS on the space's distributions alone, with no free metric "
                             "to pretrain on, as a generic Optuna space (results to "
                             f"{RESULTS_NO_PROXIES.name})")
    args = parse_run_args(parser, argv, output=None, quiet_optuna=True)
    args.output = args.output or (RESULTS_NO_PROXIES if args.no_proxies else RESULTS)

    quick = args.quick
    n_trials = args.trials or (150 if quick else 1000)
    gp_cap = min(n_trials, args.gp_trials or (20 if quick else 120))
    space = SearchSpace.tiny()
    objective = make_objective(space)

    # Without free metrics nothing is pretrained: Gaussian processes up to gp_labels labels.
    nars = NARSSampler(space.distributions() if args.no_proxies else space, seed=args.seed)
    inner: dict[str, BaseSampler] = {
        "nars": nars,
        "tpe": optuna.samplers.TPESampler(seed=args.seed),
        "gp": optuna.samplers.GPSampler(seed=args.seed),
    }
    caps = {"nars": n_trials, "tpe": n_trials, "gp": gp_cap}
    names = list(args.samplers)
    timed = {name: TimedSampler(inner[name]) for name in names}
    studies = {
        name: optuna.create_study(direction="maximize", sampler=timed[name],
                                  storage=optuna.storages.InMemoryStorage())
        for name in names
    }
    started = time.perf_counter()
    for i in range(n_trials):
        for name in names:  # interleaved: one trial of each in turn
            if i < caps[name]:
                studies[name].optimize(objective, n_trials=1)
        if (i + 1) % 50 == 0:
            print(f"{i + 1} trials ({time.perf_counter() - started:.0f} s)", flush=True)

    per_trial = {
        name: [timed[name].seconds[t] for t in range(min(n_trials, caps[name]))]
        for name in names
    }
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        s = per_trial[name]
        summary[name] = {
            "n_trials": len(s),
            "median_s": statistics.median(s),
            "mean_s": statistics.fmean(s),
            "total_s": sum(s),
            "best_value": studies[name].best_value,
            "windows": {
                str(c): {"median_s": statistics.median(w), "mean_s": statistics.fmean(w)}
                for c in WINDOW_CENTRES if (w := window(s, c))
            },
        }

    def get(name: str, key: str, centre: str | None = None) -> float | None:
        if name not in summary:
            return None
        if centre is None:
            part = summary[name]
        elif centre == "first_gp_trials":
            part = summary[name].get(centre)
        else:
            part = summary[name]["windows"].get(centre)
        return None if part is None else part[key]

    if "gp" in names and gp_cap < n_trials:
        # Every sampler over GPSampler's range, so that GP has one comparison at least.
        for name in names:
            s = per_trial[name][:gp_cap]
            summary[name]["first_gp_trials"] = {
                "median_s": statistics.median(s), "mean_s": statistics.fmean(s),
            }

    rows = []
    windows: list[tuple[str, str | None]] = [("all trials", None)]
    if "gp" in names and gp_cap < n_trials:
        windows.append((f"trials 0-{gp_cap - 1} (GP's range)", "first_gp_trials"))
    windows += [(f"trials {c - HALF_WINDOW}-{c + HALF_WINDOW}", str(c)) for c in WINDOW_CENTRES
                if c + HALF_WINDOW < n_trials]
    for label, centre in windows:
        for stat, key in (("median", "median_s"), ("mean", "mean_s")):
            n, t, g = (get(x, key, centre) for x in ("nars", "tpe", "gp"))
            rows.append([label, stat, ms(n), ms(t), ms(g), ratio(n, t), ratio(n, g)])
    print(f"\nSampler overhead per trial (ms), SearchSpace.tiny() "
          f"({len(space.names)} parameters), {n_trials} trials"
          + (f"; GPSampler capped at {gp_cap} trials" if "gp" in names and gp_cap < n_trials
             else "") + ":\n")
    print(markdown_table(
        ["window", "statistic", "NARS", "TPE", "GP", "NARS/TPE", "NARS/GP"], rows,
    ))
    if "gp" in names and gp_cap < n_trials:
        print(f"\nGPSampler ran only {gp_cap} of {n_trials} trials (too slow to go further in "
              "this benchmark); '-' marks windows it did not reach.")

    refit_info: dict[str, Any] = {}
    if "nars" in names:
        refits, pretrain_s, evolve_s = timing_records(nars)
        n = [r["n_labels"] for r in refits]
        sec = [r["seconds"] for r in refits]
        slope_all = log_log_slope(n, sec)
        big = [(a, b) for a, b in zip(n, sec, strict=True) if a >= 100]
        slope_big = log_log_slope([a for a, _ in big], [b for _, b in big])
        refit_info = {
            "refits": refits,
            "pretrain_s": pretrain_s,
            "evolve": evolve_s,
            "log_log_slope": slope_all,
            "log_log_slope_n_ge_100": slope_big,
        }
        shown = refits if len(refits) <= 12 else [
            refits[i] for i in np.unique(np.linspace(0, len(refits) - 1, 12).astype(int))
        ]
        evolve = {e["n_labels"]: e["seconds"] for e in evolve_s}
        print(f"\nNARS predictor refits ({len(refits)}; encoder pretraining once: "
              f"{pretrain_s or 0.0:.2f} s, not included):\n")
        print(markdown_table(
            ["labels", "refit (s)", "genetic search (s)"],
            [[r["n_labels"], f"{r['seconds']:.3f}",
              f"{evolve[r['n_labels']]:.3f}" if r["n_labels"] in evolve else "-"]
             for r in shown],
        ))
        text = "-" if slope_all is None else f"{slope_all:.2f}"
        text_big = "-" if slope_big is None else f"{slope_big:.2f}"
        print(f"\nlog-log slope of refit time on labels: {text} over all refits, {text_big} over "
              "refits with >= 100 labels (1.0 = linear).")
        if not args.no_proxies:  # refit_breakdown rebuilds the pretrained ensemble
            breakdown = refit_breakdown(space, studies["nars"], args.seed)
            refit_info["breakdown"] = breakdown
            print("\nWhere a refit's time goes (one refit re-run at several label counts):\n")
            print(markdown_table(
                ["labels", "fit (s)", "predict pool (s)", "kendall_tau_cv k=5 (s)",
                 "prequential tau (s)"],
                [[b["n_labels"], f"{b['fit_s']:.3f}", f"{b['predict_pool_s']:.3f}",
                  f"{b['kendall_cv_s']:.3f}", f"{b['kendall_prequential_s']:.5f}"]
                 for b in breakdown],
            ))

    record = {
        "settings": {"n_trials": n_trials, "gp_trials": gp_cap, "seed": args.seed,
                     "space": "SearchSpace.tiny()" + (" (NARS: its distributions, no free "
                                                      "metric)" if args.no_proxies else ""),
                     "n_params": len(space.names),
                     "storage": "InMemoryStorage", "samplers": names},
        "wall_s": time.perf_counter() - started,
        "summary": summary,
        "nars": refit_info,
        "per_trial_seconds": per_trial,
    }
    save_results(args.output, "sampler_overhead", args, record, git=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
