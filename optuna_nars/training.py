"""Train an architecture-recipe candidate, and the Optuna objective that does it per trial.

:func:`train_candidate` trains the network of a :class:`~optuna_nars.candidate.Candidate` with
its own recipe (optimizer, learning rate with warm-up and cosine decay, weight decay, mixup,
label smoothing, dropout, stochastic depth, EMA) and reports validation top-1 after every
epoch. :class:`ClassificationObjective` wraps it as an Optuna objective with pruning and the
candidate's cost recorded on the trial::

    space = SearchSpace.tiny()
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner())
    study.optimize(ClassificationObjective(space, dataset="digits", epochs=5), n_trials=20)
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.transforms import v2

from optuna_nars.candidate import OPTIMIZERS, Candidate, Recipe
from optuna_nars.cost import count_flops, count_params
from optuna_nars.data import (
    DatasetInfo,
    DataSplits,
    ImageTensorDataset,
    PathLike,
    check_split_args,
    dataset_info,
    load_dataset,
)
from optuna_nars.models import build_model
from optuna_nars.space import SearchSpace

__all__ = ["ClassificationObjective", "TrainResult", "resolve_device", "train_candidate"]

# How often (in steps) a CUDA run checks the loss for NaN/inf: every check synchronises.
_CUDA_CHECK_EVERY = 25
# The LR warm-up starts at this fraction of the peak LR.
_WARMUP_START = 0.01


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train_candidate`.

    Attributes:
        accuracies: Validation top-1 (a fraction in [0, 1]) after every *completed* epoch:
            fewer than ``epochs`` when the run was pruned or diverged.
        train_losses: Mean training loss of every completed epoch.
        diverged: Training hit a non-finite loss or weights and stopped.
        diverged_reason: What diverged and when (``None`` unless ``diverged``).
        pruned: ``report`` returned True and training stopped.
        seconds_per_epoch: Mean wall time of an epoch, training and evaluation.
        images_per_second: Training throughput (images through forward and backward per
            second of training time, evaluation excluded).
        flops, params: Multiply-adds per image and parameters, from the cost model.
        model: The evaluated network (the EMA average with ``recipe.ema``).
    """

    accuracies: tuple[float, ...]
    train_losses: tuple[float, ...]
    diverged: bool
    diverged_reason: str | None
    pruned: bool
    seconds_per_epoch: float
    images_per_second: float
    flops: int
    params: int
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def final_accuracy(self) -> float:
        """Accuracy after the last completed epoch (0.0 when no epoch completed)."""
        return self.accuracies[-1] if self.accuracies else 0.0

    @property
    def best_accuracy(self) -> float:
        """Best accuracy over the completed epochs (0.0 when no epoch completed)."""
        return max(self.accuracies, default=0.0)

    @property
    def epochs_completed(self) -> int:
        return len(self.accuracies)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or CUDA when available and the CPU otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --------------------------------------------------------------------------------------------
# Recipe pieces
# --------------------------------------------------------------------------------------------


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on BN weights and biases (1-d tensors), as in timm and FBNet."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = _param_groups(model, recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True)
    if recipe.optimizer == "rmsprop":
        # EfficientNet / FBNet's RMSprop settings.
        return torch.optim.RMSprop(groups, lr=recipe.lr, alpha=0.9, momentum=0.9, eps=1e-3)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr)
    raise ValueError(f"Unknown optimizer {recipe.optimizer!r}; choose one of {OPTIMIZERS}.")


def _scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float
) -> LRScheduler:
    """Per-step linear warm-up then cosine decay to zero."""
    warmup = min(round(warmup_fraction * total_steps), total_steps - 1)
    cosine = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup, 1))
    if warmup <= 0:
        return cosine
    linear = LinearLR(optimizer, start_factor=_WARMUP_START, total_iters=warmup)
    return SequentialLR(optimizer, [linear, cosine], milestones=[warmup])


def _default_ema_decay(total_steps: int) -> float:
    # EMA over roughly the last tenth of the run: FBNetV3's 0.9999 suits 400 ImageNet epochs,
    # but would leave a short proxy run's EMA at the initial weights.
    return min(0.9999, max(0.0, 1.0 - 10.0 / total_steps))


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


