"""The adaptive genetic search: :func:`adaptive_genetic_search`, stage 3 of NARS.

One generation: binary tournaments pick parent pairs, :func:`~.operators.breed` makes two
children per pair at the adaptive rates, infeasible children are bred again (then replaced by a
parent), and generational replacement with elitism forms the next population. An archive keeps
the best individuals ever seen; the search stops when its best score stalls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import optuna

from optuna_nars._validation import check_int, check_real
from optuna_nars.evolution._rows import distinct, isin_rows, unique_rows
from optuna_nars.evolution.operators import VariationOperators, breed, tournament
from optuna_nars.evolution.probabilities import crossover_probability
from optuna_nars.space import ParamSpace

__all__ = ["adaptive_genetic_search"]

_logger = optuna.logging.get_logger("optuna." + __name__)

Score = Callable[[np.ndarray], np.ndarray]
Feasible = Callable[[np.ndarray], np.ndarray]


def adaptive_genetic_search(
    param_space: ParamSpace,
    score: Score,
    initial: np.ndarray,
    *,
    feasible: Feasible | None = None,
    population_size: int = 100,
    max_generations: int = 50,
    patience: int = 10,
    tol: float = 1e-6,
    k1: float = 1.0, k2: float = 0.5, k3: float = 1.0, k4: float = 0.5,
    min_mutation: float = 0.005,
    elite: int | None = None,
    mutation_scale: float = 0.1,
    max_retries: int = 10,
    rng: np.random.Generator | int | None = None,
    stats: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximise ``score`` over ``param_space`` with an adaptive genetic algorithm.

    Args:
        param_space: The space; rows are its values matrices.
        score: Maps a values matrix ``(n, d)`` to fitness ``(n,)``, maximised (e.g. the
            predictor's mean, or a UCB). Called once per generation on the new children.
        initial: Seed population (e.g. stage 2's best pairs), ``(m, d)``. Infeasible rows are
            dropped; the best ``population_size`` distinct rows are kept, and missing ones are
            filled with mutants of the seeds and random points of the space.
        feasible: Maps a values matrix to a boolean mask (e.g. FLOPs under budget). Infeasible
            children are regenerated up to ``max_retries`` times, then replaced by a parent:
            no infeasible row is ever returned.
        population_size: Individuals per generation.
        max_generations: Hard cap on generations.
        patience, tol: Stop when the best score gained ``<= tol`` over ``patience`` generations.
        k1, k3: Crossover rates of above- / below-average pairs (Srinivas & Patnaik).
        k2, k4: Per-gene mutation rates of above- / below-average individuals.
        min_mutation: Floor of the mutation rate, so the best individual still moves.
        elite: Best parents carried over to the next generation; the children fill the rest
            (default ``max(1, population_size // 10)``). The best individuals ever seen are
            kept apart in the returned archive (FBNetV3's "keep the top K").
        mutation_scale: Standard deviation of a numeric mutation in the unit cube.
        max_retries: Attempts to regenerate an infeasible child.
        rng: A ``numpy.random.Generator`` (or a seed).
        stats: If given, filled with ``generations``, ``best_history``, ``n_scored``.

    Returns:
        ``(values, scores)``: the best distinct feasible individuals found during the whole
        search (up to ``population_size``), sorted by score, best first.
    """
    _check_arguments(population_size, max_generations, patience, tol, min_mutation,
                     mutation_scale, max_retries, (k1, k2, k3, k4))
    elite = _check_elite(elite, population_size)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    initial = np.asarray(initial, dtype=float).reshape(-1, len(param_space))
    ops = VariationOperators(param_space, mutation_scale)
    evaluator = _Evaluator(score, feasible)
    pop, pop_f = _initial_population(ops, evaluator, initial, population_size, k4, max_retries,
                                     rng)
    archive, archive_f = pop, pop_f
    history = [float(pop_f[0])]
    generation = 0
    for generation in range(1, max_generations + 1):
        children, child_f = _offspring(ops, evaluator, pop, pop_f, population_size, elite,
                                       (k1, k2, k3, k4, min_mutation), max_retries, rng)
        pop, pop_f = _replacement(pop, pop_f, children, child_f, population_size, elite)
        archive, archive_f = unique_rows(
            np.concatenate([archive, children]), np.concatenate([archive_f, child_f])
        )
        archive, archive_f = archive[:population_size], archive_f[:population_size]
        history.append(float(archive_f[0]))
        if generation >= patience and history[-1] - history[-1 - patience] <= tol:
            break

    _logger.debug(
        f"Adaptive GA: {generation} generations, {evaluator.n_scored} rows scored, best "
        f"{history[0]:.4g} -> {history[-1]:.4g}."
    )
    if stats is not None:
        stats.update(generations=generation, best_history=history, n_scored=evaluator.n_scored)
    return archive, archive_f


