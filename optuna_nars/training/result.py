"""What training a candidate returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

__all__ = ["TrainResult"]


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`~optuna_nars.training.train_candidate`.

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
        """How many epochs were trained and evaluated."""
        return len(self.accuracies)
