"""Stage 3 of NARS: an adaptive genetic algorithm over the accuracy predictor.

FBNetV3 (Dai et al., CVPR 2021) seeds a genetic search with stage 2's best architecture-recipe
pairs and evolves them against the predictor, within the resource constraints, until the best
predicted score stops improving. Crossover and mutation rates adapt per individual as in
Srinivas & Patnaik (IEEE T-SMC 24(4), 1994): good individuals are disrupted less, below-average
ones always, which keeps diversity without losing the best.

Everything works on the values matrix of a :class:`~optuna_nars.space.ParamSpace`; mutations go
through the unit cube (``to_unit`` / ``from_unit``), so children always lie inside the space.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import optuna

from optuna_nars.space import ParamSpace

__all__ = [
    "adaptive_genetic_search",
    "adaptive_probability",
    "crossover_probability",
    "mutation_probability",
]

_logger = optuna.logging.get_logger("optuna.optuna_nars.evolution")

Score = Callable[[np.ndarray], np.ndarray]
Feasible = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------------------------
# Adaptive probabilities (Srinivas & Patnaik 1994)
# --------------------------------------------------------------------------------------------


def adaptive_probability(
    f: np.ndarray | float, f_max: float, f_avg: float, k_above: float, k_below: float
) -> np.ndarray:
    """``k_above (f_max - f) / (f_max - f_avg)`` where ``f >= f_avg``, else ``k_below``.

    The common form of Srinivas & Patnaik's crossover (``k1``, ``k3``) and mutation (``k2``,
    ``k4``) rates, element-wise, clipped to [0, 1]. When ``f_max == f_avg`` (a population of
    equal scores, within rounding) the ratio is undefined; the population has converged, so every
    individual gets ``k_below``, the disruptive rate, to restore diversity (elitism keeps the
    best anyway).
    """
    f = np.asarray(f, dtype=float)
    spread = f_max - f_avg
    if not spread > 1e-12 * max(1.0, abs(f_max)):
        return np.full(f.shape, float(np.clip(k_below, 0.0, 1.0)))
    p = np.where(f >= f_avg, k_above * (f_max - f) / spread, k_below)
    return np.clip(p, 0.0, 1.0)


def crossover_probability(
    f_parent: np.ndarray | float,
    f_max: float,
    f_avg: float,
    k1: float = 1.0,
    k3: float = 1.0,
) -> np.ndarray:
    """Crossover rate of a pair: ``f_parent`` is the larger of the two parents' fitness."""
    return adaptive_probability(f_parent, f_max, f_avg, k1, k3)


def mutation_probability(
    f: np.ndarray | float,
    f_max: float,
    f_avg: float,
    k2: float = 0.5,
    k4: float = 0.5,
    min_mutation: float = 0.005,
) -> np.ndarray:
    """Per-gene mutation rate of an individual of fitness ``f``, floored at ``min_mutation`` so
    the best individual (rate 0 by the formula) still moves."""
    return np.maximum(adaptive_probability(f, f_max, f_avg, k2, k4), min_mutation)


# --------------------------------------------------------------------------------------------
# Variation operators
# --------------------------------------------------------------------------------------------


