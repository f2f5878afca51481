"""A correctness check of the harness itself.

RandomSampler draws every grid parameter uniformly, so on a tabular problem its trials are
i.i.d. draws from the distribution F of one evaluation of a uniformly random configuration, and
the best of N has the exact law P(max <= v) = F(v)^N. Running RandomSampler through the same
``run_study`` the grid uses, over many seeds, must reproduce E[best of N] within its standard
error; a harness that mislabels rows, loses trials or mistracks best-so-far would not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.samplers import RandomSampler

from benchmarks.suite.problems import TabularProblem, get_problem
from benchmarks.suite.runner import quiet, run_study


def random_best_of_n(
    problem: TabularProblem, n_values: Sequence[int], seeds: int
) -> list[dict[str, Any]]:
    """Measured mean +- standard error of RandomSampler's best-of-N against the expectation."""
    quiet()
    n_max = max(n_values)
    best = np.array([
        run_study(problem, RandomSampler(seed=seed), n_max, seed)["best"] for seed in range(seeds)
    ])
    rows = []
    for n in n_values:
        b = best[:, n - 1]
        mean, se = float(b.mean()), float(b.std(ddof=1) / math.sqrt(len(b)))
        expected = problem.expected_best_of(n)
        rows.append({"problem": problem.name, "n": n, "seeds": seeds, "expected": expected,
                     "mean": mean, "se": se, "z": (mean - expected) / se if se > 0 else math.nan})
    return rows


def harness_check(
    problems: Sequence[str], n_values: Sequence[int] = (10, 25, 50, 100, 200), seeds: int = 100
) -> list[dict[str, Any]]:
    rows = []
    for name in problems:
        problem = get_problem(name)
        if isinstance(problem, TabularProblem) and not problem.budgets:
            rows.extend(random_best_of_n(problem, n_values, seeds))
    return rows
