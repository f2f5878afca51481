"""FBNetV3's accuracy predictor: an MLP whose architecture encoder is pretrained on free labels.

The predictor (Dai et al., CVPR 2021, section 3) has three parts:

* an *architecture encoder*, the architecture's encoding (one-hot choices, min-max ranges) ->
  an embedding;
* a *proxy head*, embedding -> architecture statistics that cost nothing to compute (log FLOPs,
  log parameters); it exists only to pretrain the encoder;
* an *accuracy head* on ``concat(embedding, recipe encoding)`` -> accuracy.

:class:`NARSPredictor` fits an ensemble of such networks: :meth:`~NARSPredictor.pretrain` fits
one encoder + proxy head on a few thousand architectures labelled by the cost model (done once,
memoised in a module-level cache), and :meth:`~NARSPredictor.fit` fine-tunes every member on the
measured results with a Huber loss, first with the encoder frozen, then all layers.
:meth:`~NARSPredictor.predict` returns the ensemble mean and standard deviation.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import optuna
import torch
from scipy.stats import kendalltau
from torch import nn

from optuna_nars.cost import space_costs

if TYPE_CHECKING:
    from optuna_nars.space import ParamSpace, SearchSpace

__all__ = [
    "AccuracyPredictor",
    "EnsembleLinear",
    "NARSPredictor",
    "PretrainedEncoder",
    "clear_pretrain_cache",
    "encode_split",
    "kendall_tau_cv",
    "pretrained_state",
    "pretraining_data",
    "proxy_targets",
]

_logger = optuna.logging.get_logger("optuna.optuna_nars.predictor")

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class EnsembleLinear(nn.Module):
    """``n_members`` independent linear layers evaluated in one batched matmul.

    Weights are ``(n_members, in, out)``; inputs ``(n_members, n, in)`` (or ``(n, in)``, shared by
    every member). Training the members of a small ensemble together costs about as much as
    training one: at these sizes a step is dominated by per-op overhead, not arithmetic.
    """

    def __init__(self, n_members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features))

    def reset_member(self, member: int, generator: torch.Generator) -> None:
        """``nn.Linear``'s default initialisation, U(-1/sqrt(in), 1/sqrt(in)), for one member."""
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        with torch.no_grad():
            self.weight[member].uniform_(-bound, bound, generator=generator)
            self.bias[member].uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return torch.matmul(x, self.weight) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)


