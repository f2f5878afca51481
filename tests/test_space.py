from __future__ import annotations

import dataclasses
import json

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optuna_nars import Architecture, Candidate, FloatRange, IntRange, SearchSpace, StageSpec
from optuna_nars.space import Choice, ParamSpace, RecipeSpec

PRESETS = [SearchSpace.tiny(), SearchSpace.cifar(), SearchSpace.fbnetv3()]


@pytest.mark.parametrize("space", PRESETS, ids=["tiny", "cifar", "fbnetv3"])
def test_json_round_trip(space: SearchSpace) -> None:
    text = space.to_json()
    again = SearchSpace.from_json(text)
    assert again == space
    assert again.names == space.names
    assert json.loads(again.to_json()) == json.loads(text)


@pytest.mark.parametrize("space", PRESETS, ids=["tiny", "cifar", "fbnetv3"])
@pytest.mark.parametrize("method", ["sobol", "random"])
def test_values_candidates_params_round_trip(space: SearchSpace, method: str) -> None:
    values = space.sample_values(64, seed=3, method=method)
    candidates = space.decode(values)
    np.testing.assert_array_equal(space.to_values(candidates), values)
    for candidate in candidates[:8]:
        assert space.contains(candidate)
        params = space.to_params(candidate)
        assert space.from_params(params) == candidate
        arch = candidate.architecture
        assert Architecture.from_string(str(arch)) == arch
        assert Candidate.from_json(candidate.to_json()) == candidate


def test_sampling_is_seeded_and_covers_choices() -> None:
    space = SearchSpace.tiny()
    a = space.sample_values(128, seed=0)
    np.testing.assert_array_equal(a, space.sample_values(128, seed=0))
    assert not np.array_equal(a, space.sample_values(128, seed=1))
    col = space.names.index("stage1.expansion")
    assert set(a[:, col]) == {0.0, 1.0, 2.0}  # indices of (1, 2, 3): Sobol covers every choice
    factor = a[:, space.names.index("recipe.lr_factor")]
    assert factor.min() >= 0.25 and factor.max() <= 4.0
    # Each optimizer's rates lie around its own base rate.
    lr, optimizer = space.column(a, "recipe.lr"), space.column(a, "recipe.optimizer")
    for name, base in (("sgd", 0.125), ("rmsprop", 2**-7), ("adamw", 2**-8)):
        mine = lr[optimizer == name]
        assert len(mine) and mine.min() >= base / 4 and mine.max() <= base * 4
    assert [c.recipe.lr for c in space.decode(a[:8])] == lr[:8].tolist()


def test_distribution_names_are_readable_and_stable() -> None:
    space = SearchSpace.cifar()
    dists = space.distributions()
    assert "stage2.kernel" in dists and "recipe.lr_factor" in dists
    assert isinstance(dists["recipe.lr_factor"], optuna.distributions.FloatDistribution)
    assert dists["recipe.lr_factor"].log
    assert dists["stage2.channels"] == optuna.distributions.IntDistribution(16, 32, step=8)
    # Fixed dimensions are not Optuna parameters.
    assert "stage1.kernel" not in dists and "resolution" not in dists
    assert list(dists) == list(SearchSpace.cifar().distributions())


def test_suggest_and_from_params_with_a_real_study() -> None:
    space = SearchSpace.tiny()
    seen: list[Candidate] = []

    def objective(trial: optuna.Trial) -> float:
        candidate = space.suggest(trial)
        seen.append(candidate)
        return candidate.recipe.lr

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=5)
    for trial, candidate in zip(study.trials, seen, strict=True):
        assert space.from_params(trial.params) == candidate
        assert set(trial.distributions) == set(space.distributions())


def test_encoding_parts_and_ranges() -> None:
    space = SearchSpace.tiny()
    values = space.sample_values(50, seed=1)
    enc = space.encode(values)
    arch = space.encode(values, "architecture")
    recipe = space.encode(values, "recipe")
    assert enc.shape[1] == arch.shape[1] + recipe.shape[1]
    assert enc.min() >= 0 and enc.max() <= 1
    assert enc.shape[1] == sum(p.dim.width for p in space.param_space.params)
    # Each categorical parameter's one-hot block sums to one.
    start = 0
    for p in space.param_space.params:
        block = enc[:, start : start + p.dim.width]
        if p.dim.categorical:
            np.testing.assert_array_equal(block.sum(axis=1), 1.0)
        start += p.dim.width


def test_to_unit_inverts_from_unit() -> None:
    space = SearchSpace.fbnetv3().param_space
    values = space.sample_values(200, seed=5, method="random")
    np.testing.assert_allclose(space.from_unit(space.to_unit(values)), values)


