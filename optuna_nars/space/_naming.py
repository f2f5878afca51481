"""The parameter names of a candidate's fields, in one place.

A free or fixed parameter is named after the candidate field it sets: ``resolution``,
``stem.channels``, ``stem.stride``, ``activation``, ``stage{i}.<StageArch field>`` (from 1),
``head.channels``, ``head.features`` and ``recipe.<Recipe field>``; the one exception is the
learning rate of a recipe with per-optimizer base rates, ``recipe.lr_factor``
(:class:`~optuna_nars.space.RecipeSpec`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from optuna_nars.candidate import Architecture, Candidate, Recipe, StageArch
from optuna_nars.space.specs import RecipeSpec, _dimension_fields

if TYPE_CHECKING:
    from optuna_nars.space.dimensions import Dimension
    from optuna_nars.space.search_space import SearchSpace


def named_dimensions(space: SearchSpace) -> Iterator[tuple[str, Dimension, str]]:
    """Every dimension of ``space`` (fixed ones too) as (name, dimension, part), in the column
    order of the values matrix."""
    yield "resolution", space.resolution, "architecture"
    yield "stem.channels", space.stem_channels, "architecture"
    yield "stem.stride", space.stem_stride, "architecture"
    yield "activation", space.activation, "architecture"
    for i, stage in enumerate(space.stages, start=1):
        for name, dim in _dimension_fields(stage):
            yield f"stage{i}.{name}", dim, "architecture"
    yield "head.channels", space.head_channels, "architecture"
    yield "head.features", space.feature_channels, "architecture"
    for name, dim in _dimension_fields(space.recipe):
        yield f"recipe.{space.recipe.lr_name if name == 'lr' else name}", dim, "recipe"


def build_candidate(get: Callable[[str], Any], n_stages: int, recipe_spec: RecipeSpec
                    ) -> Candidate:
    """The candidate whose field values ``get(name)`` gives, typed as the candidate wants."""
    stages = tuple(
        StageArch(
            kernel=int(get(f"stage{i}.kernel")),
            expansion=float(get(f"stage{i}.expansion")),
            channels=int(get(f"stage{i}.channels")),
            depth=int(get(f"stage{i}.depth")),
            stride=int(get(f"stage{i}.stride")),
            se=bool(get(f"stage{i}.se")),
            activation=str(get(f"stage{i}.activation")),
            padding=str(get(f"stage{i}.padding")),
        )
        for i in range(1, n_stages + 1)
    )
    features = get("head.features")
    arch = Architecture(
        resolution=int(get("resolution")),
        stem_channels=int(get("stem.channels")),
        stem_stride=int(get("stem.stride")),
        activation=str(get("activation")),
        stages=stages,
        head_channels=int(get("head.channels")),
        feature_channels=None if features is None else int(features),
    )
    optimizer = str(get("recipe.optimizer"))
    recipe = Recipe(
        optimizer=optimizer,
        lr=recipe_spec.learning_rate(optimizer, float(get(f"recipe.{recipe_spec.lr_name}"))),
        weight_decay=float(get("recipe.weight_decay")),
        mixup_alpha=float(get("recipe.mixup_alpha")),
        dropout=float(get("recipe.dropout")),
        stochastic_depth=float(get("recipe.stochastic_depth")),
        ema=bool(get("recipe.ema")),
        label_smoothing=float(get("recipe.label_smoothing")),
    )
    return Candidate(arch, recipe)


def flatten_candidate(candidate: Candidate, recipe_spec: RecipeSpec) -> dict[str, Any]:
    """Every field value of ``candidate`` by parameter name (inverse of :func:`build_candidate`)."""
    arch, recipe = candidate.architecture, candidate.recipe
    flat: dict[str, Any] = {
        "resolution": arch.resolution,
        "stem.channels": arch.stem_channels,
        "stem.stride": arch.stem_stride,
        "activation": arch.activation,
        "head.channels": arch.head_channels,
        "head.features": arch.feature_channels,
    }
    for i, stage in enumerate(arch.stages, start=1):
        for f in fields(stage):
            flat[f"stage{i}.{f.name}"] = getattr(stage, f.name)
    for f in fields(recipe):
        flat[f"recipe.{f.name}"] = getattr(recipe, f.name)
    if recipe_spec.base_lr is not None:
        flat["recipe.lr_factor"] = recipe_spec.lr_value(recipe.optimizer, flat.pop("recipe.lr"))
    return flat
