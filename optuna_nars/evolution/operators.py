"""The genetic operators: binary-tournament selection, uniform crossover, mutation in the unit
cube, and :func:`breed`, which applies them with the adaptive rates to pairs of parents.

Mutations go through the unit cube (``to_unit`` / ``from_unit`` of the
:class:`~optuna_nars.space.ParamSpace`), so children always lie inside the space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from optuna_nars.evolution.probabilities import mutation_probability

if TYPE_CHECKING:
    from optuna_nars.space import ParamSpace

__all__ = ["VariationOperators", "breed", "tournament"]


class VariationOperators:
    """Crossover and mutation on values matrices of one :class:`ParamSpace`.

    Args:
        param_space: The space the rows belong to.
        sigma: Standard deviation of a numeric mutation in the unit cube.
        min_step: The least move of a continuous gene in the unit cube (a smaller draw is
            lengthened, and turned back at the edges): 0 leaves the Gaussian step as drawn.
    """

    def __init__(self, param_space: ParamSpace, sigma: float, min_step: float = 0.0) -> None:
        self.space = param_space
        self.sigma = sigma
        self.min_step = min_step
        dims = [p.dim for p in param_space.params]
        self.categorical = np.asarray(param_space.categorical, dtype=bool)
        self.n_choices = np.array(
            [len(d.values) if c else 0 for d, c in zip(dims, self.categorical, strict=True)]
        )
        sizes = np.array([float(d.size) for d in dims])
        # Integer and stepped-float columns: a small move can round back to the same value.
        self.discrete = ~self.categorical & np.isfinite(sizes)
        self.movable = np.where(self.categorical, self.n_choices > 1, sizes > 1)
        self.continuous = ~self.categorical & ~self.discrete
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
        if self.min_step > 0:
            noise = self._at_least_min_step(u, noise)
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

    def _at_least_min_step(self, u: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """``noise`` with the continuous genes' steps lengthened to :attr:`min_step`, turned
        back where the edge of the unit interval would cut the move short."""
        size = np.maximum(np.abs(noise), self.min_step)
        sign = np.where(noise >= 0, 1.0, -1.0)
        short = np.abs(np.clip(u + sign * size, 0.0, 1.0) - u) < self.min_step
        sign = np.where(short, -sign, sign)
        return np.where(self.continuous, sign * size, noise)

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


def breed(
    ops: VariationOperators,
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


def tournament(f: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` binary-tournament winners (rank-based, so negative or shifted scores,
    e.g. predicted accuracies or a UCB, need no rescaling as roulette-wheel selection would)."""
    a, b = rng.integers(len(f), size=n), rng.integers(len(f), size=n)
    return np.where(f[a] >= f[b], a, b)
