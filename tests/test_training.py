from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

import optuna_nars.training.trainer as training
from optuna_nars import Architecture, Candidate, Recipe, RecipeSpec, SearchSpace
from optuna_nars.cost import count_flops, count_params
from optuna_nars.data import DataSplits, load_dataset
from optuna_nars.models import InvertedResidualNet
from optuna_nars.training import ClassificationObjective, TrainResult, train_candidate

# A small member of SearchSpace.tiny().
ARCH = Architecture.from_string("r16 c8:hs k3e1c8d1:hs k3e2c16d1s2:hs k3e2c24d1s2:hs h64")
SANE = Recipe("sgd", lr=0.1, weight_decay=4e-5, dropout=0.0, label_smoothing=0.0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # These networks are too small to gain from intra-op threads, and on a shared 2-core box
    # two spinning OpenMP threads slow down by an order of magnitude when a core is busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def small() -> DataSplits:
    # 240 train / 60 val images: an epoch takes a fraction of a second.
    return load_dataset("digits", max_train_samples=300)


def _fixed_space(**recipe: object) -> SearchSpace:
    """SearchSpace.tiny() with a fixed recipe (values outside the tiny space allowed)."""
    defaults = dict(optimizer="sgd", lr=0.1, weight_decay=4e-5, mixup_alpha=0.0, dropout=0.0,
                    stochastic_depth=0.0, ema=False, label_smoothing=0.0)
    return SearchSpace.tiny().replace(recipe=RecipeSpec(**{**defaults, **recipe}))


def _enqueue(study: optuna.Study, space: SearchSpace) -> None:
    study.enqueue_trial(space.to_params(Candidate(ARCH, SANE)))


def test_digits_learns_well_above_chance(digits: DataSplits) -> None:
    seen: list[tuple[int, float]] = []
    result = train_candidate(
        Candidate(ARCH, SANE), digits, epochs=3, batch_size=32,
        report=lambda epoch, acc: seen.append((epoch, acc)) is not None,
    )
    assert isinstance(result, TrainResult)
    assert result.final_accuracy > 0.5, result
    assert [e for e, _ in seen] == [1, 2, 3]
    assert [a for _, a in seen] == list(result.accuracies)
    assert result.best_accuracy == max(result.accuracies)
    assert not result.diverged and not result.pruned
    assert len(result.train_losses) == 3 and result.train_losses[-1] < result.train_losses[0]
    assert result.flops == count_flops(ARCH, 1, 10) and result.params == count_params(ARCH, 1, 10)
    assert result.images_per_second > 0 and result.seconds_per_epoch > 0
    assert sum(p.numel() for p in result.model.parameters()) == result.params


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe("sgd", lr=0.05, mixup_alpha=0.2, label_smoothing=0.1),
        Recipe("rmsprop", lr=0.01, ema=True, dropout=0.2, stochastic_depth=0.1),
        Recipe("adamw", lr=3e-3, weight_decay=0.05, mixup_alpha=0.3, ema=True,
               label_smoothing=0.2),
    ],
    ids=["sgd-mixup-ls", "rmsprop-ema-sd", "adamw-mixup-ema"],
)
def test_recipe_features_run(small: DataSplits, recipe: Recipe) -> None:
    arch = Architecture.from_string(
        "r24 c8:hs k5e2c8d2:hs k3e3c16d1s2se:hs k3e2c24d1s2:hs h64"  # SE + residual blocks
    )
    result = train_candidate(Candidate(arch, recipe), small, epochs=1, batch_size=32)
    assert not result.diverged
    assert len(result.accuracies) == 1 and 0.0 <= result.final_accuracy <= 1.0
    assert np.isfinite(result.train_losses[0])
    # With EMA the evaluated (and returned) model is the average, not the trained one.
    assert isinstance(result.model, InvertedResidualNet)


def test_training_is_seeded(small: DataSplits) -> None:
    candidate = Candidate(ARCH, Recipe("sgd", lr=0.05, mixup_alpha=0.2, dropout=0.1))
    a, b = (train_candidate(candidate, small, epochs=1, seed=3) for _ in range(2))
    assert a.accuracies == b.accuracies and a.train_losses == b.train_losses


def test_report_true_stops_training(small: DataSplits) -> None:
    result = train_candidate(Candidate(ARCH, SANE), small, epochs=5, report=lambda e, a: True)
    assert result.pruned and result.epochs_completed == 1


