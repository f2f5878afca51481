"""NARSSampler with several worker processes on one RDB study, against one worker.

Each configuration creates a fresh study on an RDB storage (PostgreSQL by default: ``--storage``,
or the ``OPTUNA_NARS_TEST_POSTGRES_URL`` environment variable) and starts W worker processes that
share it, each running ``NARSSampler(SearchSpace.tiny(), seed=0)`` with its defaults on a cheap
objective (the synthetic accuracy of the test suite plus ``--sleep`` seconds, standing in for
training) until the study has its ``--trials`` trials between them. One worker (the baseline)
and W workers run in the same invocation, one after the other, on the same trial budget.

Per configuration: trials per minute (trials / wall time from the first worker's start to the
last one's end), the wall time of ``study.ask()`` + ``SearchSpace.suggest`` per trial (p50, p95),
the sampler's share of the workers' time (every sampler call timed by the same delegating
sampler as ``sampler_overhead.py``, summed over workers, over the workers' summed wall times),
the predictor refits: in total, per label count fitted (``NARSSampler.timings`` of each
worker), and refits per label set (1.0 when every label set is fitted once among all workers);
the encoder pretrainings and the reads of an encoder another worker published (one pretraining
per study when the encoder is shared); and the best value found.
Targets: the sampler's share under 30% with W workers, and the W-worker ask p95 under 3x the
one-worker p95.

Run from the repository root (W worker processes need the database server)::

    python benchmarks/multi_worker.py --quick   # 100 trials, 0.25 s each; a few minutes
    python benchmarks/multi_worker.py           # 300 trials, 0.5 s each

``--label`` names the run inside the results file (e.g. ``before`` / ``after`` a change; the
mode is appended): runs under other names already in the file are kept. Results go to
``benchmarks/results/multi_worker.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (  # noqa: E402
    RESULTS_DIR,
    benchmark_parser,
    command_line,
    git_state,
    markdown_table,
    parse_run_args,
    save_results,
    utc_now,
)
from sampler_overhead import TimedSampler  # noqa: E402

from optuna_nars.cost import space_costs  # noqa: E402
from optuna_nars.samplers import NARSSampler  # noqa: E402
from optuna_nars.space import SearchSpace  # noqa: E402

RESULTS = RESULTS_DIR / "multi_worker.json"
URL_ENV = "OPTUNA_NARS_TEST_POSTGRES_URL"


def synthetic_accuracy(space: SearchSpace, params: dict[str, Any]) -> float:
    """The test suite's smooth function: bigger models and lr near 0.03 are better."""
    values = space.params_to_values([params])
    flops = float(space_costs(space, values)["flops"][0])
    lr = space.from_params(params).recipe.lr
    return 0.5 + 0.05 * np.log(flops) - 0.05 * (np.log10(lr) + 1.5) ** 2


