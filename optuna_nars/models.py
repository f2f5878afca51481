"""Inverted-residual networks (MobileNetV2/V3, FBNetV3 style) decoded from an Architecture.

Built from torchvision's blocks (``Conv2dNormActivation``, ``SqueezeExcitation``,
``StochasticDepth``) so the networks behave like the torchvision models users know.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth

from optuna_nars.candidate import Architecture
from optuna_nars.cost import block_channels

__all__ = ["InvertedResidual", "InvertedResidualNet", "build_model", "activation_layer"]

_ACTIVATION_LAYERS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
    "swish": nn.SiLU,
}


def activation_layer(name: str) -> Callable[..., nn.Module]:
    """The ``torch.nn`` activation class of an activation name (``"relu"``, ``"hswish"``, ...)."""
    try:
        return _ACTIVATION_LAYERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown activation {name!r}; choose one of {sorted(_ACTIVATION_LAYERS)}."
        ) from None


class InvertedResidual(nn.Module):
    """1x1 expand, depthwise kxk, optional SE (hard-sigmoid gate), 1x1 project, and a residual
    connection with stochastic depth when the shapes allow."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        expansion: float,
        stride: int,
        se: bool,
        activation: str,
        stochastic_depth: float = 0.0,
        padding: str = "same",
    ) -> None:
        super().__init__()
        hidden, squeeze = (int(x) for x in block_channels(in_channels, expansion))
        act = activation_layer(activation)
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(Conv2dNormActivation(in_channels, hidden, 1, activation_layer=act))
        layers.append(
            Conv2dNormActivation(
                hidden, hidden, kernel, stride=stride, groups=hidden, activation_layer=act,
                padding=kernel // 2 - (padding == "tight"),
            )
        )
        if se:
            layers.append(SqueezeExcitation(hidden, squeeze, scale_activation=nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(hidden, out_channels, 1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.stochastic_depth = StochasticDepth(stochastic_depth, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out = self.stochastic_depth(out) + x
        return out


class InvertedResidualNet(nn.Module):
    """Stem conv, stages of :class:`InvertedResidual` blocks, 1x1 head conv, pooling, optional
    pooled feature projection (MobileNetV3 / FBNetV3), dropout and a linear classifier.

    ``print(model)`` shows the arch string; ``repr(model)`` the full module tree.
    """

    def __init__(
        self,
        arch: Architecture,
        num_classes: int,
        in_channels: int = 3,
        *,
        dropout: float = 0.0,
        stochastic_depth: float = 0.0,
    ) -> None:
        if num_classes < 1 or in_channels < 1:
            raise ValueError(
                f"num_classes and in_channels must be positive, got {num_classes} and "
                f"{in_channels}."
            )
        if not 0 <= dropout < 1 or not 0 <= stochastic_depth < 1:
            raise ValueError(
                f"dropout and stochastic_depth must lie in [0, 1), got {dropout} and "
                f"{stochastic_depth}."
            )
        super().__init__()
        self.arch = arch
        act = activation_layer(arch.activation)
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                in_channels, arch.stem_channels, 3, stride=arch.stem_stride, activation_layer=act
            )
        ]
        n_blocks = sum(stage.depth for stage in arch.stages)
        c_in, block_id = arch.stem_channels, 0
        for stage in arch.stages:
            for i in range(stage.depth):
                # Linearly increasing drop rate with depth, as torchvision's EfficientNet.
                p = stochastic_depth * block_id / n_blocks
                layers.append(
                    InvertedResidual(
                        c_in, stage.channels, stage.kernel, stage.expansion,
                        stage.stride if i == 0 else 1, stage.se, stage.activation, p,
                        stage.padding if i == 0 else "same",
                    )
                )
                c_in, block_id = stage.channels, block_id + 1
        layers.append(Conv2dNormActivation(c_in, arch.head_channels, 1, activation_layer=act))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        head: list[nn.Module] = []
        last = arch.head_channels
        if arch.feature_channels:
            head += [nn.Linear(last, arch.feature_channels), act(inplace=True)]
            last = arch.feature_channels
        head += [nn.Dropout(p=dropout, inplace=True), nn.Linear(last, num_classes)]
        self.classifier = nn.Sequential(*head)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's MobileNetV3 initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def __str__(self) -> str:
        return f"InvertedResidualNet({self.arch})"


def build_model(
    arch: Architecture, num_classes: int, in_channels: int = 3, **options: float
) -> InvertedResidualNet:
    """Build the network an :class:`Architecture` describes (``options``: ``dropout``,
    ``stochastic_depth``; see :class:`InvertedResidualNet`)."""
    return InvertedResidualNet(arch, num_classes, in_channels, **options)