class AccuracyPredictor(nn.Module):
    """FBNetV3's predictor: encoder -> embedding; proxy head; accuracy head.

    The module holds ``n_members`` independent networks (an ensemble) evaluated together; every
    output has a leading member axis. With ``n_members=1`` it is one plain MLP.

    Args:
        arch_dim: Width of the architecture encoding (0 allowed: the embedding is then empty).
        recipe_dim: Width of the recipe encoding (0 allowed).
        n_proxy: Number of proxy targets (0 allowed: no proxy head).
        hidden: Width of the hidden layers of the encoder and of the accuracy head.
        embedding_dim: Width of the architecture embedding.
        n_members: Number of independent networks.
        seed: Member ``i`` is initialised from ``torch.Generator().manual_seed(seed + i)``.
    """

    def __init__(
        self,
        arch_dim: int,
        recipe_dim: int = 0,
        n_proxy: int = 0,
        *,
        hidden: int = 128,
        embedding_dim: int = 64,
        n_members: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if arch_dim < 0 or recipe_dim < 0 or n_proxy < 0 or arch_dim + recipe_dim == 0:
            raise ValueError(
                f"arch_dim={arch_dim}, recipe_dim={recipe_dim}, n_proxy={n_proxy}: widths must be "
                ">= 0 and the predictor needs some input (a free parameter in the space)."
            )
        self.arch_dim = int(arch_dim)
        self.recipe_dim = int(recipe_dim)
        self.n_proxy = int(n_proxy) if arch_dim > 0 else 0
        self.n_members = int(n_members)
        self.embedding_dim = int(embedding_dim) if arch_dim > 0 else 0
        m = self.n_members
        self.encoder: nn.Sequential | None = None
        if arch_dim > 0:
            self.encoder = nn.Sequential(
                EnsembleLinear(m, arch_dim, hidden),
                nn.GELU(),
                EnsembleLinear(m, hidden, self.embedding_dim),
                nn.GELU(),
            )
        # A linear proxy head keeps the statistics' information in the embedding itself.
        self.proxy_head = EnsembleLinear(m, self.embedding_dim, n_proxy) if self.n_proxy else None
        self.accuracy_head = nn.Sequential(
            EnsembleLinear(m, self.embedding_dim + recipe_dim, hidden),
            nn.GELU(),
            EnsembleLinear(m, hidden, 1),
        )
        layers = [mod for mod in self.modules() if isinstance(mod, EnsembleLinear)]
        for i in range(m):
            generator = torch.Generator().manual_seed(seed + i)
            for layer in layers:
                layer.reset_member(i, generator)

    def embed(self, arch_x: torch.Tensor) -> torch.Tensor:
        """The architecture embedding, ``(n_members, n, embedding_dim)``."""
        if self.encoder is None:
            return arch_x.new_zeros((self.n_members, arch_x.shape[-2], 0))
        return self.encoder(arch_x).expand(self.n_members, -1, -1)

    def proxy(self, arch_x: torch.Tensor) -> torch.Tensor:
        """Predicted (standardised) proxy targets, ``(n_members, n, n_proxy)``."""
        if self.proxy_head is None:
            raise RuntimeError("This predictor has no proxy head (n_proxy=0 or no architecture).")
        return self.proxy_head(self.embed(arch_x))

    def head(self, embedding: torch.Tensor, recipe_x: torch.Tensor | None = None) -> torch.Tensor:
        """The accuracy head on given embeddings, ``(n_members, n)``."""
        if recipe_x is not None and recipe_x.shape[-1] > 0:
            if recipe_x.dim() == 2:
                recipe_x = recipe_x.expand(self.n_members, -1, -1)
            embedding = torch.cat([embedding, recipe_x], dim=-1)
        return self.accuracy_head(embedding).squeeze(-1)

    def forward(self, arch_x: torch.Tensor, recipe_x: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted (standardised) accuracy of every member, ``(n_members, n)``.

        Inputs are ``(n, width)`` (shared by the members) or ``(n_members, n, width)``.
        """
        return self.head(self.embed(arch_x), recipe_x)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [] if self.encoder is None else list(self.encoder.parameters())

    def load_pretrained(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a (single-member) pretrained encoder and proxy head into every member."""
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.startswith(("encoder.", "proxy_head.")):
                    param.copy_(state[name].expand_as(param))


# --------------------------------------------------------------------------------------------
# Pretraining cache
# --------------------------------------------------------------------------------------------


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


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Helpers for spaces
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Argument checks and torch plumbing
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int, example: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}, got {value!r}; use e.g. {name}={example}."
        )
    return int(value)


def _check_float(name: str, value: Any, *, positive: bool, example: float) -> float:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value)) and (value > 0 if positive else value >= 0)
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(
            f"{name} must be a finite number {bound}, got {value!r}; use e.g. {name}={example}."
        )
    return float(value)