class _Batches:
    """Batches of a dataset on the device, normalised and resized to the candidate resolution.

    In-memory datasets (:class:`ImageTensorDataset`, ``TensorDataset``) are moved to the device
    once and gathered batch-wise from a seeded permutation: no per-image Python work. Other
    datasets go through a seeded ``DataLoader``.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        resolution: int,
        *,
        train: bool,
        generator: torch.Generator | None,
        num_workers: int,
        channels_last: bool,
    ) -> None:
        self.device, self.resolution, self.train = device, resolution, train
        self.batch_size, self.generator = batch_size, generator
        self.channels_last = channels_last
        self.n = len(dataset)
        self.tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        self.normalize: Callable[[torch.Tensor], torch.Tensor] | None = None
        if isinstance(dataset, ImageTensorDataset):
            dataset = dataset.to(device)
            self.tensors, self.normalize = (dataset.images, dataset.labels), dataset.normalize
        elif isinstance(dataset, TensorDataset):
            images, labels = dataset.tensors[:2]
            self.tensors = (images.to(device), labels.to(device, torch.int64))
        else:
            self.loader = DataLoader(
                dataset, batch_size=batch_size, shuffle=train, drop_last=self._drop_last,
                generator=generator, num_workers=num_workers, pin_memory=device.type == "cuda",
            )

    @property
    def _drop_last(self) -> bool:
        # A ragged last training batch adds a noisy BN step; keep it when it is the only batch.
        return self.train and self.n >= self.batch_size

    def __len__(self) -> int:
        return self.n // self.batch_size if self._drop_last else math.ceil(self.n / self.batch_size)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        x = self.normalize(x) if self.normalize is not None else x.float()
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(
                x, size=(self.resolution, self.resolution), mode="bilinear",
                align_corners=False, antialias=x.shape[-1] > self.resolution,
            )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is None:
            for x, y in self.loader:
                yield self._prepare(x), y.to(self.device, non_blocking=True)
            return
        images, labels = self.tensors
        if self.train:
            order = torch.randperm(self.n, generator=self.generator).to(self.device)
            for i in range(len(self)):
                idx = order[i * self.batch_size:(i + 1) * self.batch_size]
                yield self._prepare(images[idx]), labels[idx]
        else:
            for i in range(0, self.n, self.batch_size):  # slices are views: no copy
                yield (self._prepare(images[i:i + self.batch_size]),
                       labels[i:i + self.batch_size])


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _all_finite(model: nn.Module) -> bool:
    return bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())


@torch.inference_mode()
def _evaluate(
    model: nn.Module, batches: _Batches, autocast: Callable[[], contextlib.AbstractContextManager]
) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=batches.device)
    for x, y in batches:
        with autocast():
            logits = model(x)
        correct += (logits.argmax(dim=1) == y).sum()
    return correct.item() / max(batches.n, 1)


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
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}.")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must lie in [0, 1), got {warmup_fraction}.")
    arch, recipe = candidate.architecture, candidate.recipe
    if recipe.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {recipe.optimizer!r}; choose one of {OPTIMIZERS}.")
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    # Channels-last suits cuDNN and oneDNN alike: 1.2-1.7x faster training steps on the CPU
    # for these depthwise-separable networks.
    channels_last = dev.type in ("cpu", "cuda")
    flops = count_flops(arch, data.in_channels, data.num_classes)
    params = count_params(arch, data.in_channels, data.num_classes)

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(
        arch, data.num_classes, data.in_channels,
        dropout=recipe.dropout, stochastic_depth=recipe.stochastic_depth,
    ).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    common = dict(device=dev, resolution=arch.resolution, num_workers=num_workers,
                  channels_last=channels_last)
    train_batches = _Batches(data.train, batch_size, train=True, generator=generator, **common)
    val_batches = _Batches(data.val, eval_batch_size or 2 * batch_size, train=False,
                           generator=None, **common)
    steps_per_epoch = len(train_batches)
    total_steps = epochs * steps_per_epoch

    optimizer = _optimizer(model, recipe)
    scheduler = _scheduler(optimizer, total_steps, warmup_fraction)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    mixup = v2.MixUp(alpha=recipe.mixup_alpha, num_classes=data.num_classes) \
        if recipe.mixup_alpha > 0 else None
    ema = None
    if recipe.ema:
        decay = _default_ema_decay(total_steps) if ema_decay is None else ema_decay
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    scaler = torch.amp.GradScaler("cuda") if cuda else None

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if cuda else contextlib.nullcontext()

    check_every = _CUDA_CHECK_EVERY if cuda else 1  # .item() is free on the CPU
    accuracies: list[float] = []
    losses: list[float] = []
    diverged_reason: str | None = None
    pruned = False
    epoch_seconds: list[float] = []
    train_seconds = 0.0
    images_seen = 0

    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=dev)
        n_steps = 0
        for x, y in train_batches:
            if mixup is not None:
                x, y = mixup(x, y)
            with autocast():
                loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach()
            n_steps += 1
            images_seen += len(y)
            if n_steps % check_every == 0 and not torch.isfinite(loss_sum).item():
                break
        mean_loss = loss_sum.item() / max(n_steps, 1)  # synchronises: the timing is honest
        train_seconds += time.perf_counter() - start
        if not math.isfinite(mean_loss):
            diverged_reason = (
                f"non-finite training loss in epoch {epoch} (step {n_steps}/{steps_per_epoch}): "
                f"the recipe diverged ({recipe})"
            )
        elif not _all_finite(model):
            diverged_reason = f"non-finite weights after epoch {epoch}: the recipe diverged"
        if diverged_reason is not None:
            epoch_seconds.append(time.perf_counter() - start)
            break
        losses.append(mean_loss)
        accuracy = _evaluate(ema.module if ema is not None else model, val_batches, autocast)
        accuracies.append(accuracy)
        epoch_seconds.append(time.perf_counter() - start)
        if report is not None and report(epoch, accuracy):
            pruned = True
            break

    return TrainResult(
        accuracies=tuple(accuracies),
        train_losses=tuple(losses),
        diverged=diverged_reason is not None,
        diverged_reason=diverged_reason,
        pruned=pruned,
        seconds_per_epoch=sum(epoch_seconds) / len(epoch_seconds),
        images_per_second=images_seen / train_seconds if train_seconds > 0 else 0.0,
        flops=flops,
        params=params,
        model=ema.module if ema is not None else model,
    )


# --------------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------------


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
        if not (isinstance(epochs, int) and epochs >= 1):
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}.")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
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

        result = train_candidate(
            candidate, data, epochs=self.epochs, batch_size=self.batch_size,
            device=self.device, seed=self.seed + trial.number, report=report,
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