class _Operators:
    """Crossover and mutation on values matrices of one :class:`ParamSpace`."""

    def __init__(self, param_space: ParamSpace, sigma: float) -> None:
        self.space = param_space
        self.sigma = sigma
        dims = [p.dim for p in param_space.params]
        self.categorical = np.asarray(param_space.categorical, dtype=bool)
        self.n_choices = np.array(
            [len(d.values) if c else 0 for d, c in zip(dims, self.categorical, strict=True)]
        )
        sizes = np.array([float(d.size) for d in dims])
        # Integer and stepped-float columns: a small move can round back to the same value.
        self.discrete = ~self.categorical & np.isfinite(sizes)
        self.movable = np.where(self.categorical, self.n_choices > 1, sizes > 1)
        self.sizes = sizes

    def crossover(
        self, a: np.ndarray, b: np.ndarray, p: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform crossover of row pairs ``(a[i], b[i])``, each pair with probability ``p[i]``."""
        cross = rng.random(len(a)) < p
        swap = cross[:, None] & (rng.random(a.shape) < 0.5)
        return np.where(swap, b, a), np.where(swap, a, b)

    def mutate(
        self,
        x: np.ndarray,
        pm: np.ndarray,
        rng: np.random.Generator,
        force: np.ndarray | None = None,
    ) -> np.ndarray:
        """Mutate each gene of row ``i`` with probability ``pm[i]``; rows flagged in ``force``
        that drew no gene get one, chosen uniformly.

        Categorical genes move to another choice, uniformly; numeric genes get a Gaussian step
        in the unit cube (clipped to [0, 1]), and discrete numeric genes that round back to
        their old value step to a neighbour, so a mutation always changes the gene.
        """
        n, d = x.shape
        if d == 0 or n == 0:
            return x.copy()
        mask = (rng.random((n, d)) < pm[:, None]) & self.movable
        if force is not None and self.movable.any():
            empty = np.flatnonzero(force & ~mask.any(axis=1))
            movable = np.flatnonzero(self.movable)
            mask[empty, movable[rng.integers(len(movable), size=len(empty))]] = True
        u = self.space.to_unit(x)
        noise = rng.normal(0.0, self.sigma, (n, d))
        new_u = np.clip(u + noise, 0.0, 1.0)
        # Categorical (values hold the choice index): a uniformly chosen *other* choice, placed
        # at the centre of its cell of the unit interval.
        k = np.maximum(self.n_choices, 1)
        shift = rng.integers(1, np.maximum(k, 2), size=(n, d))
        new_u = np.where(self.categorical, ((x + shift) % k + 0.5) / k, new_u)
        out = np.where(mask, self.space.from_unit(new_u), x)
        stuck = mask & self.discrete & (out == x)
        if stuck.any():
            out = self._step(x, out, u, noise, stuck)
        return out

    def _step(
        self, x: np.ndarray, out: np.ndarray, u: np.ndarray, noise: np.ndarray, stuck: np.ndarray
    ) -> np.ndarray:
        """Move the ``stuck`` discrete genes to a neighbouring grid value."""
        cell = 1.0 / np.where(np.isfinite(self.sizes), np.maximum(self.sizes, 1.0), 1.0)
        # In the direction of the noise, bouncing off the edges of the unit interval; steps
        # grow because cells of log-scaled integers are uneven.
        direction = np.where(noise >= 0, 1.0, -1.0)
        direction = np.where(u + 0.75 * cell * direction > 1.0, -1.0, direction)
        direction = np.where(u + 0.75 * cell * direction < 0.0, 1.0, direction)
        for j in range(1, 9):
            moved = self.space.from_unit(np.clip(u + direction * cell * 0.75 * j, 0.0, 1.0))
            take = stuck & (moved != x)
            out = np.where(take, moved, out)
            stuck = stuck & ~take
            if not stuck.any():
                break
        return out


def _row_keys(x: np.ndarray) -> list[bytes]:
    # Hashable row keys: a set of bytes beats np.unique(axis=0) by far at these sizes.
    # (+ 0.0 turns -0.0 into 0.0, which would otherwise hash differently.)
    return [row.tobytes() for row in np.ascontiguousarray(x + 0.0)]


def _distinct(x: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of every distinct row, in order."""
    seen: set[bytes] = set()
    keep = []
    for i, key in enumerate(_row_keys(x)):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=int)


