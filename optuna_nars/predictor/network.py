"""The torch modules of the predictor: an ensemble of FBNetV3 networks evaluated together.

:class:`AccuracyPredictor` holds ``n_members`` independent networks (encoder -> embedding,
proxy head, accuracy head) whose layers are :class:`EnsembleLinear`: one batched matmul serves
every member, so a small ensemble trains about as fast as one network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AccuracyPredictor", "EnsembleLinear"]


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
        self, arch_dim: int, recipe_dim: int = 0, n_proxy: int = 0, *,
        hidden: int = 128, embedding_dim: int = 64, n_members: int = 1, seed: int = 0,
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
        """The encoder's parameters (none without an architecture part)."""
        return [] if self.encoder is None else list(self.encoder.parameters())

    def load_pretrained(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a (single-member) pretrained encoder and proxy head into every member."""
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.startswith(("encoder.", "proxy_head.")):
                    param.copy_(state[name].expand_as(param))
