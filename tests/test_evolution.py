from __future__ import annotations

import time

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from optuna_nars import SearchSpace
from optuna_nars.cost import space_costs
from optuna_nars.evolution import (
    adaptive_genetic_search,
    adaptive_probability,
    crossover_probability,
    mutation_probability,
)
from optuna_nars.space import ParamSpace

SPACE = SearchSpace.tiny()
PS = SPACE.param_space


def _grid(dim: object) -> np.ndarray | None:
    """Every value a discrete dimension takes (raw), ``None`` for a continuous one."""
    if dim.categorical:
        return np.arange(len(dim.values), dtype=float)
    if np.isfinite(dim.size):
        return np.arange(dim.low, dim.high + dim.step / 2, dim.step, dtype=float)
    return None


def _bowl(target: np.ndarray):  # noqa: ANN202
    def score(values: np.ndarray) -> np.ndarray:
        return -((PS.to_unit(values) - target) ** 2).sum(axis=1)

    # The optimum: per column, the grid cell centre nearest the target (exact for floats).
    best = 0.0
    for c, p in enumerate(PS.params):
        grid = _grid(p.dim)
        if grid is not None:
            best -= float(((p.dim.to_unit(grid) - target[c]) ** 2).min())
    return score, best


def _assert_inside(ps: ParamSpace, values: np.ndarray) -> None:
    for c, p in enumerate(ps.params):
        col = values[:, c]
        grid = _grid(p.dim)
        if grid is not None:
            assert np.isin(col, grid).all(), (p.name, np.unique(col))
        else:
            assert np.all((col >= p.dim.low) & (col <= p.dim.high)), p.name
    # And the params are accepted by Optuna's distributions.
    dists = ps.distributions()
    for params in ps.values_to_params(values[:10]):
        for name, value in params.items():
            assert dists[name]._contains(dists[name].to_internal_repr(value)), (name, value)


# ---- the adaptive probabilities ------------------------------------------------------------


