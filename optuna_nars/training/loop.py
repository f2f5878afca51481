"""The epoch loop of a training run: train, check for divergence, evaluate, report.

A :class:`TrainingRun` holds what a run trains with; :func:`run_epochs` drives it epoch by
epoch and records a :class:`Progress`, which becomes the
:class:`~optuna_nars.training.TrainResult`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from optuna_nars.candidate import Recipe
from optuna_nars.training.batches import DeviceBatches
from optuna_nars.training.device import DeviceSettings
from optuna_nars.training.recipe import RecipeTools
from optuna_nars.training.result import TrainResult

__all__ = ["Progress", "TrainingRun", "evaluate", "run_epochs"]


@dataclass(frozen=True)
class TrainingRun:
    """A model with everything it trains and is evaluated with."""

    model: nn.Module
    recipe: Recipe
    tools: RecipeTools
    scaler: torch.amp.GradScaler | None
    settings: DeviceSettings
    train_batches: DeviceBatches
    val_batches: DeviceBatches

    @property
    def evaluated_model(self) -> nn.Module:
        """The network evaluated and returned: the EMA average with ``recipe.ema``."""
        return self.tools.ema.module if self.tools.ema is not None else self.model


@dataclass
class Progress:
    """What a run has done so far."""

    accuracies: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    images_seen: int = 0
    diverged_reason: str | None = None
    pruned: bool = False

    def result(self, flops: int, params: int, model: nn.Module) -> TrainResult:
        """The finished run as a :class:`~optuna_nars.training.TrainResult`."""
        return TrainResult(
            accuracies=tuple(self.accuracies),
            train_losses=tuple(self.losses),
            diverged=self.diverged_reason is not None,
            diverged_reason=self.diverged_reason,
            pruned=self.pruned,
            seconds_per_epoch=sum(self.epoch_seconds) / len(self.epoch_seconds),
            images_per_second=(self.images_seen / self.train_seconds
                               if self.train_seconds > 0 else 0.0),
            flops=flops,
            params=params,
            model=model,
        )


def _train_one_epoch(run: TrainingRun, progress: Progress) -> tuple[float, int]:
    """One pass over the training batches: (mean loss, steps taken). Stops early at a
    non-finite loss."""
    model, tools, scaler = run.model, run.tools, run.scaler
    model.train()
    loss_sum = torch.zeros((), device=run.settings.device)
    n_steps = 0
    for x, y in run.train_batches:
        if tools.mixup is not None:
            x, y = tools.mixup(x, y)
        with run.settings.autocast():
            loss = tools.criterion(model(x), y)
        tools.optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            tools.optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(tools.optimizer)
            scaler.update()
        tools.scheduler.step()
        if tools.ema is not None:
            tools.ema.update_parameters(model)
        loss_sum += loss.detach()
        n_steps += 1
        progress.images_seen += len(y)
        if n_steps % run.settings.check_every == 0 and not torch.isfinite(loss_sum).item():
            break
    return loss_sum.item() / max(n_steps, 1), n_steps  # synchronises: the timing is honest


def _all_finite(model: nn.Module) -> bool:
    return bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())


def _divergence(run: TrainingRun, epoch: int, mean_loss: float, n_steps: int) -> str | None:
    """Why the run diverged in ``epoch`` (``None`` if it did not)."""
    if not math.isfinite(mean_loss):
        return (
            f"non-finite training loss in epoch {epoch} (step {n_steps}/"
            f"{len(run.train_batches)}): the recipe diverged ({run.recipe})"
        )
    if not _all_finite(run.model):
        return f"non-finite weights after epoch {epoch}: the recipe diverged"
    return None


@torch.inference_mode()
def evaluate(model: nn.Module, batches: DeviceBatches, settings: DeviceSettings) -> float:
    """Top-1 accuracy of ``model`` over ``batches``."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=batches.device)
    for x, y in batches:
        with settings.autocast():
            logits = model(x)
        correct += (logits.argmax(dim=1) == y).sum()
    return correct.item() / max(batches.n, 1)


def run_epochs(
    run: TrainingRun, epochs: int, report: Callable[[int, float], bool] | None
) -> Progress:
    """Train and evaluate epoch by epoch until ``epochs``, divergence, or ``report`` returns
    True. A diverging epoch is neither evaluated nor reported."""
    progress = Progress()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        mean_loss, n_steps = _train_one_epoch(run, progress)
        progress.train_seconds += time.perf_counter() - start
        progress.diverged_reason = _divergence(run, epoch, mean_loss, n_steps)
        if progress.diverged_reason is not None:
            progress.epoch_seconds.append(time.perf_counter() - start)
            break
        progress.losses.append(mean_loss)
        accuracy = evaluate(run.evaluated_model, run.val_batches, run.settings)
        progress.accuracies.append(accuracy)
        progress.epoch_seconds.append(time.perf_counter() - start)
        if report is not None and report(epoch, accuracy):
            progress.pruned = True
            break
    return progress
