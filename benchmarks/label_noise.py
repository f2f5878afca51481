"""How far a label can rank NARS's own proposals on the real-training problem (issue 12).

Issue 12 asks for a positive prequential Kendall tau by trial 20 on Fashion-MNIST: over trials
11-20, the predictions made before each trial ran should rank the accuracies it measured. A
label is one training run, and training is noisy. This measures how well a label ranks those
same candidates at all: NARS runs the suite's Fashion-MNIST problem (``SearchSpace.tiny()``,
2,000 images, 2 epochs, FLOPs budget; the suite's sampler settings and evaluation noise) for 20
trials; then each of trials 11-20 is trained again with ``--repeats`` fresh training seeds.

Per seed, over trials 11-20:

- ``prequential``: Kendall's tau of the recorded predictions with the measured accuracies (what
  the issue's goal asks to be positive);
- ``retest``: the tau of the measured accuracies with their repeats' mean: how well a perfect
  predictor of the *expected* accuracy could rank the measured ones at best (an estimate of the
  ceiling; the repeats' own noise lowers it a little);
- the spread of the ten accuracies, and the training noise (the standard deviation of one
  candidate's repeated runs, pooled);
- the mean measured and predicted accuracy of the trust region's proposals (even trials, near
  the measured pairs) and of the predictor's free picks (odd trials).

Run from the repository root::

    python benchmarks/label_noise.py            # 5 seeds, 2 repeats
    python benchmarks/label_noise.py --quick    # 2 seeds, 1 repeat

Results go to ``benchmarks/results/label_noise.json``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

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

FIRST, LAST = 10, 20  # trial numbers 10-19: the trials 11-20


def run_seed(seed: int, repeats: int, threads: int) -> dict[str, Any]:
    """NARS's first ``LAST`` trials with this seed, as the suite runs them, and ``repeats``
    more training runs of each of trials 11-20."""
    import optuna
    import torch
    from scipy.stats import kendalltau

    from benchmarks.suite.runner import make_sampler, quiet, run_study
    from optuna_nars.predictor import prequential_kendall_tau

    torch.set_num_threads(threads)
    quiet()
    problem = FashionMNISTProblem()
    sampler = make_sampler("nars", problem, seed)
    study = optuna.create_study(direction="maximize", sampler=sampler,
                                pruner=optuna.pruners.NopPruner())
    run = run_study(problem, sampler, LAST, seed, study=study)
    trials = study.trials[FIRST:LAST]
    measured = np.array([t.value for t in trials])
    predicted = np.array(run["nars"]["predicted"][FIRST:LAST], dtype=float)
    rng = np.random.default_rng([seed, 31])  # training seeds apart from the run's
    again = np.empty((len(trials), repeats))
    for j in range(repeats):
        retrain = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
        for t in trials:
            retrain.enqueue_trial(t.params)
        retrain.optimize(lambda t: problem.evaluate(t, rng), n_trials=len(trials))
        again[:, j] = [t.value for t in retrain.trials]
    numbers = np.arange(FIRST, LAST)
    runs = np.column_stack([measured, again])
    noise = float(np.sqrt(np.mean(np.var(runs, axis=1, ddof=1))))
    return {
        "seed": seed,
        "params": [t.params for t in trials],
        "measured": measured.tolist(),
        "predicted": predicted.tolist(),
        "repeats": again.tolist(),
        "prequential": prequential_kendall_tau(predicted, measured),
        "retest": float(kendalltau(again.mean(axis=1), measured).statistic),
        "spread": float(np.std(measured, ddof=1)),
        # Even trials stay near the measured pairs, odd ones follow the predictor anywhere.
        "near_accuracy": float(measured[numbers % 2 == 0].mean()),
        "free_accuracy": float(measured[numbers % 2 == 1].mean()),
        "near_predicted": float(predicted[numbers % 2 == 0].mean()),
        "free_predicted": float(predicted[numbers % 2 == 1].mean()),
        "noise": noise,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser(__doc__, "2 seeds, 1 repeat")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    args = parse_run_args(parser, argv, output=RESULTS_DIR / "label_noise.json", seed=False,
                          quiet_optuna=True)
    seeds, repeats = (2, 1) if args.quick else (args.seeds, args.repeats)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run_seed, range(seeds), [repeats] * seeds,
                                [args.threads] * seeds))
    keys = ("prequential", "retest", "spread", "noise", "near_accuracy", "near_predicted",
            "free_accuracy", "free_predicted")
    rows = [[r["seed"], *(fmt(r[k]) for k in keys)] for r in results]
    rows.append(["median", *(fmt(float(np.median([r[k] for r in results]))) for k in keys)])
    print(markdown_table(["seed", "prequential tau", "retest tau", "spread of accuracies",
                          "training noise (std)", "near the data: accuracy", "predicted",
                          "free picks: accuracy", "predicted"], rows))
    save_results(args.output, "label_noise", args, {
        "seeds": seeds, "repeats": repeats, "trials": [FIRST + 1, LAST], "runs": results,
        "median": {k: float(np.median([r[k] for r in results])) for k in keys},
        "wall_s": time.perf_counter() - start,
    }, git=True)


if __name__ == "__main__":
    main()