def _as_2d(name: str, x: np.ndarray | None, n: int | None = None) -> np.ndarray:
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


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Temporarily cap torch's intra-op threads: these matmuls are tiny, so extra threads only
    add synchronisation (and fight other processes for the cores)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(min(n, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)


def _epoch_batches(
    n_members: int, n: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """One epoch of mini-batch row indices, ``(n_members, b)`` each: every member sees its own
    shuffle (one full batch when ``n <= batch_size``)."""
    perm = torch.argsort(torch.rand(n_members, n, generator=generator), dim=1)
    return perm.split(batch_size, dim=1)


def _adamw(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    # The fused CPU kernel does one pass over all parameters: a large share of a tiny step.
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - older torch builds
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


# --------------------------------------------------------------------------------------------
# The ensemble
# --------------------------------------------------------------------------------------------


class NARSPredictor:
    """An ensemble of FBNetV3 accuracy predictors, fitted the FBNetV3 way (sklearn-like).

    Args:
        n_members: Ensemble size; the spread of the members' predictions is the uncertainty.
        hidden: Hidden width of the encoder and the accuracy head.
        embedding_dim: Width of the architecture embedding.
        pretrain_epochs: Epochs of stage-1 pretraining (encoder + proxy head).
        frozen_epochs: Fine-tuning epochs with the pretrained encoder frozen (paper: 50).
        finetune_epochs: Fine-tuning epochs of the whole network afterwards (paper: 50). Without
            pretraining there is nothing to freeze: all layers train for
            ``frozen_epochs + finetune_epochs``.
        lr: AdamW learning rate (pretraining and fine-tuning).
        weight_decay: AdamW weight decay.
        huber_delta: Huber-loss threshold on standardised accuracies.
        batch_size: Fine-tuning mini-batch size (full batch when there are fewer samples); the
            epochs are fixed, so a refit costs ``O(n)``.
        pretrain_batch_size: Pretraining mini-batch size.
        seed: Seed of pretraining; ensemble member ``i`` starts from ``seed + i``.
        n_threads: Cap on torch's intra-op threads while training and predicting (restored
            afterwards); ``None`` leaves torch's setting alone.
    """

    def __init__(
        self,
        n_members: int = 4,
        *,
        hidden: int = 128,
        embedding_dim: int = 64,
        pretrain_epochs: int = 60,
        frozen_epochs: int = 50,
        finetune_epochs: int = 50,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        huber_delta: float = 1.0,
        batch_size: int = 64,
        pretrain_batch_size: int = 512,
        seed: int = 0,
        n_threads: int | None = 1,
    ) -> None:
        self.n_members = _check_int("n_members", n_members, 1, 4)
        self.hidden = _check_int("hidden", hidden, 1, 128)
        self.embedding_dim = _check_int("embedding_dim", embedding_dim, 1, 64)
        self.pretrain_epochs = _check_int("pretrain_epochs", pretrain_epochs, 1, 60)
        self.frozen_epochs = _check_int("frozen_epochs", frozen_epochs, 0, 50)
        self.finetune_epochs = _check_int("finetune_epochs", finetune_epochs, 0, 50)
        if self.frozen_epochs + self.finetune_epochs == 0:
            raise ValueError(
                "frozen_epochs + finetune_epochs is 0: the accuracy head would never train; "
                "use e.g. frozen_epochs=50, finetune_epochs=50."
            )
        self.lr = _check_float("lr", lr, positive=True, example=3e-3)
        self.weight_decay = _check_float("weight_decay", weight_decay, positive=False, example=1e-4)
        self.huber_delta = _check_float("huber_delta", huber_delta, positive=True, example=1.0)
        self.batch_size = _check_int("batch_size", batch_size, 1, 64)
        self.pretrain_batch_size = _check_int("pretrain_batch_size", pretrain_batch_size, 1, 512)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}; use e.g. seed=0.")
        self.seed = int(seed)
        if n_threads is not None:
            n_threads = _check_int("n_threads", n_threads, 1, 1)
        self.n_threads = n_threads

        self.pretrained_: PretrainedEncoder | None = None
        self.pretrain_cached_: bool = False
        self.model_: AccuracyPredictor | None = None
        self.y_mean_: float = 0.0
        self.y_std_: float = 1.0

    # ---- configuration ------------------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (sklearn style)."""
        names = (
            "n_members", "hidden", "embedding_dim", "pretrain_epochs", "frozen_epochs",
            "finetune_epochs", "lr", "weight_decay", "huber_delta", "batch_size",
            "pretrain_batch_size", "seed", "n_threads",
        )
        return {name: getattr(self, name) for name in names}

    def clone(self, **changes: Any) -> NARSPredictor:
        """An unfitted copy with the same arguments and the same pretrained encoder."""
        other = NARSPredictor(**{**self.get_params(), **changes})
        other.pretrained_ = self.pretrained_
        return other

    @property
    def is_pretrained(self) -> bool:
        return self.pretrained_ is not None

    @property
    def is_fitted(self) -> bool:
        return self.model_ is not None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"NARSPredictor({args})"

    # ---- stage 1: pretraining -----------------------------------------------------------

    def pretrain(self, arch_x: np.ndarray, proxy_y: np.ndarray) -> NARSPredictor:
        """Fit the encoder and the proxy head on free labels (stage 1).

        Args:
            arch_x: Architecture encodings, ``(n, arch_dim)``
                (``param_space.encode(values, "architecture")``).
            proxy_y: Proxy targets, ``(n, n_proxy)``, e.g. log FLOPs and log params
                (:func:`proxy_targets`); standardised internally.

        The result is memoised in a module-level cache (:func:`pretrained_state`) keyed by a
        hash of the data and the arguments that shape it, so a second predictor, a clone or a
        new study on the same space reuses it; ``pretrain_cached_`` tells whether it did.
        """
        arch_x = _as_2d("arch_x", arch_x)
        proxy_y = _as_2d("proxy_y", proxy_y, len(arch_x))
        if arch_x.shape[1] == 0:
            raise ValueError(
                "arch_x has no columns: there is no architecture to pretrain; skip pretrain()."
            )
        if proxy_y.shape[1] == 0:
            raise ValueError(
                "proxy_y has no columns: nothing to pretrain on; skip pretrain() or pass proxy "
                "targets such as proxy_targets(space, values)."
            )
        if len(arch_x) < 2:
            raise ValueError(f"pretrain needs at least 2 samples, got {len(arch_x)}.")
        key = (
            "nars-pretrain",
            _fingerprint(arch_x, proxy_y),
            self.hidden,
            self.embedding_dim,
            self.pretrain_epochs,
            self.lr,
            self.weight_decay,
            self.pretrain_batch_size,
            self.seed,
        )
        hit = True

        def compute() -> PretrainedEncoder:
            nonlocal hit
            hit = False
            return self._pretrain(arch_x, proxy_y)

        self.pretrained_ = pretrained_state(key, compute)
        self.pretrain_cached_ = hit
        return self

    def _pretrain(self, arch_x: np.ndarray, proxy_y: np.ndarray) -> PretrainedEncoder:
        mean = proxy_y.mean(axis=0)
        std = proxy_y.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        x = _tensor(arch_x)
        t = _tensor((proxy_y - mean) / std)
        n = len(x)
        model = AccuracyPredictor(
            x.shape[1], 0, t.shape[1],
            hidden=self.hidden, embedding_dim=self.embedding_dim, n_members=1, seed=self.seed,
        )
        generator = torch.Generator().manual_seed(self.seed)
        params = model.encoder_parameters() + list(model.proxy_head.parameters())
        with _threads(self.n_threads):
            opt = _adamw(params, self.lr, self.weight_decay)
            steps = self.pretrain_epochs * math.ceil(n / self.pretrain_batch_size)
            # Cosine decay: the proxy labels are noiseless, so a low final loss is reachable.
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
            with torch.no_grad():
                losses = [float(nn.functional.mse_loss(model.proxy(x)[0], t))]
            for _ in range(self.pretrain_epochs):
                total = 0.0
                for idx in _epoch_batches(1, n, self.pretrain_batch_size, generator):
                    loss = nn.functional.mse_loss(model.proxy(x[idx]), t[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
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
            hidden=self.hidden,
            embedding_dim=self.embedding_dim,
            state=state,
            proxy_mean=mean,
            proxy_std=std,
            losses=tuple(losses),
        )

    def proxy_loss(self, arch_x: np.ndarray, proxy_y: np.ndarray) -> float:
        """Standardised MSE of the pretrained proxy head on ``(arch_x, proxy_y)`` (e.g. a
        held-out check of pretraining)."""
        pre = self.pretrained_
        if pre is None:
            raise RuntimeError("The predictor is not pretrained; call pretrain() first.")
        arch_x = _as_2d("arch_x", arch_x)
        proxy_y = _as_2d("proxy_y", proxy_y, len(arch_x))
        model = self._new_model(pre.arch_dim, 0, n_members=1)
        with _threads(self.n_threads), torch.inference_mode():
            pred = model.proxy(_tensor(arch_x))[0].double().numpy()
        return float(np.mean((pred - (proxy_y - pre.proxy_mean) / pre.proxy_std) ** 2))

    def _new_model(self, arch_dim: int, recipe_dim: int, n_members: int) -> AccuracyPredictor:
        pre = self.pretrained_
        model = AccuracyPredictor(
            arch_dim,
            recipe_dim,
            pre.n_proxy if pre is not None else 0,
            hidden=self.hidden,
            embedding_dim=self.embedding_dim,
            n_members=n_members,
            seed=self.seed,
        )
        if pre is not None:
            model.load_pretrained(pre.state)
        return model

    # ---- stage 2: fine-tuning -----------------------------------------------------------

    def fit(
        self, arch_x: np.ndarray, recipe_x: np.ndarray | None, y: np.ndarray
    ) -> NARSPredictor:
        """Fine-tune the ensemble on measured results.

        Args:
            arch_x: Architecture encodings, ``(n, arch_dim)``.
            recipe_x: Recipe encodings, ``(n, recipe_dim)``; ``None`` or zero columns when the
                space has no recipe part.
            y: Measured accuracies (any scale; standardised internally), ``(n,)``.

        Every member starts from the pretrained encoder (when :meth:`pretrain` ran) and a fresh
        accuracy head initialised from its own seed; it trains the head with the encoder frozen,
        then every layer, on its own shuffles of the data (Huber loss). Refitting replaces the
        previous fit.
        """
        y = np.asarray(y, dtype=float).reshape(-1)
        if len(y) < 1:
            raise ValueError("fit needs at least 1 sample, got 0.")
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite values; drop those samples.")
        arch_x = _as_2d("arch_x", arch_x, len(y))
        recipe_x = _as_2d("recipe_x", recipe_x, len(y))
        pre = self.pretrained_
        if pre is not None and arch_x.shape[1] != pre.arch_dim:
            raise ValueError(
                f"arch_x has {arch_x.shape[1]} columns but the encoder was pretrained on "
                f"{pre.arch_dim}; encode with the same space (or pretrain again)."
            )
        mean, std = float(y.mean()), float(y.std())
        std = std if std > 1e-12 else 1.0
        x, r = _tensor(arch_x), _tensor(recipe_x)
        t = _tensor((y - mean) / std)
        model = self._new_model(x.shape[1], r.shape[1], self.n_members)
        with _threads(self.n_threads):
            self._finetune(model, x, r, t)
        model.eval()
        model.requires_grad_(False)
        self.model_, self.y_mean_, self.y_std_ = model, mean, std
        return self

    def _finetune(
        self, model: AccuracyPredictor, x: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> None:
        n, m = len(t), model.n_members
        generator = torch.Generator().manual_seed(self.seed)
        loss_fn = nn.HuberLoss(reduction="none", delta=self.huber_delta)
        members = torch.arange(m)[:, None]
        head = list(model.accuracy_head.parameters())
        encoder = model.encoder_parameters()
        if self.pretrained_ is not None:
            phases = [(False, self.frozen_epochs), (True, self.finetune_epochs)]
        else:
            # A random encoder is nothing worth freezing: train everything for as long.
            phases = [(True, self.frozen_epochs + self.finetune_epochs)]
        model.train()
        for train_encoder, epochs in phases:
            if epochs == 0:
                continue
            params = head + encoder if train_encoder else head
            model.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            opt = _adamw(params, self.lr, self.weight_decay)
            frozen = None
            if not train_encoder:
                with torch.no_grad():  # The frozen embedding is computed once per phase.
                    frozen = model.embed(x)
            for _ in range(epochs):
                for idx in _epoch_batches(m, n, self.batch_size, generator):
                    emb = frozen[members, idx] if frozen is not None else model.embed(x[idx])
                    pred = model.head(emb, r[idx])
                    # Mean over each member's batch, summed over members: independent gradients.
                    loss = loss_fn(pred, t[idx]).mean(dim=1).sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

    # ---- prediction ----------------------------------------------------------------------

    def predict_members(self, arch_x: np.ndarray, recipe_x: np.ndarray | None) -> np.ndarray:
        """Every member's prediction (original scale), ``(n_members, n)``."""
        model = self.model_
        if model is None:
            raise RuntimeError("The predictor is not fitted; call fit() first.")
        arch_x = _as_2d("arch_x", arch_x)
        recipe_x = _as_2d("recipe_x", recipe_x, len(arch_x))
        if arch_x.shape[1] != model.arch_dim or recipe_x.shape[1] != model.recipe_dim:
            raise ValueError(
                f"Expected {model.arch_dim} architecture and {model.recipe_dim} recipe columns, "
                f"got {arch_x.shape[1]} and {recipe_x.shape[1]}; encode with the fitted space."
            )
        with _threads(self.n_threads), torch.inference_mode():
            out = model(_tensor(arch_x), _tensor(recipe_x)).double().numpy()
        return out * self.y_std_ + self.y_mean_

    def predict(
        self, arch_x: np.ndarray, recipe_x: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and standard deviation of the predicted accuracy, each ``(n,)``."""
        out = self.predict_members(arch_x, recipe_x)
        return out.mean(axis=0), out.std(axis=0)

    def predict_values(
        self, param_space: ParamSpace, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` on a values matrix of ``param_space`` (encoded here), e.g. as the
        score of :func:`~optuna_nars.evolution.adaptive_genetic_search`."""
        return self.predict(*encode_split(param_space, values))

    # ---- quality -------------------------------------------------------------------------

    def kendall_tau_cv(
        self,
        arch_x: np.ndarray,
        recipe_x: np.ndarray | None,
        y: np.ndarray,
        *,
        k: int = 5,
        seed: int | None = None,
    ) -> float:
        """Kendall tau of k-fold out-of-fold predictions; see :func:`kendall_tau_cv`."""
        return kendall_tau_cv(self, arch_x, recipe_x, y, k=k, seed=seed)


def kendall_tau_cv(
    predictor: NARSPredictor,
    arch_x: np.ndarray,
    recipe_x: np.ndarray | None,
    y: np.ndarray,
    *,
    k: int = 5,
    seed: int | None = None,
) -> float:
    """Kendall tau between k-fold out-of-fold predictions and the measured ``y``.

    Every fold is fitted by an unfitted clone of ``predictor`` (same arguments, same pretrained
    encoder); ``predictor`` itself is left unchanged. ``k`` is capped at the number of samples;
    ``seed`` (default: the predictor's) shuffles the folds. Returns NaN with fewer than 4 samples
    or when ``y`` (or the predictions) are constant: there is no ranking to judge.
    """
    y = np.asarray(y, dtype=float).reshape(-1)
    k = _check_int("k", k, 2, 5)
    n = len(y)
    arch_x = _as_2d("arch_x", arch_x, n)
    recipe_x = _as_2d("recipe_x", recipe_x, n)
    if n < 4 or np.ptp(y) == 0:
        return math.nan
    rng = np.random.default_rng(predictor.seed if seed is None else seed)
    folds = np.array_split(rng.permutation(n), min(k, n))
    oof = np.empty(n)
    for test in folds:
        train = np.setdiff1d(np.arange(n), test)
        model = predictor.clone().fit(arch_x[train], recipe_x[train], y[train])
        oof[test] = model.predict(arch_x[test], recipe_x[test])[0]
    if np.ptp(oof) == 0:
        return math.nan
    return float(kendalltau(oof, y).statistic)
