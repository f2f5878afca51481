"""A custom search space: declare the stages and the recipe, save it as JSON, search it.

The space below is for 8x8 greyscale digits: a stem, three stages of inverted-residual blocks
(kernel, expansion, width and depth searched per stage; squeeze-excitation in the last two) and
a narrower recipe space than the default one (no RMSprop; each optimizer's learning rate from
half to twice its own base rate, ``recipe.lr_factor``). It is saved
to ``custom_space.json``, read back (the JSON round trip is exact), and searched for a few trials
with the dashboard note and plots kept current. Under a minute on one CPU core (41 s measured
on a busy 2-core machine):

    python examples/custom_space.py [--n-trials 12] [--epochs 3] [--threads 1]

The JSON file works with the command line as well:

    optuna-nars space --space custom_space.json --max-flops 1e6
    optuna-nars search --space custom_space.json --n-trials 20 --max-flops 1e6
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
import torch

from optuna_nars import FloatRange, IntRange, RecipeSpec, SearchSpace, StageSpec
from optuna_nars.cost import space_costs
from optuna_nars.dashboard import DashboardCallback, DashboardObjective
from optuna_nars.export import save_study_space
from optuna_nars.pruner import EarlyStoppingPruner, trial_labels
from optuna_nars.samplers import NARSSampler
from optuna_nars.training import ClassificationObjective


def digits_space() -> SearchSpace:
    """A small joint space for 8x8 greyscale digits (upsampled to the searched resolution)."""
    stages = (
        # kernel, expansion, channels, depth, stride, squeeze-excitation
        StageSpec(3, 1, IntRange(8, 16, 8), 1, 1, False),
        StageSpec((3, 5), (2, 3, 4), IntRange(16, 32, 8), IntRange(1, 2), 2, (False, True)),
        StageSpec((3, 5), (2, 4), IntRange(24, 48, 8), IntRange(1, 3), 2, True,
                  activation=("hswish", "relu")),
    )
    recipe = RecipeSpec(
        optimizer=("sgd", "adamw"),
        # Multiples of each optimizer's base rate: SGD 0.03-0.125, AdamW 0.002-0.008.
        lr=FloatRange(0.5, 2.0, log=True),
        base_lr={"sgd": 2**-4, "adamw": 2**-8},
        weight_decay=FloatRange(1e-5, 1e-3, log=True),
        mixup_alpha=FloatRange(0.0, 0.2),
        dropout=FloatRange(0.0, 0.2),
        stochastic_depth=0.0,  # a constant: not searched
        ema=False,
        label_smoothing=FloatRange(0.0, 0.1),
    )
    return SearchSpace(
        stages=stages,
        resolution=(16, 20, 24),
        stem_channels=IntRange(8, 16, 8),
        stem_stride=1,
        head_channels=IntRange(64, 128, 32),
        activation="hswish",
        recipe=recipe,
        in_channels=1,
        num_classes=10,
    )


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-flops", type=float, default=1e6)
    parser.add_argument("--max-train-samples", type=int, default=None,
                        help="cap the training pool (quicker, noisier)")
    parser.add_argument("--storage", default="sqlite:///custom_space.db")
    parser.add_argument("--json", default="custom_space.json", help="where to save the space")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the networks are tiny, and more "
                             "threads slow their training down on a busy machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    space = digits_space()
    Path(args.json).write_text(space.to_json())
    loaded = SearchSpace.from_json(Path(args.json).read_text())
    assert loaded == space, "the JSON round trip is exact"
    flops = space_costs(space, space.sample_values(4096, seed=0))["flops"]
    print(f"{len(space.names)} searched parameters, {space.n_architectures():.3g} architectures; "
          f"{flops.min() / 1e6:.2f}-{flops.max() / 1e6:.2f} MFLOPs, "
          f"{(flops <= args.max_flops).mean():.0%} within {args.max_flops / 1e6:.2g} MFLOPs. "
          f"Saved to {args.json}.")

    budget = {"flops": args.max_flops}
    study = optuna.create_study(
        study_name="custom_space",
        storage=args.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=NARSSampler(loaded, constraints=budget, n_startup_trials=6, batch_size=4,
                            seed=0),
        pruner=EarlyStoppingPruner(n_calibration_trials=4),
    )
    save_study_space(study, loaded)  # lets `optuna-nars retarget` / `export` use this study
    objective = ClassificationObjective(loaded, dataset="digits", epochs=args.epochs,
                                        max_train_samples=args.max_train_samples)
    dashboard = DashboardCallback(loaded, constraints=budget, plot_every=4)
    study.optimize(DashboardObjective(objective), n_trials=args.n_trials, callbacks=[dashboard])
    dashboard.update(study)  # the final note and plots

    labels = trial_labels(study)
    if labels:
        best = max(labels, key=labels.get)
        attrs = study.trials[best].user_attrs
        print(f"best trial {best}: accuracy {labels[best]:.3f}, {attrs['flops'] / 1e6:.2f} "
              f"MFLOPs\n  {attrs['arch']}\n  {attrs['recipe']}")
    print(f"View it: optuna-dashboard {args.storage}")
    return study


if __name__ == "__main__":
    main()