class _Evaluator:
    """The caller's ``score`` and ``feasible``, with their outputs checked; counts the rows
    scored."""

    def __init__(self, score: Score, feasible: Feasible | None) -> None:
        self._score = score
        self._feasible = feasible
        self.n_scored = 0

    def feasible(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of the feasible rows of ``x``."""
        if self._feasible is None or len(x) == 0:
            return np.ones(len(x), dtype=bool)
        mask = np.asarray(self._feasible(x), dtype=bool).reshape(-1)
        if len(mask) != len(x):
            raise ValueError(
                f"feasible returned {len(mask)} values for {len(x)} rows; return one per row."
            )
        return mask

    def score(self, x: np.ndarray) -> np.ndarray:
        """Finite fitness of the rows of ``x`` (NaN and infinities rank last)."""
        if len(x) == 0:
            return np.zeros(0)
        self.n_scored += len(x)
        scores = np.asarray(self._score(x), dtype=float).reshape(-1)
        if len(scores) != len(x):
            raise ValueError(
                f"score returned {len(scores)} values for {len(x)} rows; return one per row."
            )
        # NaN or -inf (e.g. a failed prediction) ranks last but keeps the statistics finite.
        bad = ~np.isfinite(scores)
        if bad.any():
            finite = scores[~bad]
            floor = finite.min() - 1.0 if len(finite) else 0.0
            scores = np.where(np.isposinf(scores), np.nan, scores)  # +inf is no better
            scores = np.where(np.isfinite(scores), scores, floor)
        return scores


def _initial_population(
    ops: VariationOperators,
    evaluator: _Evaluator,
    initial: np.ndarray,
    population_size: int,
    k4: float,
    max_retries: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The feasible distinct seeds, best first, topped up to ``population_size``."""
    pop = initial[evaluator.feasible(initial)]
    pop = pop[distinct(pop)]
    pop, pop_f = unique_rows(pop, evaluator.score(pop))
    pop, pop_f = pop[:population_size], pop_f[:population_size]
    for _ in range(max_retries):
        missing = population_size - len(pop)
        if missing <= 0:
            break
        # Mutants of the seeds keep the search near them; random points add diversity.
        seed = int(rng.integers(2**31 - 1))
        extra = [ops.space.sample_values(missing, method="random", seed=seed)]
        if len(pop):
            parents = pop[rng.integers(len(pop), size=missing)]
            extra.append(ops.mutate(parents, np.full(missing, k4), rng))
        cand = np.concatenate(extra)
        cand = cand[evaluator.feasible(cand)]
        # Drop rows already in the population before scoring them.
        cand = cand[distinct(cand)]
        cand = cand[~isin_rows(cand, pop)]
        cand = cand[rng.permutation(len(cand))[:missing]]
        pop = np.concatenate([pop, cand])
        pop_f = np.concatenate([pop_f, evaluator.score(cand)])
    if len(pop) == 0:
        raise ValueError(
            "No feasible individual: every initial row and every random point of the space "
            "violates the constraint; loosen the constraint or pass feasible initial rows."
        )
    return unique_rows(pop, pop_f)


def _offspring(
    ops: VariationOperators,
    evaluator: _Evaluator,
    pop: np.ndarray,
    pop_f: np.ndarray,
    population_size: int,
    elite: int,
    rates: tuple[float, float, float, float, float],
    max_retries: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One generation's new, distinct, feasible children with their scores, best first."""
    k1, k2, k3, k4, min_mutation = rates
    f_max, f_avg = float(pop_f.max()), float(pop_f.mean())
    n_children = max(population_size - min(elite, len(pop)), 2)
    n_pairs = math.ceil(n_children / 2)
    ia, ib = tournament(pop_f, n_pairs, rng), tournament(pop_f, n_pairs, rng)
    pc = crossover_probability(np.maximum(pop_f[ia], pop_f[ib]), f_max, f_avg, k1, k3)
    parent_f = (pop_f[ia], pop_f[ib], f_max, f_avg)
    pairs_breed = partial(breed, ops, pop, ia, ib, pc, parent_f, (k2, k4, min_mutation), rng)
    children = pairs_breed(np.arange(n_pairs))
    ok = evaluator.feasible(children)
    for _ in range(max_retries):
        if ok.all():
            break
        # Child row r comes from pair r % n_pairs: regenerate those pairs, keep the
        # fresh children where the old ones were infeasible.
        redo = np.unique(np.flatnonzero(~ok) % n_pairs)
        fresh = pairs_breed(redo)
        rows = np.concatenate([redo, redo + n_pairs])
        bad = ~ok[rows]
        children[rows[bad]] = fresh[bad]
        ok[rows[bad]] = evaluator.feasible(fresh[bad])
    if not ok.all():
        # Out of retries: fall back on the child's first parent, which is feasible.
        bad = np.flatnonzero(~ok)
        first = np.where(bad < n_pairs, ia[bad % n_pairs], ib[bad % n_pairs])
        children[bad] = pop[first]
    children = children[distinct(children)]
    children = children[~isin_rows(children, pop)]
    return unique_rows(children, evaluator.score(children))


def _replacement(
    pop: np.ndarray,
    pop_f: np.ndarray,
    children: np.ndarray,
    child_f: np.ndarray,
    population_size: int,
    elite: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The next population, best first.

    Generational replacement with elitism (Srinivas & Patnaik): the best ``elite`` parents
    survive, the best children fill the rest, then parents if children run short. (Letting all
    parents compete with the children, (mu + lambda), converged prematurely in our tests: the
    population collapses around the best individual.)
    """
    n_new = min(len(children), population_size - min(elite, len(pop)))
    n_old = population_size - n_new
    return unique_rows(
        np.concatenate([pop[:n_old], children[:n_new]]),
        np.concatenate([pop_f[:n_old], child_f[:n_new]]),
    )


def _check_arguments(
    population_size: int,
    max_generations: int,
    patience: int,
    tol: float,
    min_mutation: float,
    mutation_scale: float,
    max_retries: int,
    ks: tuple[float, float, float, float],
) -> None:
    # The checked values are not used: the search keeps the caller's own (numpy) types.
    check_int("population_size", population_size, minimum=2, example=100)
    check_int("max_generations", max_generations, minimum=0, example=50)
    check_int("patience", patience, minimum=1, example=10)
    check_int("max_retries", max_retries, minimum=0, example=10)
    check_real("tol", tol, low=0, example=1e-6)
    check_real("min_mutation", min_mutation, low=0, high=1, example=0.005)
    check_real("mutation_scale", mutation_scale, low=0, low_open=True, example=0.1)
    for name, k, default in zip(("k1", "k2", "k3", "k4"), ks, (1.0, 0.5, 1.0, 0.5), strict=True):
        check_real(name, k, low=0, high=1, example=default)


def _check_elite(elite: int | None, population_size: int) -> int:
    default = max(1, population_size // 10)
    if elite is None:
        return default
    check_int("elite", elite, minimum=1, maximum=population_size - 1, example=default)
    return elite
