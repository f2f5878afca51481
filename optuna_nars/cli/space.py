"""``optuna-nars space``: a search space's parameters and size, the FLOPs and parameter ranges
of Sobol samples from it, and how much of it fits a budget (exit code 1 if nothing does)."""

from __future__ import annotations

import argparse

import numpy as np

from optuna_nars.cli._errors import EXIT_OK, CLIError
from optuna_nars.cli._format import budget_text
from optuna_nars.cli._parser import budget_from_args
from optuna_nars.cli._study import load_space
from optuna_nars.cost import METRICS, space_costs

__all__ = ["cmd_space"]


def cmd_space(args: argparse.Namespace) -> int:
    """Run ``optuna-nars space`` (``--json``: print the space's JSON only)."""
    space = load_space(args.space, args.in_channels, args.num_classes)
    if args.json:
        print(space.to_json())
        return EXIT_OK
    print(f"{len(space.names)} searched parameters; {space.n_architectures():.3g} architectures "
          f"(times a continuous recipe space); {space.in_channels}-channel input, "
          f"{space.num_classes} classes.")
    for name, dist in space.distributions().items():
        print(f"  {name:28s} {dist}")
        if name == "recipe.lr_factor" and space.recipe.base_lr is not None:
            rates = ", ".join(f"{o} {r:.4g}" for o, r in space.recipe.base_lr)
            print(f"  {'':28s} times the optimizer's base learning rate: {rates}")
    values = space.sample_values(args.samples, seed=0)
    costs = space_costs(space, values)
    for metric in METRICS:
        q = np.quantile(costs[metric], [0, 0.5, 1])
        print(f"{metric:>6}: min {q[0]:.4g}  median {q[1]:.4g}  max {q[2]:.4g} "
              f"(over {args.samples} Sobol samples)")
    budget = budget_from_args(args)
    if budget:
        ok = np.ones(len(values), dtype=bool)
        for metric, limit in budget.items():
            ok &= costs[metric] <= limit
        frac = ok.mean()
        print(f"Within {budget}: {frac:.1%} of the samples, about "
              f"{frac * space.n_architectures():.3g} architectures.")
        if not ok.any():
            cheapest = ", ".join(f"{m} {costs[m].min():.4g}" for m in budget)
            raise CLIError(f"no sampled candidate meets {budget_text(budget)}; the cheapest "
                           f"need {cheapest}. Raise the budget or shrink the space.")
    return EXIT_OK