def test_divergence_keeps_the_accuracy_reached(small: DataSplits) -> None:
    images = small.train.normalize(small.train.images).clone()
    data = DataSplits(TensorDataset(images, small.train.labels.clone()), small.val, 10, 1,
                      "digits", 8)

    def poison(epoch: int, accuracy: float) -> bool:
        images.fill_(float("nan"))  # the data (held in place) turn to NaN after epoch 1
        return False

    result = train_candidate(Candidate(ARCH, SANE), data, epochs=3, report=poison)
    assert result.diverged and "non-finite" in result.diverged_reason
    assert result.epochs_completed == 1 and result.final_accuracy == result.accuracies[0]


def test_objective_attributes(small: DataSplits) -> None:
    space = SearchSpace.tiny()
    objective = ClassificationObjective(space, dataset=small, epochs=2, batch_size=32)
    study = optuna.create_study(direction="maximize")
    _enqueue(study, space)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    arch = space.from_params(trial.params).architecture
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value == trial.intermediate_values[2]
    assert set(trial.intermediate_values) == {1, 2}
    attrs = trial.user_attrs
    assert attrs["flops"] == count_flops(arch, 1, 10)
    assert attrs["params"] == count_params(arch, 1, 10)
    assert attrs["arch"] == str(arch)
    assert attrs["recipe"] == str(space.from_params(trial.params).recipe)
    assert attrs["images_per_second"] > 0 and attrs["seconds_per_epoch"] > 0
    assert attrs["diverged"] is False and "diverged_reason" not in attrs


def test_objective_prunes() -> None:
    objective = ClassificationObjective(
        SearchSpace.tiny(), dataset="digits", epochs=3, max_train_samples=200
    )
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.1)
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]
    assert "flops" in trial.user_attrs and "images_per_second" in trial.user_attrs


def test_diverging_recipe_is_recorded_not_raised(small: DataSplits) -> None:
    space = _fixed_space(lr=1e30)  # overflows float32 in a step or two, whatever the threads
    study = optuna.create_study(direction="maximize")
    study.optimize(ClassificationObjective(space, dataset=small, epochs=2), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.user_attrs["diverged"] is True
    assert "diverged" in trial.user_attrs["diverged_reason"]
    # The accuracy of the last completed epoch (0.0 if it diverged in the first).
    reached = list(trial.intermediate_values.values())
    assert trial.value == (reached[-1] if reached else 0.0) and trial.value <= 0.2


def test_study_keeps_running_after_a_failed_trial(
    small: DataSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = training.build_model
    calls = []

    def flaky(*args: object, **kwargs: object) -> torch.nn.Module:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory (simulated)")
        return build(*args, **kwargs)

    monkeypatch.setattr(training, "build_model", flaky)
    study = optuna.create_study(direction="maximize")
    study.optimize(ClassificationObjective(SearchSpace.tiny(), dataset=small, epochs=1),
                   n_trials=2, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert "flops" in study.trials[0].user_attrs  # the cost is known even for failed trials


def test_objective_validates_arguments_immediately(tmp_path: Path) -> None:
    space = SearchSpace.tiny()
    with pytest.raises(ValueError, match="epochs"):
        ClassificationObjective(space, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        ClassificationObjective(space, batch_size=0)
    with pytest.raises(ValueError, match="Unknown dataset"):
        ClassificationObjective(space, dataset="imagenet-1k")
    with pytest.raises(FileNotFoundError, match="download=True"):
        ClassificationObjective(space, dataset="mnist", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"in_channels=1, num_classes=10"):
        ClassificationObjective(SearchSpace.cifar(), dataset="digits")
    with pytest.raises(ValueError, match=r"3 channel\(s\) and 100 classes"):
        ClassificationObjective(space, dataset="cifar100", download=True)


def test_objective_loads_data_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counting_load(*args: object, **kwargs: object) -> DataSplits:
        calls.append(1)
        return load_dataset(*args, **kwargs)

    monkeypatch.setattr(training, "load_dataset", counting_load)
    objective = ClassificationObjective(SearchSpace.tiny(), max_train_samples=100)
    threads = [threading.Thread(target=lambda: objective.data) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(objective.data.train) == 80
    clone = pickle.loads(pickle.dumps(objective))  # ships without the data or the lock
    assert clone._data is None and clone.epochs == objective.epochs


def test_folder_dataset_trains_through_a_data_loader(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c, cls in enumerate(("dark", "light")):
        (tmp_path / cls).mkdir()
        for i in range(8):
            pixels = rng.integers(0, 100, size=(20, 20, 3)) + 150 * c
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / cls / f"{i}.png")
    space = SearchSpace.tiny(in_channels=3, num_classes=2)
    objective = ClassificationObjective(space, dataset=f"folder:{tmp_path}", epochs=1,
                                        batch_size=4)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
