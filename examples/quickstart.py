"""Quick start: search a small network and its training recipe on scikit-learn's digits.

Runs FBNetV3's architecture-recipe search with a FLOPs budget, the early-stopping pruner and
a SQLite study you can open in optuna-dashboard. One to two minutes on one CPU core (62-102 s
measured on a busy 2-core machine; with torch's default two threads there it took 4.5 minutes,
so training uses one thread unless ``--threads`` says otherwise):

    python examples/quickstart.py [--n-trials 16] [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse

import optuna
import torch

from optuna_nars import SearchSpace
from optuna_nars.pruner import EarlyStoppingPruner, trial_labels
from optuna_nars.samplers import NARSSampler
from optuna_nars.training import ClassificationObjective


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--storage", default="sqlite:///quickstart.db")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the networks are tiny, and more "
                             "threads slow their training down on a busy machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    space = SearchSpace.tiny(in_channels=1, num_classes=10)  # digits: 8x8 grey, 10 classes
    study = optuna.create_study(
        study_name="quickstart",
        storage=args.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=NARSSampler(space, constraints={"flops": 1.5e6}, n_startup_trials=6,
                            batch_size=4, seed=0),
        pruner=EarlyStoppingPruner(n_calibration_trials=4),
    )
    objective = ClassificationObjective(space, dataset="digits", epochs=args.epochs)
    study.optimize(objective, n_trials=args.n_trials)

    labels = trial_labels(study)  # accuracy at the label step, comparable across trials
    best = max(labels, key=labels.get)
    trial = study.trials[best]
    print(f"best trial {best}: accuracy {labels[best]:.3f}, {trial.user_attrs['flops']:,} FLOPs")
    print(f"  {trial.user_attrs['arch']}\n  {trial.user_attrs['recipe']}")
    return study


if __name__ == "__main__":
    main()
