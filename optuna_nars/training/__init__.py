"""Train an architecture-recipe candidate, and the Optuna objective that does it per trial.

:func:`train_candidate` trains the network of a :class:`~optuna_nars.candidate.Candidate` with
its own recipe (optimizer, learning rate with warm-up and cosine decay, weight decay, mixup,
label smoothing, dropout, stochastic depth, EMA) and reports validation top-1 after every
epoch. :class:`ClassificationObjective` wraps it as an Optuna objective with pruning and the
candidate's cost recorded on the trial::

    space = SearchSpace.tiny()
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner())
    study.optimize(ClassificationObjective(space, dataset="digits", epochs=5), n_trials=20)

Layout of the package:

* ``trainer``: :func:`train_candidate` (argument checks, seeding, set-up) and
  :class:`ClassificationObjective`;
* ``loop``: the epoch loop (train, divergence check, evaluation, report) and its record;
* ``recipe``: what a recipe turns into (optimizer, LR schedule, loss, mixup, EMA);
* ``batches``: batches on the device, normalised and resized to the candidate's resolution;
* ``device``: the device and what it changes (autocast, gradient scaling, memory format);
* ``result``: :class:`TrainResult`.
"""

from __future__ import annotations

from optuna_nars.training.device import resolve_device
from optuna_nars.training.result import TrainResult
from optuna_nars.training.trainer import ClassificationObjective, train_candidate

__all__ = ["ClassificationObjective", "TrainResult", "resolve_device", "train_candidate"]
