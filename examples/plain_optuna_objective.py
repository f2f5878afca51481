"""NARSSampler on a plain Optuna objective (not optuna-nars's): a scikit-learn MLP on digits.

The sampler infers the search space from the trials, treats ``n_layers`` / ``units`` as the
architecture and the rest as the training recipe, pretrains its predictor on a free proxy (the
parameter count, computed without training) and keeps the model under a size budget. About
two minutes on a CPU (104 s measured on a busy 2-core machine):

    python examples/plain_optuna_objective.py [--n-trials 30]
"""

from __future__ import annotations

import argparse
import warnings

import optuna
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from optuna_nars.samplers import NARSSampler

X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)


def n_weights(params: dict) -> float:
    """Free proxy: the MLP's parameter count, from the params alone."""
    widths = [64] + [params["units"]] * params["n_layers"] + [10]
    return float(sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True)))


def objective(trial: optuna.Trial) -> float:
    n_layers = trial.suggest_int("n_layers", 1, 3)
    units = trial.suggest_int("units", 8, 128, log=True)
    lr = trial.suggest_float("learning_rate_init", 1e-4, 1e-1, log=True)
    alpha = trial.suggest_float("alpha", 1e-6, 1e-1, log=True)
    model = MLPClassifier((units,) * n_layers, learning_rate_init=lr, alpha=alpha,
                          max_iter=40, random_state=trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    return model.score(X_val, y_val)


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-trials", type=int, default=30)
    args = parser.parse_args(argv)
    sampler = NARSSampler(
        proxy_metrics=lambda p: {"weights": n_weights(p)},
        architecture_params=["n_layers", "units"],
        constraints={"weights": 40_000},
        n_startup_trials=8,
        batch_size=5,
        seed=0,
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=args.n_trials)
    print(f"best accuracy {study.best_value:.3f} with {study.best_params}")
    return study


if __name__ == "__main__":
    main()
