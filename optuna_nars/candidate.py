"""Concrete architecture-recipe pairs: what a search proposes, trains and exports.

An :class:`Architecture` is a compact, declarative description of an inverted-residual network
(in the spirit of timm's ``_efficientnet_builder``); ``str(arch)`` is a short arch string that
:meth:`Architecture.from_string` parses back, e.g.::

    r224 c16s2:hs k3e1c16d2:hs k5e4c24d1s2:hs k5e5c40d1s2se:hs h1344f1984
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

ACTIVATIONS: dict[str, str] = {"relu": "re", "relu6": "r6", "hswish": "hs", "swish": "sw"}
OPTIMIZERS: tuple[str, ...] = ("sgd", "rmsprop", "adamw")

_ACTIVATION_OF_CODE = {code: name for name, code in ACTIVATIONS.items()}
_STEM = re.compile(r"c(\d+)(?:s(\d+))?:(\w\w)")
_STAGE = re.compile(r"k(\d+)e([\d.]+)c(\d+)d(\d+)(?:s(\d+))?(t)?(se)?:(\w\w)")
PADDINGS: tuple[str, ...] = ("same", "tight")
_HEAD = re.compile(r"h(\d+)(?:f(\d+))?")


def _format_number(x: float) -> str:
    return format(float(x), "g")


@dataclass(frozen=True)
class StageArch:
    """One stage: ``depth`` inverted-residual blocks; the first one carries the stride.

    ``padding="tight"`` pads the first block's depthwise conv by ``kernel // 2 - 1``, one less
    than "same": the released FBNetV3 models do this on some stride-2 blocks (28 -> 13 instead
    of 14), and their published FLOPs depend on it.
    """

    kernel: int
    expansion: float
    channels: int
    depth: int
    stride: int = 1
    se: bool = False
    activation: str = "hswish"
    padding: str = "same"

    def __str__(self) -> str:
        stride = f"s{self.stride}" if self.stride != 1 else ""
        stride += "t" if self.padding == "tight" else ""
        se = "se" if self.se else ""
        act = ACTIVATIONS[self.activation]
        return (
            f"k{self.kernel}e{_format_number(self.expansion)}c{self.channels}d{self.depth}"
            f"{stride}{se}:{act}"
        )


@dataclass(frozen=True)
class Architecture:
    """Stem conv, stages of inverted-residual blocks, and a 1x1-conv / pool / classifier head.

    ``feature_channels`` adds MobileNetV3's pooled 1x1 projection (1984 in FBNetV3) before the
    classifier; ``None`` gives MobileNetV2's head.
    """

    resolution: int
    stem_channels: int
    stages: tuple[StageArch, ...]
    head_channels: int
    feature_channels: int | None = None
    stem_stride: int = 2
    activation: str = "hswish"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))

    def __str__(self) -> str:
        stem_stride = f"s{self.stem_stride}" if self.stem_stride != 1 else ""
        head = f"h{self.head_channels}"
        if self.feature_channels:
            head += f"f{self.feature_channels}"
        tokens = [
            f"r{self.resolution}",
            f"c{self.stem_channels}{stem_stride}:{ACTIVATIONS[self.activation]}",
            *(str(stage) for stage in self.stages),
            head,
        ]
        return " ".join(tokens)

    @classmethod
    def from_string(cls, text: str) -> Architecture:
        """Parse an arch string made by ``str(arch)``."""
        tokens = text.split()
        usage = (
            "expected 'r<res> c<stem>[s<stride>]:<act> k<k>e<e>c<c>d<d>[s<s>[t]][se]:<act> ... "
            "h<c>[f<c>]'"
        )
        if len(tokens) < 3 or not re.fullmatch(r"r\d+", tokens[0]):
            raise ValueError(f"Cannot parse arch string {text!r}: {usage}.")
        stem = _STEM.fullmatch(tokens[1])
        head = _HEAD.fullmatch(tokens[-1])
        if stem is None or head is None:
            raise ValueError(f"Cannot parse arch string {text!r}: {usage}.")
        stages = []
        for token in tokens[2:-1]:
            m = _STAGE.fullmatch(token)
            if m is None or m.group(8) not in _ACTIVATION_OF_CODE:
                raise ValueError(f"Cannot parse stage {token!r} of arch string {text!r}: {usage}.")
            k, e, c, d, s, tight, se, act = m.groups()
            stages.append(
                StageArch(int(k), float(e), int(c), int(d), int(s or 1), se == "se",
                          _ACTIVATION_OF_CODE[act], "tight" if tight else "same")
            )
        if stem.group(3) not in _ACTIVATION_OF_CODE:
            raise ValueError(f"Unknown activation code {stem.group(3)!r} in {text!r}.")
        return cls(
            resolution=int(tokens[0][1:]),
            stem_channels=int(stem.group(1)),
            stem_stride=int(stem.group(2) or 1),
            activation=_ACTIVATION_OF_CODE[stem.group(3)],
            stages=tuple(stages),
            head_channels=int(head.group(1)),
            feature_channels=int(head.group(2)) if head.group(2) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        data = dict(data)
        data["stages"] = tuple(StageArch(**stage) for stage in data["stages"])
        return cls(**data)


@dataclass(frozen=True)
class Recipe:
    """The training recipe searched jointly with the architecture."""

    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 4e-5
    mixup_alpha: float = 0.0
    dropout: float = 0.2
    stochastic_depth: float = 0.0
    ema: bool = False
    label_smoothing: float = 0.1

    def __str__(self) -> str:
        return (
            f"{self.optimizer} lr={self.lr:.3g} wd={self.weight_decay:.2g} "
            f"mixup={self.mixup_alpha:.2g} dropout={self.dropout:.2g} "
            f"sd={self.stochastic_depth:.2g} ema={'on' if self.ema else 'off'} "
            f"ls={self.label_smoothing:.2g}"
        )


@dataclass(frozen=True)
class Candidate:
    """An architecture-recipe pair."""

    architecture: Architecture
    recipe: Recipe = field(default_factory=Recipe)

    def __str__(self) -> str:
        return f"{self.architecture} | {self.recipe}"

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture.to_dict(), "recipe": asdict(self.recipe)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(Architecture.from_dict(data["architecture"]), Recipe(**data["recipe"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Candidate:
        return cls.from_dict(json.loads(text))