def _unique_rows(values: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows, each with its best score, sorted by score (best first)."""
    order = np.argsort(-scores, kind="stable")
    values, scores = values[order], scores[order]
    keep = _distinct(values)
    return values[keep], scores[keep]


def _isin_rows(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Which rows of ``x`` also occur in ``ref``."""
    known = set(_row_keys(ref))
    return np.array([key in known for key in _row_keys(x)], dtype=bool)


def _clean_scores(scores: np.ndarray, n: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=float).reshape(-1)
    if len(scores) != n:
        raise ValueError(f"score returned {len(scores)} values for {n} rows; return one per row.")
    # NaN or -inf (e.g. a failed prediction) ranks last but keeps the statistics finite.
    bad = ~np.isfinite(scores)
    if bad.any():
        finite = scores[~bad]
        floor = finite.min() - 1.0 if len(finite) else 0.0
        scores = np.where(np.isposinf(scores), np.nan, scores)  # +inf is no better
        scores = np.where(np.isfinite(scores), scores, floor)
    return scores


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------


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
    k1: float = 1.0,
    k2: float = 0.5,
    k3: float = 1.0,
    k4: float = 0.5,
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
    _check_args(population_size, max_generations, patience, tol, min_mutation, mutation_scale,
                max_retries, (k1, k2, k3, k4))
    default_elite = max(1, population_size // 10)
    elite = default_elite if elite is None else elite
    if isinstance(elite, bool) or not isinstance(elite, (int, np.integer)) or not (
        1 <= elite < population_size
    ):
        raise ValueError(
            f"elite must be an integer in [1, population_size - 1], got {elite!r}; "
            f"use e.g. elite={default_elite}."
        )
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    d = len(param_space)
    initial = np.asarray(initial, dtype=float).reshape(-1, d)
    ops = _Operators(param_space, mutation_scale)
    n_scored = 0

    def is_feasible(x: np.ndarray) -> np.ndarray:
        if feasible is None or len(x) == 0:
            return np.ones(len(x), dtype=bool)
        mask = np.asarray(feasible(x), dtype=bool).reshape(-1)
        if len(mask) != len(x):
            raise ValueError(
                f"feasible returned {len(mask)} values for {len(x)} rows; return one per row."
            )
        return mask

    def evaluate(x: np.ndarray) -> np.ndarray:
        nonlocal n_scored
        if len(x) == 0:
            return np.zeros(0)
        n_scored += len(x)
        return _clean_scores(score(x), len(x))

    # ---- initial population ------------------------------------------------------------
    pop = initial[is_feasible(initial)]
    pop = pop[_distinct(pop)]
    pop_f = evaluate(pop)
    pop, pop_f = _unique_rows(pop, pop_f)
    pop, pop_f = pop[:population_size], pop_f[:population_size]
    for _ in range(max_retries):
        missing = population_size - len(pop)
        if missing <= 0:
            break
        # Mutants of the seeds keep the search near them; random points add diversity.
        extra = [param_space.sample_values(missing, method="random", seed=_seed(rng))]
        if len(pop):
            parents = pop[rng.integers(len(pop), size=missing)]
            extra.append(ops.mutate(parents, np.full(missing, k4), rng))
        cand = np.concatenate(extra)
        cand = cand[is_feasible(cand)]
        # Drop rows already in the population before scoring them.
        cand = cand[_distinct(cand)]
        cand = cand[~_isin_rows(cand, pop)]
        cand = cand[rng.permutation(len(cand))[:missing]]
        pop = np.concatenate([pop, cand])
        pop_f = np.concatenate([pop_f, evaluate(cand)])
    if len(pop) == 0:
        raise ValueError(
            "No feasible individual: every initial row and every random point of the space "
            "violates the constraint; loosen the constraint or pass feasible initial rows."
        )
    pop, pop_f = _unique_rows(pop, pop_f)
    archive, archive_f = pop, pop_f
    history = [float(pop_f[0])]

    # ---- generations -------------------------------------------------------------------
    generation = 0
    for generation in range(1, max_generations + 1):
        n = len(pop)
        f_max, f_avg = float(pop_f.max()), float(pop_f.mean())
        n_children = max(population_size - min(elite, n), 2)
        n_pairs = math.ceil(n_children / 2)
        ia, ib = _tournament(pop_f, n_pairs, rng), _tournament(pop_f, n_pairs, rng)
        pc = crossover_probability(np.maximum(pop_f[ia], pop_f[ib]), f_max, f_avg, k1, k3)
        parent_f = (pop_f[ia], pop_f[ib], f_max, f_avg)

        breed = partial(_breed, ops, pop, ia, ib, pc, parent_f, (k2, k4, min_mutation), rng)

        children = breed(np.arange(n_pairs))
        ok = is_feasible(children)
        for _ in range(max_retries):
            if ok.all():
                break
            # Child row r comes from pair r % n_pairs: regenerate those pairs, keep the
            # fresh children where the old ones were infeasible.
            redo = np.unique(np.flatnonzero(~ok) % n_pairs)
            fresh = breed(redo)
            rows = np.concatenate([redo, redo + n_pairs])
            bad = ~ok[rows]
            children[rows[bad]] = fresh[bad]
            ok[rows[bad]] = is_feasible(fresh[bad])
        if not ok.all():
            # Out of retries: fall back on the child's first parent, which is feasible.
            bad = np.flatnonzero(~ok)
            first = np.where(bad < n_pairs, ia[bad % n_pairs], ib[bad % n_pairs])
            children[bad] = pop[first]
        children = children[_distinct(children)]
        children = children[~_isin_rows(children, pop)]
        child_f = evaluate(children)
        children, child_f = _unique_rows(children, child_f)

        # Generational replacement with elitism (Srinivas & Patnaik): the best ``elite``
        # parents survive, the best children fill the rest, then parents if children run
        # short. (Letting all parents compete with the children, (mu + lambda), converged
        # prematurely in our tests: the population collapses around the best individual.)
        n_new = min(len(children), population_size - min(elite, len(pop)))
        n_old = population_size - n_new
        pop, pop_f = _unique_rows(
            np.concatenate([pop[:n_old], children[:n_new]]),
            np.concatenate([pop_f[:n_old], child_f[:n_new]]),
        )
        archive, archive_f = _unique_rows(
            np.concatenate([archive, children]), np.concatenate([archive_f, child_f])
        )
        archive, archive_f = archive[:population_size], archive_f[:population_size]
        history.append(float(archive_f[0]))
        if generation >= patience and history[-1] - history[-1 - patience] <= tol:
            break

    _logger.debug(
        f"Adaptive GA: {generation} generations, {n_scored} rows scored, best "
        f"{history[0]:.4g} -> {history[-1]:.4g}."
    )
    if stats is not None:
        stats.update(generations=generation, best_history=history, n_scored=n_scored)
    return archive, archive_f


def _breed(
    ops: _Operators,
    pop: np.ndarray,
    ia: np.ndarray,
    ib: np.ndarray,
    pc: np.ndarray,
    parent_f: tuple[np.ndarray, np.ndarray, float, float],
    rates: tuple[float, float, float],
    rng: np.random.Generator,
    pairs: np.ndarray,
) -> np.ndarray:
    """The two children of each pair in ``pairs``: rows ``[children a..., children b...]``.

    Uniform crossover with the pair's adaptive rate, then mutation at the adaptive rate of the
    child's fitness, taken as that of the parent it shares most genes with (children are only
    scored once, after mutation, to spend one ``score`` call per generation).
    """
    fa, fb, f_max, f_avg = parent_f
    k2, k4, min_mutation = rates
    a, b = pop[ia[pairs]], pop[ib[pairs]]
    ca, cb = ops.crossover(a, b, pc[pairs], rng)
    f_ca = np.where((ca == a).sum(axis=1) >= (ca == b).sum(axis=1), fa[pairs], fb[pairs])
    f_cb = np.where((cb == a).sum(axis=1) >= (cb == b).sum(axis=1), fa[pairs], fb[pairs])
    pm = mutation_probability(np.concatenate([f_ca, f_cb]), f_max, f_avg, k2, k4, min_mutation)
    children = np.concatenate([ca, cb])
    # A child that is a copy of a parent would be discarded as a duplicate: give it at least
    # one mutation, so the best individuals (rate ~min_mutation) still search their
    # neighbourhood each generation.
    copy = (children == np.concatenate([a, a])).all(axis=1)
    copy |= (children == np.concatenate([b, b])).all(axis=1)
    return ops.mutate(children, pm, rng, force=copy)


def _tournament(f: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` binary-tournament winners (rank-based, so negative or shifted scores,
    e.g. predicted accuracies or a UCB, need no rescaling as roulette-wheel selection would)."""
    a, b = rng.integers(len(f), size=n), rng.integers(len(f), size=n)
    return np.where(f[a] >= f[b], a, b)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _check_args(
    population_size: int,
    max_generations: int,
    patience: int,
    tol: float,
    min_mutation: float,
    mutation_scale: float,
    max_retries: int,
    ks: tuple[float, float, float, float],
) -> None:
    for name, value, minimum, example in (
        ("population_size", population_size, 2, 100),
        ("max_generations", max_generations, 0, 50),
        ("patience", patience, 1, 10),
        ("max_retries", max_retries, 0, 10),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(
                f"{name} must be an integer >= {minimum}, got {value!r}; "
                f"use e.g. {name}={example}."
            )
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"tol must be a number >= 0, got {tol!r}; use e.g. tol=1e-6.")
    if not 0 <= min_mutation <= 1:
        raise ValueError(
            f"min_mutation must be in [0, 1], got {min_mutation!r}; use e.g. min_mutation=0.005."
        )
    if not mutation_scale > 0:
        raise ValueError(
            f"mutation_scale must be > 0, got {mutation_scale!r}; use e.g. mutation_scale=0.1."
        )
    for name, k, default in zip(("k1", "k2", "k3", "k4"), ks, (1.0, 0.5, 1.0, 0.5), strict=True):
        if not 0 <= k <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {k!r}; use e.g. {name}={default}.")
