"""Learning-rate ranges: one shared range against per-optimizer ranges, on real training.

Random candidates of the Fashion-MNIST suite problem (``SearchSpace.tiny()``, 2,000 images,
2 epochs; the suite's objective and training seeds) are trained in two versions of the space
that differ only in the learning rate: the shared range ``RecipeSpec()`` gave every optimizer
before 2026-12-03 (1e-3 to 0.5), and the presets' per-optimizer ranges (``BASE_LR`` times 1/4
to 4). Both studies draw their candidates with ``optuna.samplers.RandomSampler`` from the same
seed and ignore the FLOPs budget. Reported per optimizer: the trials, their mean validation
accuracy, and the share that failed to train (accuracy below ``--fail-below``, chance being
0.1); and the same over all trials.

Run from the repository root::

    python benchmarks/lr_ranges.py            # 40 trials per space
    python benchmarks/lr_ranges.py --quick    # 12 trials per space

Results go to ``benchmarks/results/lr_ranges.json``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    RESULTS_DIR,
    benchmark_parser,
    fmt,
    markdown_table,
    parse_run_args,
    save_results,
)
from benchmarks.suite.fashion_mnist import FashionMNISTProblem  # noqa: E402
from optuna_nars.space import RecipeSpec  # noqa: E402

SPACES = ("shared", "per-optimizer")


def _problem(version: str) -> FashionMNISTProblem:
    problem = FashionMNISTProblem()
    if version == "shared":
        problem.space = dataclasses.replace(problem.space, recipe=RecipeSpec())
        problem.distributions = problem.space.distributions()
    return problem


def run_space(version: str, n_trials: int, seed: int, threads: int) -> list[dict[str, Any]]:
    """Train ``n_trials`` random candidates of one version of the space; each trial's
    optimizer, learning rate and validation accuracy."""
    import torch

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    problem = _problem(version)
    rng = np.random.default_rng(seed)  # the training seeds, drawn as the suite draws them

    def objective(trial: optuna.Trial) -> float:
        for name, distribution in problem.distributions.items():
            trial._suggest(name, distribution)
        return problem.evaluate(trial, rng)

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner(),
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    out = []
    for t in study.trials:
        recipe = problem.space.from_params(t.params).recipe
        out.append({"optimizer": recipe.optimizer, "lr": recipe.lr, "accuracy": t.value})
    return out


def summarise(trials: Sequence[dict[str, Any]], fail_below: float) -> dict[str, Any]:
    """Per optimizer and over all: trials, mean accuracy, share below ``fail_below``."""
    groups: dict[str, list[float]] = {"all": []}
    for t in trials:
        value = t["accuracy"] if t["accuracy"] is not None else 0.0
        groups.setdefault(t["optimizer"], []).append(value)
        groups["all"].append(value)
    return {name: {"trials": len(v), "mean_accuracy": float(np.mean(v)),
                   "failed": float(np.mean(np.asarray(v) < fail_below))}
            for name, v in groups.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser(__doc__, "12 trials per space")
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--fail-below", type=float, default=0.3)
    args = parse_run_args(parser, argv, output=RESULTS_DIR / "lr_ranges.json", quiet_optuna=True)
    n = 12 if args.quick else args.n_trials
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = {v: pool.submit(run_space, v, n, args.seed, args.threads) for v in SPACES}
        trials = {v: f.result() for v, f in futures.items()}
    summary = {v: summarise(trials[v], args.fail_below) for v in SPACES}
    rows = []
    for v in SPACES:
        for name, s in summary[v].items():
            rows.append([v, name, s["trials"], fmt(s["mean_accuracy"]), fmt(s["failed"], ".2f")])
    print(markdown_table(["space", "optimizer", "trials", "mean accuracy",
                          f"share below {args.fail_below}"], rows))
    save_results(args.output, "lr_ranges", args,
                 {"n_trials": n, "fail_below": args.fail_below, "summary": summary,
                  "trials": trials, "wall_s": time.perf_counter() - start}, git=True)


if __name__ == "__main__":
    main()
