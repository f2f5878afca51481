"""Input checks and torch plumbing shared by the estimator, stage-1 pretraining and the metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


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


def adamw(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, with the fused CPU kernel where torch has it."""
    # The fused kernel does one pass over all parameters: a large share of a tiny step.
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - older torch builds
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
