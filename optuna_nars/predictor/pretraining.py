"""Stage 1: pretraining the architecture encoder on free labels, and its process-wide cache.

The labels cost nothing: the cost model's log FLOPs and log parameters of sampled architectures
(:func:`proxy_targets`, :func:`pretraining_data`). :func:`train_encoder` fits one encoder and a
linear proxy head on them; the result, a :class:`PretrainedEncoder`, is memoised by
:func:`pretrained_state`, so every predictor of a process pretrains once per space and seed;
:func:`encoder_to_bytes` / :func:`encoder_from_bytes` carry it between processes as tensors
(``torch.save``, read back with ``torch.load(weights_only=True)`` and checked: never a pickle).
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import optuna
import torch
from torch import nn

from optuna_nars.cost import space_costs
from optuna_nars.predictor._plumbing import (
    FusedAdamW,
    cosine_lrs,
    epoch_batches,
    to_tensor,
    torch_threads,
)
from optuna_nars.predictor.network import AccuracyPredictor

if TYPE_CHECKING:
    from optuna_nars.space import ParamSpace, SearchSpace

__all__ = [
    "PretrainedEncoder",
    "clear_pretrain_cache",
    "encode_split",
    "encoder_from_bytes",
    "encoder_to_bytes",
    "fingerprint",
    "pretrained_state",
    "pretraining_data",
    "proxy_targets",
    "train_encoder",
]

_logger = optuna.logging.get_logger("optuna." + __name__)

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class PretrainedEncoder:
    """The result of stage-1 pretraining: encoder + proxy-head weights and target scaling.

    Treated as immutable: members copy the weights before fine-tuning, so one object can be
    shared by many predictors (and sit in the module cache).
    """

    arch_dim: int
    n_proxy: int
    hidden: int
    embedding_dim: int
    state: dict[str, torch.Tensor] = field(repr=False)
    proxy_mean: np.ndarray = field(repr=False)
    proxy_std: np.ndarray = field(repr=False)
    losses: tuple[float, ...] = field(repr=False)
    """Mean standardised proxy MSE per epoch (the first entry is the loss before training)."""


# ---- as bytes, between processes ---------------------------------------------------------------

_BYTES_FORMAT = 1


def encoder_to_bytes(encoder: PretrainedEncoder) -> bytes:
    """``encoder`` as ``torch.save`` bytes of plain tensors (read by :func:`encoder_from_bytes`)."""
    data = {
        "format": torch.tensor(_BYTES_FORMAT),
        "dims": torch.tensor([encoder.arch_dim, encoder.n_proxy, encoder.hidden,
                              encoder.embedding_dim]),
        "state": encoder.state,
        # float64, as computed: a worker reading them fits exactly as the one that pretrained.
        "proxy_mean": torch.from_numpy(np.asarray(encoder.proxy_mean, dtype=np.float64)),
        "proxy_std": torch.from_numpy(np.asarray(encoder.proxy_std, dtype=np.float64)),
        "losses": torch.tensor(encoder.losses, dtype=torch.float64),
    }
    buffer = io.BytesIO()
    torch.save(data, buffer)
    return buffer.getvalue()


def encoder_from_bytes(
    data: bytes, *, arch_dim: int, n_proxy: int, hidden: int, embedding_dim: int
) -> PretrainedEncoder:
    """The encoder saved in ``data`` by :func:`encoder_to_bytes`, if it has the given shape.

    ``torch.load(weights_only=True)`` reads tensors and plain containers only, so foreign bytes
    (a pickle of arbitrary objects included) cannot run code; they are rejected.

    Raises:
        ValueError: If ``data`` is not such an encoder, or one of other dimensions, names,
            shapes or with non-finite weights.
    """
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # whatever torch raises on bytes that are not a weights file
        raise ValueError(f"not a saved encoder ({type(e).__name__}: {e})") from None
    if not isinstance(loaded, dict) or not _is_tensor(loaded.get("format"), ()) \
            or int(loaded["format"]) != _BYTES_FORMAT:
        raise ValueError("not a saved encoder of this format")
    dims = [arch_dim, n_proxy, hidden, embedding_dim]
    if not _is_tensor(loaded.get("dims"), (4,)) or loaded["dims"].tolist() != dims:
        raise ValueError(f"an encoder of other dimensions than {dims}")
    reference = AccuracyPredictor(arch_dim, 0, n_proxy, hidden=hidden,
                                  embedding_dim=embedding_dim).state_dict()
    state = loaded.get("state")
    if not isinstance(state, dict) or set(state) != set(reference) or not all(
        _is_tensor(state[k], tuple(v.shape), v.dtype) for k, v in reference.items()
    ):
        raise ValueError("the encoder's weights do not fit this predictor's network")
    vectors = {k: loaded.get(k) for k in ("proxy_mean", "proxy_std")}
    if not all(_is_tensor(v, (n_proxy,), torch.float64) for v in vectors.values()) \
            or not _is_tensor(loaded.get("losses"), None, torch.float64):
        raise ValueError("the encoder's proxy scaling is malformed")
    return PretrainedEncoder(
        arch_dim=arch_dim, n_proxy=n_proxy, hidden=hidden, embedding_dim=embedding_dim,
        state={k: v.clone() for k, v in state.items()},
        proxy_mean=vectors["proxy_mean"].numpy().copy(),
        proxy_std=vectors["proxy_std"].numpy().copy(),
        losses=tuple(loaded["losses"].tolist()),
    )


def _is_tensor(
    value: Any, shape: tuple[int, ...] | None, dtype: torch.dtype | None = None
) -> bool:
    """Whether ``value`` is a finite tensor of ``shape`` (any when ``None``) and ``dtype``."""
    return (
        isinstance(value, torch.Tensor)
        and (shape is None or tuple(value.shape) == shape)
        and (dtype is None or value.dtype == dtype)
        and (not value.is_floating_point() or bool(torch.isfinite(value).all()))
    )


# ---- the cache ---------------------------------------------------------------------------

_CACHE_SIZE = 16
_cache: OrderedDict[Hashable, Any] = OrderedDict()
_cache_lock = threading.Lock()


def pretrained_state(key: Hashable, fn: Callable[[], T]) -> T:
    """Return the value cached under ``key``, computing it with ``fn()`` on a miss.

    A small in-memory LRU shared by every predictor in the process, so a sampler (or many
    studies in one process) pretrains an encoder once per space and seed. Values must be
    treated as read-only.
    """
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = fn()  # Outside the lock: pretraining takes seconds; a rare duplicate is harmless.
    with _cache_lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def clear_pretrain_cache() -> None:
    """Empty the module-level pretraining cache."""
    with _cache_lock:
        _cache.clear()


def fingerprint(*arrays: np.ndarray) -> str:
    """A hash of the arrays' shapes and float64 values: the data part of a cache key."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ---- inputs and free labels from a search space ------------------------------------------


