"""How much of each benchmark table NARSSampler's candidate pool holds.

NARSSampler ranks ``pool_size`` scrambled-Sobol points (20,000 by default), drawn as
``ParamSpace.sample_values(pool_size, seed=seed)`` over the problem's distributions. On a
small discrete space the points repeat, and the pool leaves candidates out. This prints, per
table problem (no budget: a budget only filters the pool further), the space's size and the
pool's distinct points, median over seeds, and how many of the space's points that is.

Run from the repository root::

    python benchmarks/pool_coverage.py [--seeds 10] [--pool-size 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.suite.problems import get_problem  # noqa: E402
from optuna_nars.space import ParamSpace  # noqa: E402

PROBLEMS = ("nasbench201-cifar10", "macro", "width5x8-flops-half", "hpobench-credit-g",
            "hpobench-kc1", "hpolib-protein-structure", "hpolib-slice-localization")


def distinct_in_pool(space: ParamSpace, pool_size: int, seed: int) -> int:
    """Distinct rows among the pool's ``pool_size`` Sobol points."""
    return len(np.unique(space.sample_values(pool_size, seed=seed), axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--pool-size", type=int, default=20_000)
    args = parser.parse_args()
    if args.seeds < 1 or args.pool_size < 1:
        parser.error("--seeds and --pool-size must be at least 1.")
    print("| problem | space | distinct pool points (median) | share of the space |")
    print("|---|---|---|---|")
    for name in PROBLEMS:
        problem = get_problem(name)
        space = ParamSpace.from_distributions(problem.distributions)
        counts = [distinct_in_pool(space, args.pool_size, seed) for seed in range(args.seeds)]
        median = statistics.median(counts)
        print(f"| {name} | {space.size:,.0f} | {median:,.0f} | {median / space.size:.0%} |")


if __name__ == "__main__":
    main()
