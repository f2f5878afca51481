"""The preset spaces behind :meth:`SearchSpace.fbnetv3`, :meth:`~SearchSpace.cifar` and
:meth:`~SearchSpace.tiny`, as data.

Each builder takes the class to build (``SearchSpace`` or a subclass) and the task's
``in_channels`` and ``num_classes``; the classmethods hold the defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from optuna_nars.space.dimensions import FloatRange, IntRange
from optuna_nars.space.specs import RecipeSpec, StageSpec

if TYPE_CHECKING:
    from optuna_nars.space.search_space import SearchSpace

    S = TypeVar("S", bound=SearchSpace)
else:
    S = TypeVar("S")

__all__ = ["BASE_LR", "cifar", "fbnetv3", "tiny"]

# Each optimizer's learning rate is searched from a quarter to four times its own base rate:
# SGD with Nesterov momentum about 0.1 (torchvision's classification reference), RMSprop
# (TF-style, eps 1e-3) about 0.01 (EfficientNet's 0.016 at batch 256), AdamW about 0.004
# (ConvNeXt's), each rounded to a power of two so that factor x base is exact. One shared
# range cannot suit all three: on Fashion-MNIST, rates SGD trains well with make RMSprop
# diverge, and rates that suit AdamW and RMSprop leave SGD barely moving
# (benchmarks/lr_ranges.py).
BASE_LR = {"sgd": 2**-3, "rmsprop": 2**-7, "adamw": 2**-8}
_LR_FACTOR = FloatRange(0.25, 4.0, log=True)

# The released FBNetV3 A..E models, one row per stage. Every stage chooses a kernel of 3 or 5 and
# its channels in steps of 8; a depth is a constant or a (low, high) range. A stride-2 row is the
# first block of a resolution stage; two of them may pad "tight" as some released models do.
_TIGHT = ("same", "tight")
_FBNETV3_STAGES: tuple[tuple[Any, tuple[int, int], Any, int, bool, Any], ...] = (
    # expansion    channels    depth   stride  se     padding
    (1,            (16, 24),   (1, 3), 1,      False, "same"),
    ((3, 4, 5, 6), (16, 40),   1,      2,      False, "same"),
    ((1, 2, 3, 4), (16, 40),   (2, 6), 1,      False, "same"),
    ((3, 4, 5, 6), (32, 64),   1,      2,      True,  "same"),
    ((2, 3, 4),    (32, 64),   (3, 6), 1,      True,  "same"),
    ((3, 4, 5, 6), (64, 112),  1,      2,      False, _TIGHT),
    ((2, 3, 4),    (64, 112),  (3, 6), 1,      False, "same"),
    ((3, 4, 5, 6), (112, 168), 1,      1,      True,  "same"),
    ((2, 3, 4),    (112, 168), (4, 9), 1,      True,  "same"),
    ((4, 5, 6),    (176, 272), 1,      2,      True,  _TIGHT),
    ((3, 4, 5, 6), (176, 272), (4, 7), 1,      True,  "same"),
    ((4, 5, 6),    (208, 288), (1, 2), 1,      True,  "same"),
)


def _fbnetv3_stage(
    expansion: Any, channels: tuple[int, int], depth: Any, stride: int, se: bool, padding: Any
) -> StageSpec:
    depth = depth if isinstance(depth, int) else IntRange(*depth)
    return StageSpec((3, 5), expansion, IntRange(*channels, 8), depth, stride, se,
                     padding=padding)


def fbnetv3(cls: type[S], in_channels: int, num_classes: int) -> S:
    """ImageNet-scale joint space around FBNetV3 (paper Table 2, the released A..E models)."""
    recipe = RecipeSpec(
        optimizer=("rmsprop", "sgd", "adamw"),
        lr=_LR_FACTOR,
        base_lr=BASE_LR,
        weight_decay=FloatRange(5e-6, 5e-5, log=True),
        mixup_alpha=FloatRange(0.0, 0.4),
        dropout=FloatRange(0.05, 0.35),
        stochastic_depth=FloatRange(0.0, 0.4),
    )
    return cls(
        stages=tuple(_fbnetv3_stage(*row) for row in _FBNETV3_STAGES),
        resolution=IntRange(224, 272, 8),
        stem_channels=IntRange(16, 32, 8),
        stem_stride=2,
        head_channels=IntRange(1152, 1920, 16),
        feature_channels=1984,
        activation="hswish",
        recipe=recipe,
        in_channels=in_channels,
        num_classes=num_classes,
    )


def _small_space(
    cls: type[S],
    stages: tuple[StageSpec, ...],
    resolution: Any,
    stem_channels: IntRange,
    head_channels: IntRange,
    in_channels: int,
    num_classes: int,
) -> S:
    """A space for small inputs: stride-1 stem, hswish, the default recipe's ranges with
    per-optimizer learning rates, no feature layer."""
    return cls(
        stages=stages,
        resolution=resolution,
        stem_channels=stem_channels,
        stem_stride=1,
        head_channels=head_channels,
        activation="hswish",
        recipe=RecipeSpec(lr=_LR_FACTOR, base_lr=BASE_LR),
        in_channels=in_channels,
        num_classes=num_classes,
    )


def cifar(cls: type[S], in_channels: int, num_classes: int) -> S:
    """A space for 32x32 inputs (CIFAR, and 28x28 sets upsampled), about 1-60 MFLOPs."""
    k, e = (3, 5), (2, 3, 4, 6)
    stages = (  # StageSpec(kernel, expansion, channels, depth, stride, se)
        StageSpec(3, 1, IntRange(8, 16, 8), 1, 1, False),
        StageSpec(k, e, IntRange(16, 32, 8), IntRange(1, 3), 2, False),
        StageSpec(k, e, IntRange(24, 48, 8), IntRange(1, 4), 2, (False, True)),
        StageSpec(k, e, IntRange(48, 96, 16), IntRange(1, 4), 1, (False, True)),
        StageSpec(k, e, IntRange(64, 160, 16), IntRange(1, 3), 2, (False, True)),
    )
    return _small_space(cls, stages, 32, IntRange(8, 24, 8), IntRange(256, 1024, 128),
                        in_channels, num_classes)


def tiny(cls: type[S], in_channels: int, num_classes: int) -> S:
    """A small space for tests and quick starts (digits, MNIST-sized inputs)."""
    stages = (  # StageSpec(kernel, expansion, channels, depth, stride, se)
        StageSpec((3, 5), (1, 2, 3), IntRange(8, 16, 8), IntRange(1, 2), 1, False),
        StageSpec((3, 5), (2, 3, 4), IntRange(16, 32, 8), IntRange(1, 2), 2, (False, True)),
        StageSpec(3, (2, 4), IntRange(24, 48, 8), IntRange(1, 2), 2, (False, True)),
    )
    return _small_space(cls, stages, (16, 24), IntRange(8, 16, 8), IntRange(64, 128, 32),
                        in_channels, num_classes)