def encode_split(param_space: ParamSpace, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(arch_x, recipe_x)``: the predictor inputs of a values matrix."""
    return (
        param_space.encode(values, "architecture"),
        param_space.encode(values, "recipe"),
    )


def proxy_targets(space: SearchSpace, values: np.ndarray) -> np.ndarray:
    """Free pretraining labels of a values matrix: ``[log FLOPs, log params]`` per row."""
    c = space_costs(space, values)
    return np.column_stack(
        [np.log(np.maximum(c["flops"], 1.0)), np.log(np.maximum(c["params"], 1.0))]
    )


def pretraining_data(
    space: SearchSpace, n_samples: int = 4096, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(arch_x, proxy_y)`` for :meth:`NARSPredictor.pretrain`: ``n_samples`` Sobol points of
    ``space`` labelled by the cost model (log FLOPs, log params)."""
    values = space.sample_values(n_samples, seed=seed)
    return space.param_space.encode(values, "architecture"), proxy_targets(space, values)


# ---- the training loop -------------------------------------------------------------------


def train_encoder(
    arch_x: np.ndarray,
    proxy_y: np.ndarray,
    *,
    hidden: int,
    embedding_dim: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    n_threads: int | None,
) -> PretrainedEncoder:
    """Fit one encoder + proxy head on checked ``(arch_x, proxy_y)`` (MSE on standardised
    targets, AdamW with cosine decay); the arguments are :class:`NARSPredictor`'s."""
    mean = proxy_y.mean(axis=0)
    std = proxy_y.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    x = to_tensor(arch_x)
    t = to_tensor((proxy_y - mean) / std)
    n = len(x)
    model = AccuracyPredictor(
        x.shape[1], 0, t.shape[1], hidden=hidden, embedding_dim=embedding_dim, seed=seed
    )
    generator = torch.Generator().manual_seed(seed)
    params = model.encoder_parameters() + list(model.proxy_head.parameters())
    with torch_threads(n_threads):
        opt = FusedAdamW(params, lr, weight_decay)
        # Cosine decay: the proxy labels are noiseless, so a low final loss is reachable.
        lrs = iter(cosine_lrs(lr, epochs * math.ceil(n / batch_size)))
        with torch.no_grad():
            losses = [float(nn.functional.mse_loss(model.proxy(x)[0], t))]
        for _ in range(epochs):
            total = 0.0
            for idx in epoch_batches(1, n, batch_size, generator):
                loss = nn.functional.mse_loss(model.proxy(x[idx]), t[idx])
                opt.zero_grad()
                loss.backward()
                opt.lr = next(lrs)
                opt.step()
                total += loss.item() * idx.shape[1]
            losses.append(total / n)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    _logger.debug(
        f"Pretrained the encoder on {n} architectures: proxy MSE {losses[0]:.3f} -> "
        f"{losses[-1]:.4f}."
    )
    return PretrainedEncoder(
        arch_dim=x.shape[1],
        n_proxy=t.shape[1],
        hidden=hidden,
        embedding_dim=embedding_dim,
        state=state,
        proxy_mean=mean,
        proxy_std=std,
        losses=tuple(losses),
    )
