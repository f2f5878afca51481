"""What a :class:`~optuna_nars.candidate.Recipe` turns into: the optimizer and its parameter
groups, the learning-rate schedule, the loss, mixup and the EMA of the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.transforms import v2

from optuna_nars.candidate import OPTIMIZERS, Recipe

__all__ = ["RecipeTools", "check_optimizer", "default_ema_decay", "recipe_tools"]

# The LR warm-up starts at this fraction of the peak LR.
_WARMUP_START = 0.01


def _unknown_optimizer(name: str) -> ValueError:
    return ValueError(f"Unknown optimizer {name!r}; choose one of {OPTIMIZERS}.")


def check_optimizer(recipe: Recipe) -> None:
    """Raise ``ValueError`` for an optimizer this trainer does not know."""
    if recipe.optimizer not in OPTIMIZERS:
        raise _unknown_optimizer(recipe.optimizer)


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
    raise _unknown_optimizer(recipe.optimizer)


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


def default_ema_decay(total_steps: int) -> float:
    """EMA decay averaging over roughly the last tenth of a run of ``total_steps``."""
    # FBNetV3's 0.9999 suits 400 ImageNet epochs, but would leave a short proxy run's EMA at
    # the initial weights.
    return min(0.9999, max(0.0, 1.0 - 10.0 / total_steps))


@dataclass(frozen=True)
class RecipeTools:
    """The torch objects that train a model with a recipe."""

    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    criterion: nn.Module
    mixup: v2.MixUp | None
    ema: AveragedModel | None


def recipe_tools(
    model: nn.Module,
    recipe: Recipe,
    num_classes: int,
    total_steps: int,
    warmup_fraction: float,
    ema_decay: float | None,
) -> RecipeTools:
    """Build ``recipe``'s optimizer, schedule, loss, mixup and EMA for ``model``."""
    optimizer = _optimizer(model, recipe)
    scheduler = _scheduler(optimizer, total_steps, warmup_fraction)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    mixup = v2.MixUp(alpha=recipe.mixup_alpha, num_classes=num_classes) \
        if recipe.mixup_alpha > 0 else None
    ema = None
    if recipe.ema:
        decay = default_ema_decay(total_steps) if ema_decay is None else ema_decay
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    return RecipeTools(optimizer, scheduler, criterion, mixup, ema)
