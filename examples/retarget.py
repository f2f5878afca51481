"""Re-target a finished search to three new budgets, without training anything.

FBNetV3's predictor, fitted on the study's measured architecture-recipe pairs, ranks candidates
for any budget in CPU seconds. This script loads a study made by ``optuna-nars search`` (and
runs a short one first if the study does not exist yet), then asks ``NARSSampler.search`` for
the best predicted pairs under three FLOPs budgets -- by default the 10%, 30% and 60% FLOPs
quantiles of the search space, so each one is feasible. About two minutes on a CPU with the
short search, 20 seconds without it (107 s and 21 s measured on a busy 2-core machine):

    optuna-nars search --n-trials 12 --epochs 3          # or let this script do it
    python examples/retarget.py [--budgets 4e5,8e5,1.5e6] [--top 3]

The command line does the same for one budget: ``optuna-nars retarget --max-flops 8e5``.
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna

from optuna_nars.cli import main as cli_main
from optuna_nars.cost import space_costs
from optuna_nars.export import load_search_settings, load_study_space
from optuna_nars.pruner import trial_labels
from optuna_nars.samplers import NARSSampler, Proposal


def main(argv: list[str] | None = None) -> dict[float, list[Proposal]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", default="sqlite:///optuna-nars.db")
    parser.add_argument("--study-name", default="nars")
    parser.add_argument("--budgets", default=None,
                        help="comma-separated FLOPs budgets (default: 3 quantiles of the space)")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--n-trials", type=int, default=12,
                        help="trials of the search run first when the study does not exist")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of that search")
    parser.add_argument("--max-train-samples", type=int, default=None,
                        help="training-pool cap of that search (quicker, noisier)")
    args = parser.parse_args(argv)

    if args.study_name not in optuna.get_all_study_names(args.storage):
        print(f"No study {args.study_name!r} yet: a short search first.")
        search = ["search", "--storage", args.storage, "--study-name", args.study_name,
                  "--n-trials", str(args.n_trials), "--epochs", str(args.epochs)]
        if args.max_train_samples:
            search += ["--max-train-samples", str(args.max_train_samples)]
        if cli_main(search) != 0:
            raise SystemExit("the search failed")

    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    space = load_study_space(study)  # stored by `optuna-nars search`
    if space is None:
        raise SystemExit(f"study {args.study_name!r} was not made by optuna-nars search")
    seed = int(load_search_settings(study).get("seed", 0))
    sampler = NARSSampler(space, seed=seed)  # the predictor is refit from the storage

    if args.budgets:
        budgets = [float(b) for b in args.budgets.split(",")]
    else:
        flops = space_costs(space, space.sample_values(8192, seed=0))["flops"]
        budgets = [float(np.quantile(flops, q)) for q in (0.1, 0.3, 0.6)]

    labels = trial_labels(study)
    print(f"Study {args.study_name!r}: {len(labels)} labelled trials; best measured "
          f"{max(labels.values()):.4f}.")
    results: dict[float, list[Proposal]] = {}
    for budget in budgets:
        proposals = sampler.search(study, constraints={"flops": budget}, n=args.top)
        results[budget] = proposals
        print(f"\nFLOPs <= {budget / 1e6:.3f} M:")
        for rank, p in enumerate(proposals, start=1):
            assert p.candidate is not None
            print(f"  {rank}. predicted {p.predicted:.4f} ± {p.predicted_std:.4f}  "
                  f"{p.costs['flops'] / 1e6:.3f} MFLOPs  {p.costs['params'] / 1e3:.1f} k params\n"
                  f"     {p.candidate.architecture}\n     {p.candidate.recipe}")
    return results


if __name__ == "__main__":
    main()
