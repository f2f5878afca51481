"""Real training on digits with the provided objective, the pruner and the sampler together,
and the command line and examples on top of them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from optuna_nars import SearchSpace
from optuna_nars.predictor import NARSPredictor
from optuna_nars.pruner import LABEL_STEP_KEY, EarlyStoppingPruner, get_label_step, trial_labels
from optuna_nars.samplers import NARSSampler
from optuna_nars.training import ClassificationObjective

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_search_on_digits_with_early_stopping(tmp_path: Path) -> None:
    space = SearchSpace.tiny()
    sampler = NARSSampler(
        space, constraints={"flops": 2e6}, n_startup_trials=6, batch_size=3, n_rounds=2,
        pool_size=2048, n_pretrain=512, seed=0,
        predictor=NARSPredictor(n_members=2, frozen_epochs=20, finetune_epochs=20,
                                pretrain_epochs=20),
    )
    pruner = EarlyStoppingPruner(n_calibration_trials=4, threshold=0.6)
    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=pruner,
        storage=f"sqlite:///{tmp_path / 'digits.db'}",
    )
    objective = ClassificationObjective(space, dataset="digits", epochs=4, seed=0)
    study.optimize(objective, n_trials=14)

    trials = study.trials
    assert all(t.state != optuna.trial.TrialState.FAIL for t in trials)
    assert all(t.user_attrs["flops"] <= 2e6 for t in trials)
    label_step = get_label_step(study)
    assert label_step is not None and 1 <= label_step <= 4
    assert study._storage.get_study_system_attrs(study._study_id)[LABEL_STEP_KEY] == label_step
    # One consistent label set: every label is the accuracy after ``label_step`` epochs.
    labels = trial_labels(study)
    for t in trials:
        if t.number in labels:
            assert labels[t.number] == t.intermediate_values[label_step]
    stopped = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    if label_step < 4:
        assert stopped and all(t.last_step == label_step for t in stopped)
    # The search beats its own QMC warm start.
    warm = [labels[t.number] for t in trials[:6] if t.number in labels]
    later = [labels[t.number] for t in trials[6:] if t.number in labels]
    assert max(labels.values()) > np.median(warm)
    assert max(later) >= np.median(warm)
    assert {t.user_attrs["nars:stage"] for t in trials} >= {"qmc", "predictor"}


@pytest.mark.parametrize(
    ("name", "argv"),
    [("quickstart", ["--n-trials", "5", "--epochs", "2"]),
     ("plain_optuna_objective", ["--n-trials", "10"])],
)
def test_examples_run(name: str, argv: list[str], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    module = __import__(name)
    study = module.main(argv)
    assert len(study.trials) == int(argv[1])
    sys.modules.pop(name, None)