def test_param_space_from_any_optuna_distributions() -> None:
    dists = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
        "layers": optuna.distributions.IntDistribution(1, 8),
        "units": optuna.distributions.IntDistribution(16, 256, log=True),
        "act": optuna.distributions.CategoricalDistribution(["relu", "tanh"]),
        "drop": optuna.distributions.FloatDistribution(0.0, 0.5, step=0.1),
    }
    ps = ParamSpace.from_distributions(dists, architecture=["layers", "units", "act"])
    values = ps.sample_values(100, seed=0)
    for params in ps.values_to_params(values):
        for name, dist in dists.items():
            assert dist._contains(dist.to_internal_repr(params[name])), (name, params[name])
    assert set(ps.names[i] for i in ps.part_columns("recipe")) == {"drop", "lr"}
    np.testing.assert_allclose(ps.params_to_values(ps.values_to_params(values)), values)
    with pytest.raises(ValueError, match="not in the search space"):
        ParamSpace.from_distributions(dists, architecture=["depth"])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: StageSpec(kernel=()), "stage1.kernel: the choices are empty"),
        (lambda: StageSpec(channels=IntRange(32, 16, 8)), r"stage1.channels: low=32 > high=16"),
        (lambda: StageSpec(channels=IntRange(16, 30, 8)), "step 8 does not divide"),
        (lambda: StageSpec(kernel=(3, 4)), "stage1.kernel: 4 is not an odd kernel"),
        # A range is checked value by value, not by its ends only.
        (lambda: StageSpec(kernel=IntRange(3, 7)), "stage1.kernel: 4 is not an odd kernel"),
        (lambda: StageSpec(depth=IntRange(0, 2)), "stage1.depth: 0 is not a depth >= 1"),
        (lambda: StageSpec(stride=3), "stride of 1 or 2"),
        (lambda: StageSpec(activation="gelu"), "stage1.activation"),
        (lambda: StageSpec(padding="tight"), "needs a fixed stride of 2"),
        (lambda: StageSpec(expansion=(1, 1)), "repeat a value"),
    ],
)
def test_invalid_stage_specs_name_the_field(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchSpace(stages=(build(),))


def test_invalid_space_fields() -> None:
    with pytest.raises(ValueError, match="at least one stage"):
        SearchSpace(stages=())
    with pytest.raises(ValueError, match="recipe.lr: a log range needs low > 0"):
        SearchSpace.tiny().replace(recipe=SearchSpace.tiny().recipe.__class__(
            lr=FloatRange(0.0, 1.0, log=True)))
    with pytest.raises(ValueError, match="recipe.optimizer"):
        SearchSpace.tiny().replace(recipe={"optimizer": ("sgd", "lion")})
    with pytest.raises(ValueError, match="num_classes"):
        SearchSpace.tiny(num_classes=1)
    with pytest.raises(ValueError, match="Unknown search-space fields"):
        SearchSpace.from_dict({"stages": [{}], "depth_multiplier": 2})


def test_odd_kernel_range_with_step_two_is_valid() -> None:
    space = SearchSpace(stages=(StageSpec(kernel=IntRange(3, 7, 2)),))
    assert space.distributions()["stage1.kernel"] == optuna.distributions.IntDistribution(
        3, 7, step=2)


def test_float_step_must_divide_the_range() -> None:
    with pytest.raises(ValueError, match=r"recipe.dropout: step 0.1 does not divide .*high=0.3"):
        SearchSpace.tiny().replace(recipe={"dropout": FloatRange(0.0, 0.35, step=0.1)})
    FloatRange(0.0, 0.3, step=0.1)._validate("x")  # Decimal arithmetic: 0.3 is 3 steps


STEP_AND_LOG = SearchSpace.tiny().replace(
    recipe={"dropout": FloatRange(0.0, 0.3, step=0.1), "lr": FloatRange(1e-3, 0.5, log=True)},
    head_channels=IntRange(64, 512, log=True),
)


@pytest.mark.parametrize(
    "space", [*PRESETS, STEP_AND_LOG], ids=["tiny", "cifar", "fbnetv3", "step_and_log"]
)
def test_suggest_uses_exactly_the_declared_distributions(space: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        candidate = space.suggest(trial)
        assert trial.distributions == space.distributions()
        assert space.to_params(candidate) == trial.params
        study.tell(trial, 0.0)


def test_float_step_grid_is_kept_everywhere() -> None:
    dim = FloatRange(0.0, 0.3, step=0.1)
    assert dim.contains(0.2) and dim.contains(3 * 0.1 - 0.1)  # within Optuna's tolerance
    assert not dim.contains(0.25)
    params = STEP_AND_LOG.values_to_params(STEP_AND_LOG.sample_values(1, seed=0))[0]
    params["recipe.dropout"] = 0.25
    with pytest.raises(ValueError, match="recipe.dropout=0.25 lies outside"):
        STEP_AND_LOG.from_params(params)
    # Uniform unit points give each of the 4 grid values a quarter (the ends a whole cell).
    raw = dim.from_unit((np.arange(400) + 0.5) / 400)
    values, counts = np.unique(raw, return_counts=True)
    np.testing.assert_allclose(values, [0.0, 0.1, 0.2, 0.3])
    assert values[-1] == 0.3 and list(counts) == [100] * 4
    np.testing.assert_array_equal(dim.from_unit(dim.to_unit(values)), values)


def test_from_params_rejects_foreign_params() -> None:
    space = SearchSpace.tiny()
    with pytest.raises(ValueError, match="do not come from this search space"):
        space.from_params({"x": 1})
    params = space.values_to_params(space.sample_values(1, seed=0))[0]
    params["stage1.channels"] = 12
    with pytest.raises(ValueError, match="stage1.channels=12 lies outside"):
        space.from_params(params)


def test_choice_and_dimension_shorthands() -> None:
    spec = StageSpec(kernel=[3, 5], expansion=4, channels={"type": "int", "low": 8, "high": 24,
                                                           "step": 8})
    assert spec.kernel == Choice(3, 5)
    assert spec.expansion.is_fixed
    assert spec.channels == IntRange(8, 24, 8)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_arch_string_round_trip_property(seed: int) -> None:
    space = SearchSpace.fbnetv3()
    arch = space.sample(1, seed=seed, method="random")[0].architecture
    text = str(arch)
    assert Architecture.from_string(text) == arch
    assert len(text) < 400


def test_arch_string_errors() -> None:
    with pytest.raises(ValueError, match="Cannot parse"):
        Architecture.from_string("r224 banana")
    with pytest.raises(ValueError, match="Cannot parse stage"):
        Architecture.from_string("r32 c16:hs k3x1 h64")


BASE = {"sgd": 0.125, "rmsprop": 2**-7, "adamw": 2**-8}


def test_per_optimizer_learning_rates_scale_a_factor_by_the_optimizer_base() -> None:
    space = SearchSpace.tiny()
    assert "recipe.lr_factor" in space.names and "recipe.lr" not in space.names
    params = space.values_to_params(space.sample_values(1, seed=0))[0]
    for optimizer, base in BASE.items():
        chosen = {**params, "recipe.optimizer": optimizer, "recipe.lr_factor": 2.0}
        candidate = space.from_params(chosen)
        assert candidate.recipe.lr == 2.0 * base
        assert space.to_params(candidate) == chosen
    # A rate outside the chosen optimizer's own range is outside the space, though another
    # optimizer's range holds it.
    sgd = space.from_params({**params, "recipe.optimizer": "sgd", "recipe.lr_factor": 1.0})
    too_high = dataclasses.replace(sgd, recipe=dataclasses.replace(
        sgd.recipe, optimizer="adamw", lr=0.125))
    assert not space.contains(too_high)


def test_per_optimizer_rates_survive_json_and_older_spaces_keep_absolute_rates() -> None:
    space = SearchSpace.cifar()
    again = SearchSpace.from_json(space.to_json())
    assert again == space and dict(again.recipe.base_lr) == BASE
    older = space.to_dict()
    del older["recipe"]["base_lr"]
    older["recipe"]["lr"] = {"type": "float", "low": 1e-3, "high": 0.5, "log": True}
    absolute = SearchSpace.from_dict(older)
    assert absolute.recipe.base_lr is None and "recipe.lr" in absolute.names


@pytest.mark.parametrize(
    ("base_lr", "message"),
    [
        ({"sgd": 0.1, "rmsprop": 0.01}, r"recipe.base_lr: 'adamw' is not given a base rate"),
        ({**BASE, "lion": 1e-4}, "unknown optimizer 'lion'"),
        ({**BASE, "sgd": 0.0}, r"base_lr\['sgd'\]: 0.0 is not a positive learning rate"),
        ({**BASE, "sgd": "fast"}, r"base_lr\['sgd'\]: 'fast'"),
        ([("sgd", 0.1)], "must map optimizers to learning rates"),
    ],
)
def test_bad_base_rates_name_the_problem(base_lr, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchSpace.tiny().replace(recipe=RecipeSpec(lr=FloatRange(0.5, 2.0, log=True),
                                                     base_lr=base_lr))


# ---- grids ---------------------------------------------------------------------------------------

SMALL = ParamSpace.from_distributions({
    "ops": optuna.distributions.CategoricalDistribution(["a", "b", "c", "d", "e"]),
    "width": optuna.distributions.IntDistribution(1, 64, log=True),
    "drop": optuna.distributions.FloatDistribution(0.0, 0.3, step=0.1),
})


def test_grid_holds_every_value_as_from_unit_gives_it() -> None:
    grid = SMALL.grid()
    assert SMALL.size == 5 * 64 * 4 == len(grid) == len(np.unique(grid, axis=0))
    np.testing.assert_array_equal(SMALL.from_unit(SMALL.to_unit(grid)), grid)
    assert set(grid[:, SMALL.index("width")]) == set(range(1, 65))  # log ints: none left out
    with pytest.raises(ValueError, match="without a step"):
        ParamSpace.from_distributions(
            {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0)}).grid()
