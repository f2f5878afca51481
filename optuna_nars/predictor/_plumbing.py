"""Input checks and torch plumbing shared by the estimator, stage-1 pretraining and the metrics."""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam as adam_update


def as_2d(name: str, x: np.ndarray | None, n: int | None = None) -> np.ndarray:
    """``x`` as a finite float matrix (rows x features); with ``n``, of ``n`` rows.

    ``None`` stands for zero columns (when ``n`` is known); a 1-d array is one column, or one
    row when ``n`` says so.
    """
    if x is None:
        if n is None:
            raise ValueError(f"{name} is required.")
        return np.zeros((n, 0))
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None] if n is None or len(x) == n else x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (rows x features), got shape {x.shape}.")
    if n is not None and len(x) != n:
        raise ValueError(f"{name} has {len(x)} rows, expected {n} (one per sample).")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values; drop or impute those rows.")
    return x


# torch's intra-op thread count is process-wide: the threads of one process that train or predict
# at once share one cap. The first to enter sets it, the last to leave restores it.
_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = 0


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily cap torch's intra-op threads: these matmuls are tiny, so extra threads only
    add synchronisation (and fight other processes for the cores).

    Safe from several threads at once: while any of them is inside, the cap of the first one
    holds; the count from before is restored when the last one leaves.
    """
    global _threads_users, _threads_before
    if n is None:
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(min(n, _threads_before))
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """A float32 tensor of ``x`` (shares memory when ``x`` already is contiguous float32)."""
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)


def epoch_batches(
    n_members: int, n: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """One epoch of mini-batch row indices, ``(n_members, b)`` each: every member sees its own
    shuffle (one full batch when ``n <= batch_size``)."""
    perm = torch.argsort(torch.rand(n_members, n, generator=generator), dim=1)
    return perm.split(batch_size, dim=1)


class FusedAdamW:
    """AdamW for the predictor's training loops: torch's own update (``torch.optim.adam.adam``,
    fused kernel, decoupled weight decay), with its state kept here; ``lr`` may be changed
    between steps (pretraining's :func:`cosine_lrs`).

    Why not ``torch.optim.AdamW``: constructing any ``torch.optim.Optimizer`` imports
    ``torch._dynamo`` (about 1 s of CPU, once per process), which every worker of a study whose
    objective never touches ``torch.optim`` would pay at its first fit. The functional update
    needs no import; its steps are bit for bit those of ``torch.optim.AdamW(fused=True)``. On
    torch builds whose functional update has no decoupled weight decay, it steps a
    ``torch.optim.AdamW`` instead.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float) -> None:
        self.params, self.lr, self.weight_decay = list(params), lr, weight_decay
        self._state: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._fallback = None if _FUNCTIONAL_ADAMW else _torch_adamw(self.params, lr, weight_decay)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        if self._fallback is not None:  # pragma: no cover - older torch builds
            for group in self._fallback.param_groups:
                group["lr"] = self.lr
            self._fallback.step()
            return
        live = [p for p in self.params if p.grad is not None]
        for p in live:  # lazily, as torch.optim does: (step, first moment, second moment)
            if id(p) not in self._state:
                self._state[id(p)] = (
                    torch.zeros((), dtype=torch.float32, device=p.device),
                    torch.zeros_like(p, memory_format=torch.preserve_format),
                    torch.zeros_like(p, memory_format=torch.preserve_format),
                )
        state = [self._state[id(p)] for p in live]
        adam_update(
            live, [p.grad for p in live], [s[1] for s in state], [s[2] for s in state], [],
            [s[0] for s in state], fused=True, decoupled_weight_decay=True, amsgrad=False,
            beta1=0.9, beta2=0.999, lr=self.lr, weight_decay=self.weight_decay, eps=1e-8,
            maximize=False,
        )


_FUNCTIONAL_ADAMW = "decoupled_weight_decay" in inspect.signature(adam_update).parameters


def _torch_adamw(params: list[nn.Parameter], lr: float, weight_decay: float
                 ) -> torch.optim.Optimizer:  # pragma: no cover - older torch builds
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def cosine_lrs(lr: float, steps: int) -> list[float]:
    """The learning rate of each of ``steps`` steps under cosine decay from ``lr`` to 0: the
    values ``torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)`` gives, computed by
    its own recurrence so that they match it to the bit (a scheduler needs a
    ``torch.optim.Optimizer``; see :class:`FusedAdamW`)."""
    out = [lr]
    # Written as torch writes it, eta_min (0 here) included: the same operations, the same bits.
    for epoch in range(1, steps):
        out.append((1 + math.cos(math.pi * epoch / steps))
                   / (1 + math.cos(math.pi * (epoch - 1) / steps)) * (out[-1] - 0.0) + 0.0)
    return out
