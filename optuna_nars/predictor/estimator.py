"""The estimator: :class:`NARSPredictor`, an ensemble fitted the FBNetV3 way.

:meth:`~NARSPredictor.pretrain` fits the encoder + proxy head once (stage 1, memoised in the
process-wide cache of :mod:`~optuna_nars.predictor.pretraining`); :meth:`~NARSPredictor.fit`
fine-tunes every member on the measured results with a Huber loss, first with the encoder
frozen, then all layers; :meth:`~NARSPredictor.predict` returns the ensemble mean and spread.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from optuna_nars._validation import check_int, check_real
from optuna_nars.predictor._plumbing import (
    FusedAdamW,
    as_2d,
    epoch_batches,
    to_tensor,
    torch_threads,
)
from optuna_nars.predictor.metrics import kendall_tau_cv as _kendall_tau_cv
from optuna_nars.predictor.network import AccuracyPredictor
from optuna_nars.predictor.pretraining import (
    PretrainedEncoder,
    encode_split,
    fingerprint,
    pretrained_state,
    train_encoder,
)

if TYPE_CHECKING:
    from optuna_nars.space import ParamSpace

__all__ = ["NARSPredictor"]

# Rows predicted per forward pass: a whole pool's activations (members x rows x hidden) spill
# out of the cache; in chunks of this many, prediction takes less than half the time.
PREDICT_CHUNK = 1024


def _check_finite(name: str, value: Any, *, positive: bool, example: float) -> float:
    # check_real would word the bound "a number > 0"; these messages always said "a finite
    # number > 0" (and users' code may match it), so only the bound is worded here.
    number = check_real(name, value, example=example)
    if not (number > 0 if positive else number >= 0):
        raise ValueError(f"{name} must be a finite number {'>' if positive else '>='} 0. "
                         f"Got {value!r}. Use e.g. {name}={example!r}.")
    return number


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
        batch_size: Fine-tuning mini-batch size (full batch when there are fewer samples).
        max_batches_per_epoch: Cap on a fine-tuning epoch's mini-batches: with more than
            ``batch_size * max_batches_per_epoch`` samples the batches grow instead, so a refit
            takes at most ``(frozen_epochs + finetune_epochs) * max_batches_per_epoch`` steps
            whatever the number of labels. Faster refits on large label sets, at a cost in
            ranking quality: with 4, held-out Kendall tau on NAS-Bench-201 fell from 0.78 to
            0.72 at 1,024 labels (``benchmarks/predictor_pretraining.py``). ``None`` (default):
            no cap; a refit's steps grow with the labels.
        pretrain_batch_size: Pretraining mini-batch size.
        seed: Seed of pretraining; ensemble member ``i`` starts from ``seed + i``.
        bootstrap: Fit each member on its own bootstrap resample of the labels (Poisson(1)
            weights on the loss), so that the members disagree where the labels do not pin
            the prediction down: the spread then grows away from the data. Without it the
            members differ only by their heads' initialisation and shuffles.
        n_threads: Cap on torch's intra-op threads while training and predicting (restored
            afterwards); ``None`` leaves torch's setting alone.
    """

    def __init__(
        self,
        n_members: int = 4,
        *,
        hidden: int = 128, embedding_dim: int = 64,
        pretrain_epochs: int = 60, frozen_epochs: int = 50, finetune_epochs: int = 50,
        lr: float = 3e-3, weight_decay: float = 1e-4, huber_delta: float = 1.0,
        batch_size: int = 64, max_batches_per_epoch: int | None = None,
        pretrain_batch_size: int = 512,
        seed: int = 0,
        n_threads: int | None = 1,
        bootstrap: bool = False,
    ) -> None:
        self.n_members = check_int("n_members", n_members, minimum=1, example=4)
        self.hidden = check_int("hidden", hidden, minimum=1, example=128)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, minimum=1, example=64)
        self.pretrain_epochs = check_int("pretrain_epochs", pretrain_epochs, minimum=1, example=60)
        self.frozen_epochs = check_int("frozen_epochs", frozen_epochs, minimum=0, example=50)
        self.finetune_epochs = check_int("finetune_epochs", finetune_epochs, minimum=0, example=50)
        if self.frozen_epochs + self.finetune_epochs == 0:
            raise ValueError(
                "frozen_epochs + finetune_epochs is 0: the accuracy head would never train; "
                "use e.g. frozen_epochs=50, finetune_epochs=50."
            )
        self.lr = _check_finite("lr", lr, positive=True, example=3e-3)
        self.weight_decay = _check_finite(
            "weight_decay", weight_decay, positive=False, example=1e-4
        )
        self.huber_delta = _check_finite("huber_delta", huber_delta, positive=True, example=1.0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1, example=64)
        self.max_batches_per_epoch = check_int(
            "max_batches_per_epoch", max_batches_per_epoch, minimum=1, allow_none=True, example=4
        )
        self.pretrain_batch_size = check_int(
            "pretrain_batch_size", pretrain_batch_size, minimum=1, example=512
        )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            # Any integer is a seed (negative ones too), so there is no bound to check_int.
            raise ValueError(f"seed must be an integer. Got {seed!r} of type "
                             f"{type(seed).__name__}. Use e.g. seed=0.")
        self.seed = int(seed)
        self.n_threads = check_int("n_threads", n_threads, minimum=1, allow_none=True, example=1)
        if not isinstance(bootstrap, (bool, np.bool_)):
            raise ValueError(f"bootstrap must be True or False. Got {bootstrap!r}.")
        self.bootstrap = bool(bootstrap)

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
            "max_batches_per_epoch", "pretrain_batch_size", "seed", "n_threads", "bootstrap",
        )
        return {name: getattr(self, name) for name in names}

    def clone(self, **changes: Any) -> NARSPredictor:
        """An unfitted copy with the same arguments and the same pretrained encoder."""
        other = NARSPredictor(**{**self.get_params(), **changes})
        other.pretrained_ = self.pretrained_
        return other

    @property
    def is_pretrained(self) -> bool:
        """Whether :meth:`pretrain` ran (or a clone inherited its encoder)."""
        return self.pretrained_ is not None

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` ran."""
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
        arch_x = as_2d("arch_x", arch_x)
        proxy_y = as_2d("proxy_y", proxy_y, len(arch_x))
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
            fingerprint(arch_x, proxy_y),
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
            return train_encoder(
                arch_x, proxy_y, hidden=self.hidden, embedding_dim=self.embedding_dim,
                epochs=self.pretrain_epochs, batch_size=self.pretrain_batch_size, lr=self.lr,
                weight_decay=self.weight_decay, seed=self.seed, n_threads=self.n_threads,
            )

        self.pretrained_ = pretrained_state(key, compute)
        self.pretrain_cached_ = hit
        return self

    def proxy_loss(self, arch_x: np.ndarray, proxy_y: np.ndarray) -> float:
        """Standardised MSE of the pretrained proxy head on ``(arch_x, proxy_y)`` (e.g. a
        held-out check of pretraining)."""
        pre = self.pretrained_
        if pre is None:
            raise RuntimeError("The predictor is not pretrained; call pretrain() first.")
        arch_x = as_2d("arch_x", arch_x)
        proxy_y = as_2d("proxy_y", proxy_y, len(arch_x))
        model = self._new_model(pre.arch_dim, 0, n_members=1)
        with torch_threads(self.n_threads), torch.inference_mode():
            pred = model.proxy(to_tensor(arch_x))[0].double().numpy()
        return float(np.mean((pred - (proxy_y - pre.proxy_mean) / pre.proxy_std) ** 2))

    def _new_model(self, arch_dim: int, recipe_dim: int, n_members: int) -> AccuracyPredictor:
        # A fresh network; with a pretrained encoder, every member starts from its weights.
        pre = self.pretrained_
        model = AccuracyPredictor(
            arch_dim, recipe_dim, pre.n_proxy if pre is not None else 0, hidden=self.hidden,
            embedding_dim=self.embedding_dim, n_members=n_members, seed=self.seed,
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
        arch_x = as_2d("arch_x", arch_x, len(y))
        recipe_x = as_2d("recipe_x", recipe_x, len(y))
        pre = self.pretrained_
        if pre is not None and arch_x.shape[1] != pre.arch_dim:
            raise ValueError(
                f"arch_x has {arch_x.shape[1]} columns but the encoder was pretrained on "
                f"{pre.arch_dim}; encode with the same space (or pretrain again)."
            )
        mean, std = float(y.mean()), float(y.std())
        std = std if std > 1e-12 else 1.0
        x, r = to_tensor(arch_x), to_tensor(recipe_x)
        t = to_tensor((y - mean) / std)
        model = self._new_model(x.shape[1], r.shape[1], self.n_members)
        with torch_threads(self.n_threads):
            self._finetune(model, x, r, t)
        model.eval()
        model.requires_grad_(False)
        self.model_, self.y_mean_, self.y_std_ = model, mean, std
        return self

    def _finetune(
        self, model: AccuracyPredictor, x: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> None:
        n, m = len(t), model.n_members
        batch_size = self.batch_size
        if self.max_batches_per_epoch is not None:
            batch_size = max(batch_size, math.ceil(n / self.max_batches_per_epoch))
        generator = torch.Generator().manual_seed(self.seed)
        loss_fn = nn.HuberLoss(reduction="none", delta=self.huber_delta)
        members = torch.arange(m)[:, None]
        # Per-member bootstrap weights of the samples (all 1 without bootstrap).
        weights = (torch.poisson(torch.ones(m, n), generator) if self.bootstrap
                   else torch.ones(m, n))
        head = list(model.accuracy_head.parameters())
        encoder = model.encoder_parameters()
        if self.pretrained_ is not None:
            phases = [(False, self.frozen_epochs), (True, self.finetune_epochs)]
        else:
            # A random encoder is nothing worth freezing: train everything for as long.
            phases = [(True, self.frozen_epochs + self.finetune_epochs)]
        model.train()
        for tune_encoder, epochs in phases:
            if epochs == 0:
                continue
            params = head + encoder if tune_encoder else head
            model.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            opt = FusedAdamW(params, self.lr, self.weight_decay)
            frozen = None
            if not tune_encoder:
                with torch.no_grad():  # The frozen embedding is computed once per phase.
                    frozen = model.embed(x)
            for _ in range(epochs):
                for idx in epoch_batches(m, n, batch_size, generator):
                    emb = frozen[members, idx] if frozen is not None else model.embed(x[idx])
                    pred = model.head(emb, r[idx])
                    # Mean over each member's batch, summed over members: independent gradients.
                    loss = (loss_fn(pred, t[idx]) * weights[members, idx]).mean(dim=1).sum()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

    # ---- prediction ----------------------------------------------------------------------

    def predict_members(self, arch_x: np.ndarray, recipe_x: np.ndarray | None) -> np.ndarray:
        """Every member's prediction (original scale), ``(n_members, n)``."""
        model = self.model_
        if model is None:
            raise RuntimeError("The predictor is not fitted; call fit() first.")
        arch_x = as_2d("arch_x", arch_x)
        recipe_x = as_2d("recipe_x", recipe_x, len(arch_x))
        if arch_x.shape[1] != model.arch_dim or recipe_x.shape[1] != model.recipe_dim:
            raise ValueError(
                f"Expected {model.arch_dim} architecture and {model.recipe_dim} recipe columns, "
                f"got {arch_x.shape[1]} and {recipe_x.shape[1]}; encode with the fitted space."
            )
        a, r = to_tensor(arch_x), to_tensor(recipe_x)
        with torch_threads(self.n_threads), torch.inference_mode():
            # Each row is computed alone, so chunks give the same values (PREDICT_CHUNK).
            chunks = zip(a.split(PREDICT_CHUNK), r.split(PREDICT_CHUNK), strict=True)
            out = torch.cat([model(a_chunk, r_chunk) for a_chunk, r_chunk in chunks], dim=1)
        return out.double().numpy() * self.y_std_ + self.y_mean_

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

    # The module function as a method (``self`` is its ``predictor``): one definition for both.
    kendall_tau_cv = _kendall_tau_cv
