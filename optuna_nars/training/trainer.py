"""The two ways to train a candidate: :func:`train_candidate` and, per Optuna trial,
:class:`ClassificationObjective`.

They share this module because it is where a run gets its inputs: the network from
:func:`~optuna_nars.models.build_model`, the data from :func:`~optuna_nars.data.load_dataset`.
Both names are looked up here at call time, so this module is the one place to substitute
them (e.g. a model factory that fails, to exercise a study's error handling).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import optuna
import torch

from optuna_nars._validation import check_int, check_real
from optuna_nars.candidate import Candidate
from optuna_nars.cost import count_flops, count_params
from optuna_nars.data import (
    DatasetInfo,
    DataSplits,
    PathLike,
    check_split_args,
    dataset_info,
    load_dataset,
)
from optuna_nars.models import build_model
from optuna_nars.space import SearchSpace
from optuna_nars.training.batches import DeviceBatches
from optuna_nars.training.device import DeviceSettings, resolve_device
from optuna_nars.training.loop import TrainingRun, run_epochs
from optuna_nars.training.recipe import check_optimizer, recipe_tools
from optuna_nars.training.result import TrainResult

__all__ = ["ClassificationObjective", "train_candidate"]


def _check_epochs_and_batch_size(epochs: int, batch_size: int) -> None:
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)


def train_candidate(
    candidate: Candidate,
    data: DataSplits,
    *,
    epochs: int,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    seed: int = 0,
    report: Callable[[int, float], bool] | None = None,
    num_workers: int = 0,
    warmup_fraction: float = 0.05,
    ema_decay: float | None = None,
    eval_batch_size: int | None = None,
) -> TrainResult:
    """Train ``candidate`` on ``data.train`` with its recipe; evaluate on ``data.val``.

    Args:
        candidate: The architecture (built by :func:`~optuna_nars.models.build_model` with the
            recipe's dropout and stochastic depth) and its training recipe.
        data: From :func:`~optuna_nars.data.load_dataset`. Batches are resized on the device
            (bilinear) to the architecture's resolution.
        epochs: Training epochs; the LR schedule (warm-up, then cosine to zero) spans them.
        batch_size: Training batch size (the last ragged batch of an epoch is dropped).
        device: Default CUDA when available (with float16 autocast), else CPU; both train in
            channels-last memory format.
        seed: Seeds model initialisation, dropout, mixup and the shuffling.
        report: Called as ``report(epoch, accuracy)`` after every epoch (``epoch`` = 1..epochs,
            accuracy = validation top-1 in [0, 1], of the EMA model with ``recipe.ema``);
            returning True stops training (the result says ``pruned``).
        num_workers: ``DataLoader`` workers for datasets not held in memory (image folders).
        warmup_fraction: Share of the steps spent warming the LR up linearly from 1% of it.
        ema_decay: EMA decay with ``recipe.ema``; default about a tenth of the run
            (``1 - 10 / total_steps``, at most 0.9999).
        eval_batch_size: Validation batch size (default ``2 * batch_size``).

    A diverging recipe (a non-finite loss or weights) stops training with ``diverged=True``
    and the accuracies reached so far; the epoch in which it diverged is neither evaluated nor
    reported. Seeding makes CPU runs reproducible; it uses the global torch RNG, so runs in
    parallel threads are not.
    """
    _check_epochs_and_batch_size(epochs, batch_size)
    check_real("warmup_fraction", warmup_fraction, low=0, high=1, high_open=True)
    check_optimizer(candidate.recipe)
    settings = DeviceSettings(resolve_device(device))
    arch = candidate.architecture
    flops = count_flops(arch, data.in_channels, data.num_classes)
    params = count_params(arch, data.in_channels, data.num_classes)
    run = _set_up(
        candidate, data, settings, epochs=epochs, batch_size=batch_size, seed=seed,
        num_workers=num_workers, warmup_fraction=warmup_fraction, ema_decay=ema_decay,
        eval_batch_size=eval_batch_size,
    )
    progress = run_epochs(run, epochs, report)
    return progress.result(flops, params, run.evaluated_model)


def _set_up(
    candidate: Candidate,
    data: DataSplits,
    settings: DeviceSettings,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    num_workers: int,
    warmup_fraction: float,
    ema_decay: float | None,
    eval_batch_size: int | None,
) -> TrainingRun:
    """Seed, build the network on the device, and its batches and recipe tools."""
    arch, recipe = candidate.architecture, candidate.recipe
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(
        arch, data.num_classes, data.in_channels,
        dropout=recipe.dropout, stochastic_depth=recipe.stochastic_depth,
    ).to(settings.device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    common = dict(device=settings.device, resolution=arch.resolution, num_workers=num_workers,
                  channels_last=settings.channels_last)
    train_batches = DeviceBatches(data.train, batch_size, train=True, generator=generator,
                                  **common)
    val_batches = DeviceBatches(data.val, eval_batch_size or 2 * batch_size, train=False,
                                generator=None, **common)
    total_steps = epochs * len(train_batches)
    tools = recipe_tools(model, recipe, data.num_classes, total_steps, warmup_fraction,
                         ema_decay)
    return TrainingRun(model, recipe, tools, settings.grad_scaler(), settings, train_batches,
                       val_batches)


class ClassificationObjective:
    """An Optuna objective: suggest a candidate from ``space``, train it, return validation
    top-1 *after the last epoch* (a fraction in [0, 1]; maximise it).

    Every epoch's accuracy goes to ``trial.report`` and the trial is pruned
    (``optuna.TrialPruned``) when ``trial.should_prune()`` says so. The trial's user
    attributes hold ``flops`` and ``params`` (from the cost model, set before training so failed
    and pruned trials have them too), ``arch`` and ``recipe`` strings, ``seconds_per_epoch``,
    ``images_per_second`` and ``diverged``; a diverged run adds ``diverged_reason`` and returns
    the accuracy of its last completed epoch (0.0 if none).

    ``dataset`` is a name for :func:`~optuna_nars.data.load_dataset` (loaded lazily, once per
    objective, thread-safe) or ready :class:`~optuna_nars.data.DataSplits` (e.g. a folder
    dataset loaded with another ``image_size``). Its channels and classes must match
    ``space.in_channels`` and ``space.num_classes``. ``data_dir``, ``download``,
    ``max_train_samples`` and ``val_fraction`` go to :func:`~optuna_nars.data.load_dataset` (for
    a dataset name). Trial ``n`` trains with seed ``seed + n``. Arguments, the dataset name and
    its files are checked here, before any trial runs.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        dataset: str | DataSplits = "digits",
        data_dir: PathLike | None = None,
        epochs: int = 5,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        seed: int = 0,
        download: bool = False,
        max_train_samples: int | None = None,
        val_fraction: float = 0.2,
    ) -> None:
        _check_epochs_and_batch_size(epochs, batch_size)
        check_split_args(val_fraction, max_train_samples)
        resolve_device(device)  # a misspelt device fails now, not in every trial
        self.space = space
        self.dataset = dataset
        self.data_dir = data_dir
        self.epochs = epochs
        self.batch_size = batch_size
        self.device = device
        self.seed = seed
        self.download = download
        self.max_train_samples = max_train_samples
        self.val_fraction = val_fraction
        if isinstance(dataset, DataSplits):
            info = DatasetInfo(dataset.name, dataset.in_channels, dataset.num_classes,
                               dataset.image_size)
            self._data: DataSplits | None = dataset
        else:
            # Fails fast on unknown names and missing files, before any trial runs.
            info = dataset_info(dataset, data_dir=data_dir, download=download)
            self._data = None
        self._check_space(info)
        self._lock = threading.Lock()

    def _check_space(self, info: DatasetInfo) -> None:
        space = self.space
        if (space.in_channels, space.num_classes) != (info.in_channels, info.num_classes):
            raise ValueError(
                f"The search space expects {space.in_channels}-channel images and "
                f"{space.num_classes} classes, but dataset {info.name!r} has "
                f"{info.in_channels} channel(s) and {info.num_classes} classes; build the space "
                f"for it, e.g. SearchSpace.cifar(in_channels={info.in_channels}, "
                f"num_classes={info.num_classes}) or space.replace(in_channels="
                f"{info.in_channels}, num_classes={info.num_classes})."
            )

    @property
    def data(self) -> DataSplits:
        """The dataset splits, loaded on first use."""
        if self._data is None:
            with self._lock:
                if self._data is None:  # another thread may have loaded it meanwhile
                    assert isinstance(self.dataset, str)
                    self._data = load_dataset(
                        self.dataset, data_dir=self.data_dir, download=self.download,
                        val_fraction=self.val_fraction, seed=self.seed,
                        max_train_samples=self.max_train_samples,
                    )
        return self._data

    def __call__(self, trial: optuna.Trial) -> float:
        candidate = self.space.suggest(trial)
        data = self.data
        arch = candidate.architecture
        trial.set_user_attr("arch", str(arch))
        trial.set_user_attr("recipe", str(candidate.recipe))
        trial.set_user_attr("flops", count_flops(arch, data.in_channels, data.num_classes))
        trial.set_user_attr("params", count_params(arch, data.in_channels, data.num_classes))

        def report(epoch: int, accuracy: float) -> bool:
            trial.report(accuracy, epoch)
            return trial.should_prune()

        # Optuna refuses intermediate values (and pruning) in multi-objective studies.
        multi = len(trial.study.directions) > 1
        result = train_candidate(
            candidate, data, epochs=self.epochs, batch_size=self.batch_size,
            device=self.device, seed=self.seed + trial.number, report=None if multi else report,
        )
        trial.set_user_attr("seconds_per_epoch", result.seconds_per_epoch)
        trial.set_user_attr("images_per_second", result.images_per_second)
        trial.set_user_attr("diverged", result.diverged)
        if result.diverged:
            trial.set_user_attr("diverged_reason", result.diverged_reason)
        if result.pruned:
            raise optuna.TrialPruned(
                f"pruned after epoch {result.epochs_completed} at accuracy "
                f"{result.final_accuracy:.4f}"
            )
        return result.final_accuracy

    # The lock and the loaded data stay behind when the objective is pickled (e.g. sent to
    # worker processes): each process loads its own copy.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        if not isinstance(self.dataset, DataSplits):
            state["_data"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