def test_crossover_probability_formula() -> None:
    f_max, f_avg = 10.0, 6.0
    f = np.array([10.0, 8.0, 6.0, 5.0, 0.0])
    # pc = k1 (f_max - f') / (f_max - f_avg) above average, k3 below.
    expected = np.array([0.0, 0.5, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(crossover_probability(f, f_max, f_avg), expected)
    np.testing.assert_allclose(
        crossover_probability(f, f_max, f_avg, k1=0.8, k3=0.3), [0.0, 0.4, 0.8, 0.3, 0.3]
    )


def test_mutation_probability_formula_and_floor() -> None:
    f_max, f_avg = 10.0, 6.0
    f = np.array([10.0, 8.0, 6.0, 5.0])
    # pm = k2 (f_max - f) / (f_max - f_avg) above average, k4 below; floored.
    np.testing.assert_allclose(
        mutation_probability(f, f_max, f_avg), [0.005, 0.25, 0.5, 0.5]
    )
    np.testing.assert_allclose(
        mutation_probability(f, f_max, f_avg, k2=0.2, k4=0.1, min_mutation=0.0),
        [0.0, 0.1, 0.2, 0.1],
    )
    # Negative fitness (e.g. a shifted prediction) is no special case.
    np.testing.assert_allclose(
        mutation_probability(f - 100, f_max - 100, f_avg - 100), [0.005, 0.25, 0.5, 0.5]
    )


def test_probability_guard_when_f_max_equals_f_avg() -> None:
    f = np.full(5, 3.0)
    for p in (
        crossover_probability(f, 3.0, 3.0),
        mutation_probability(f, 3.0, 3.0),
        adaptive_probability(f, 3.0, 3.0 - 1e-15, 0.5, 0.25),
    ):
        assert np.all(np.isfinite(p))
    np.testing.assert_allclose(crossover_probability(f, 3.0, 3.0, k1=1.0, k3=0.7), 0.7)
    np.testing.assert_allclose(mutation_probability(f, 3.0, 3.0, k2=0.5, k4=0.4), 0.4)
    assert adaptive_probability(2.0, 3.0, 3.0, 1.0, 1.0).shape == ()


# ---- the search -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_near_optimum_of_a_bowl(seed: int) -> None:
    target = np.random.default_rng(seed).random(len(PS))
    score, best = _bowl(target)
    initial = SPACE.sample_values(20, seed=seed)
    stats: dict[str, object] = {}
    start = time.perf_counter()
    values, scores = adaptive_genetic_search(
        PS, score, initial, rng=np.random.default_rng(seed), max_generations=100, stats=stats
    )
    elapsed = time.perf_counter() - start
    assert scores[0] > score(initial).max() + 1.0  # improves on the seeds by far
    assert best - scores[0] < 0.05, (best, scores[0])
    assert elapsed < 3.0
    # Sorted, distinct, correctly scored, inside the space.
    assert np.all(np.diff(scores) <= 0)
    assert len(np.unique(values, axis=0)) == len(values) <= 100
    np.testing.assert_allclose(scores, score(values))
    _assert_inside(PS, values)
    history = stats["best_history"]
    assert np.all(np.diff(history) >= 0) and stats["n_scored"] > 0


def test_sum_over_one_hot_choices_reaches_the_optimum() -> None:
    # A separable score over categorical choices: the optimum is each column's best choice.
    ps = ParamSpace.from_distributions(
        {f"c{i}": CategoricalDistribution(list(range(4))) for i in range(12)}
    )
    weights = np.random.default_rng(0).normal(size=(12, 4))

    def score(values: np.ndarray) -> np.ndarray:
        return weights[np.arange(12), values.astype(int)].sum(axis=1)

    values, scores = adaptive_genetic_search(
        ps, score, ps.sample_values(10, seed=0), rng=np.random.default_rng(0),
        max_generations=100,
    )
    assert scores[0] == pytest.approx(weights.max(axis=1).sum())


def test_all_rows_feasible_under_a_flops_budget() -> None:
    pool = SPACE.sample_values(256, seed=0)
    flops = space_costs(SPACE, pool)["flops"]
    budget = float(np.quantile(flops, 0.3))

    def feasible(values: np.ndarray) -> np.ndarray:
        return space_costs(SPACE, values)["flops"] <= budget

    def score(values: np.ndarray) -> np.ndarray:
        # Bigger is better: the constraint is active at the optimum.
        return np.log(space_costs(SPACE, values)["flops"]) + 0.1 * PS.to_unit(values)[:, -1]

    # Seeds include infeasible rows: they must be dropped.
    initial = pool[:30]
    assert not feasible(initial).all()
    values, scores = adaptive_genetic_search(
        PS, score, initial, feasible=feasible, rng=np.random.default_rng(1), max_generations=30,
    )
    assert feasible(values).all()
    _assert_inside(PS, values)
    best_seed = score(initial[feasible(initial)]).max()
    assert scores[0] >= best_seed
    assert space_costs(SPACE, values[:1])["flops"][0] > 0.9 * budget  # pushed to the boundary


def test_large_seed_pool_keeps_its_best() -> None:
    score, _ = _bowl(np.full(len(PS), 0.6))
    pool = SPACE.sample_values(1000, seed=4)
    values, scores = adaptive_genetic_search(
        PS, score, pool, rng=np.random.default_rng(0), population_size=50, max_generations=0
    )
    assert len(values) == 50
    np.testing.assert_allclose(scores, np.sort(score(pool))[::-1][:50])
    values, scores = adaptive_genetic_search(
        PS, score, pool, rng=np.random.default_rng(0), population_size=50, max_generations=5
    )
    assert scores[0] >= score(pool).max()


def test_raises_when_nothing_is_feasible() -> None:
    with pytest.raises(ValueError, match="No feasible individual"):
        adaptive_genetic_search(
            PS, lambda v: np.zeros(len(v)), SPACE.sample_values(4, seed=0),
            feasible=lambda v: np.zeros(len(v), dtype=bool), rng=np.random.default_rng(0),
            max_retries=2,
        )


def test_deterministic_for_a_seeded_rng() -> None:
    score, _ = _bowl(np.full(len(PS), 0.3))
    initial = SPACE.sample_values(16, seed=3)
    a = adaptive_genetic_search(PS, score, initial, rng=np.random.default_rng(7),
                                max_generations=10)
    b = adaptive_genetic_search(PS, score, initial, rng=np.random.default_rng(7),
                                max_generations=10)
    c = adaptive_genetic_search(PS, score, initial, rng=np.random.default_rng(8),
                                max_generations=10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_terminates_early_on_a_flat_function() -> None:
    stats: dict[str, object] = {}
    values, scores = adaptive_genetic_search(
        PS, lambda v: np.ones(len(v)), SPACE.sample_values(8, seed=0), rng=np.random.default_rng(0),
        max_generations=50, patience=5, stats=stats,
    )
    assert stats["generations"] == 5
    assert np.all(scores == 1.0) and len(values) == 100


def test_continuous_and_integer_mutations_stay_on_the_grid() -> None:
    ps = ParamSpace.from_distributions({
        "a": IntDistribution(1, 2),
        "b": IntDistribution(1, 1024, log=True),
        "c": IntDistribution(0, 30, step=10),
        "d": FloatDistribution(1e-4, 1.0, log=True),
        "e": FloatDistribution(0.0, 1.0, step=0.25),
        "f": CategoricalDistribution(["x", "y"]),
    })
    values, _ = adaptive_genetic_search(
        ps, lambda v: -np.abs(ps.to_unit(v) - 0.9).sum(axis=1), ps.sample_values(4, seed=0),
        rng=np.random.default_rng(0), population_size=30, max_generations=15,
    )
    assert set(values[:, 0]) <= {1, 2}
    assert np.all((values[:, 1] >= 1) & (values[:, 1] <= 1024) & (values[:, 1] % 1 == 0))
    assert set(values[:, 2]) <= {0, 10, 20, 30}
    assert np.all((values[:, 3] >= 1e-4) & (values[:, 3] <= 1.0))
    assert set(values[:, 4]) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert set(values[:, 5]) <= {0, 1}


def test_speed_on_20_dims() -> None:
    ps = ParamSpace.from_distributions(
        {f"x{i:02d}": FloatDistribution(0.0, 1.0) for i in range(10)}
        | {f"c{i:02d}": CategoricalDistribution([0, 1, 2]) for i in range(10)}
    )
    w = np.random.default_rng(0).normal(size=20)
    start = time.perf_counter()
    adaptive_genetic_search(
        ps, lambda v: v @ w, ps.sample_values(50, seed=0), rng=np.random.default_rng(0),
        population_size=100, max_generations=50, patience=50,
    )
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"population_size": 1}, "population_size must be an integer >= 2"),
        ({"max_generations": -1}, "max_generations"),
        ({"patience": 0}, "patience"),
        ({"tol": -1.0}, "tol"),
        ({"k1": 1.5}, "k1 must be in \\[0, 1\\].*k1=1.0"),
        ({"k4": -0.1}, "k4"),
        ({"min_mutation": 2.0}, "min_mutation"),
        ({"elite": 0}, "elite must be an integer"),
        ({"elite": 100}, "elite"),
        ({"mutation_scale": 0.0}, "mutation_scale"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        adaptive_genetic_search(
            PS, lambda v: np.zeros(len(v)), SPACE.sample_values(4, seed=0),
            rng=np.random.default_rng(0), **kwargs,
        )


def test_bad_callbacks() -> None:
    with pytest.raises(ValueError, match="score returned 1 values"):
        adaptive_genetic_search(PS, lambda v: np.zeros(1), SPACE.sample_values(4, seed=0))
    with pytest.raises(ValueError, match="feasible returned"):
        adaptive_genetic_search(
            PS, lambda v: np.zeros(len(v)), SPACE.sample_values(4, seed=0),
            feasible=lambda v: np.ones(1, dtype=bool),
        )


def test_nan_scores_rank_last() -> None:
    def score(values: np.ndarray) -> np.ndarray:
        out = -((PS.to_unit(values) - 0.5) ** 2).sum(axis=1)
        out[values[:, 0] == 0] = np.nan
        return out

    values, scores = adaptive_genetic_search(
        PS, score, SPACE.sample_values(20, seed=0), rng=np.random.default_rng(0),
        max_generations=10,
    )
    assert np.all(np.isfinite(scores))
    assert values[0, 0] != 0