def run_worker(storage: str, study_name: str, n_trials: int, sleep: float, seed: int) -> None:
    """One worker process: ``n_trials`` ask/tell rounds; prints its measurements as JSON."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.tiny()
    nars = NARSSampler(space, seed=seed)
    timed = TimedSampler(nars)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=timed)
    asks: list[float] = []
    started, start_clock = time.perf_counter(), time.time()
    for _ in range(n_trials):
        t0 = time.perf_counter()
        trial = study.ask()
        space.suggest(trial)
        asks.append(time.perf_counter() - t0)
        value = synthetic_accuracy(space, trial.params)
        time.sleep(sleep)
        study.tell(trial, value)
    out = {
        "start": start_clock,
        "end": time.time(),
        "wall_s": time.perf_counter() - started,
        "ask_s": asks,
        "sampler_s": sum(timed.seconds.values()),
        "refits": [t.n_labels for t in nars.timings if t.step == "refit"],
        "refit_s": sum(t.seconds for t in nars.timings if t.step == "refit"),
        "pretrain_s": sum(t.seconds for t in nars.timings if t.step == "pretrain"),
        "pretrains": sum(t.step == "pretrain" for t in nars.timings),
        "encoder_reads": sum(t.step == "shared_encoder" for t in nars.timings),
        "genetic_searches": sum(t.step == "genetic_search" for t in nars.timings),
    }
    print(json.dumps(out), flush=True)


def run_config(args: Any, n_workers: int) -> dict[str, Any]:
    """Start ``n_workers`` processes on a fresh study and summarise what they report."""
    name = f"multi-worker-{n_workers}-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=args.storage, direction="maximize")
    shares = [args.trials // n_workers + (i < args.trials % n_workers) for i in range(n_workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", name, "--storage", args.storage,
             "--worker-trials", str(k), "--sleep", str(args.sleep), "--seed", str(args.seed)],
            stdout=subprocess.PIPE, text=True,
        )
        for k in shares
    ]
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=args.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"a worker exited with code {proc.returncode}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    best = optuna.load_study(study_name=name, storage=args.storage).best_value
    return {**summarise(reports, n_workers, args.trials), "best_value": best}


def summarise(reports: list[dict[str, Any]], n_workers: int, n_trials: int) -> dict[str, Any]:
    """Trials/min, ask percentiles, sampler share and refits of one configuration."""
    asks = [a for r in reports for a in r["ask_s"]]
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    refits = Counter(n for r in reports for n in r["refits"])
    return {
        "workers": n_workers,
        "trials": n_trials,
        "wall_s": wall,
        "trials_per_min": 60.0 * n_trials / wall,
        "ask_p50_s": float(np.percentile(asks, 50)),
        "ask_p95_s": float(np.percentile(asks, 95)),
        "ask_max_s": max(asks),
        "sampler_share": sum(r["sampler_s"] for r in reports) / sum(r["wall_s"] for r in reports),
        "refits": sum(refits.values()),
        "label_sets": len(refits),
        "refits_per_label_set": sum(refits.values()) / max(1, len(refits)),
        "refits_by_labels": {str(k): refits[k] for k in sorted(refits)},
        "refit_s": sum(r["refit_s"] for r in reports),
        "pretrain_s": sum(r.get("pretrain_s", 0.0) for r in reports),
        "pretrains": sum(r.get("pretrains", 0) for r in reports),
        "encoder_reads": sum(r.get("encoder_reads", 0) for r in reports),
        "genetic_searches": sum(r["genetic_searches"] for r in reports),
        "per_worker": [{k: v for k, v in r.items() if k != "ask_s"} for r in reports],
    }


def table(configs: Sequence[dict[str, Any]]) -> str:
    rows = [
        [c["workers"], c["trials"], f"{c['trials_per_min']:.0f}", f"{c['ask_p50_s']:.2f}",
         f"{c['ask_p95_s']:.2f}", f"{100 * c['sampler_share']:.0f}%", c["refits"],
         c["label_sets"], f"{c['refits_per_label_set']:.2f}", c.get("pretrains", "-"),
         c.get("encoder_reads", "-")]
        for c in configs
    ]
    return markdown_table(
        ["workers", "trials", "trials/min", "ask p50 s", "ask p95 s", "sampler share",
         "refits", "label sets", "refits / label set", "pretrainings", "encoder reads"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "100 trials of 0.25 s (a few minutes)")
    parser.add_argument("--storage", default=os.environ.get(URL_ENV),
                        help=f"RDB URL (default: ${URL_ENV})")
    parser.add_argument("--workers", type=int, default=8, help="worker processes (default 8)")
    parser.add_argument("--trials", type=int, default=None, help="trials (quick 100, full 300)")
    parser.add_argument("--sleep", type=float, default=None,
                        help="seconds each trial sleeps (quick 0.25, full 0.5)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per worker")
    parser.add_argument("--label", default="after", help="name of this run in the results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-trials", type=int, help=argparse.SUPPRESS)
    args = parse_run_args(parser, argv, output=RESULTS, quiet_optuna=True)
    if not args.storage:
        parser.error(f"--storage is required (or set ${URL_ENV})")
    args.trials = args.trials or (100 if args.quick else 300)
    args.sleep = args.sleep if args.sleep is not None else (0.25 if args.quick else 0.5)
    if args.worker:
        run_worker(args.storage, args.worker, args.worker_trials, args.sleep, args.seed)
        return 0

    started = time.perf_counter()
    configs = []
    for n_workers in (1, args.workers):
        print(f"{n_workers} worker(s), {args.trials} trials ...", flush=True)
        configs.append(run_config(args, n_workers))
        print(table(configs[-1:]), flush=True)
    base, multi = configs
    mode = "quick" if args.quick else "full"
    run = {
        "command": command_line(),
        "date": utc_now(),
        "mode": mode,
        "git": git_state(),
        "settings": {"trials": args.trials, "sleep_s": args.sleep, "workers": args.workers,
                     "storage": args.storage.split("://")[0],
                     "sampler": f"NARSSampler(SearchSpace.tiny(), seed={args.seed})"},
        "configs": configs,
        "targets": {
            "sampler_share_under_30pct": multi["sampler_share"] < 0.30,
            "ask_p95_ratio": multi["ask_p95_s"] / base["ask_p95_s"],
            "ask_p95_under_3x": multi["ask_p95_s"] < 3 * base["ask_p95_s"],
        },
    }
    print("\n" + table(configs))
    print(f"\nask p95 {args.workers} workers / 1 worker: {run['targets']['ask_p95_ratio']:.2f}")
    runs = {}
    if args.output.exists():
        runs = json.loads(args.output.read_text()).get("runs", {})
    runs[f"{args.label}-{mode}"] = run
    save_results(args.output, "multi_worker", args,
                 {"wall_s": time.perf_counter() - started, "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
