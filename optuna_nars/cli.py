"""The ``optuna-nars`` command line.

Exit codes: 0 success, 1 a run-time error (bad dataset path, unreachable storage, a budget no
candidate meets, ...), 2 bad arguments (from argparse).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna

from optuna_nars.cost import METRICS, space_costs
from optuna_nars.data import DATASETS, dataset_info
from optuna_nars.pruner import EarlyStoppingPruner, get_label_step, trial_labels
from optuna_nars.sampler import NARSSampler
from optuna_nars.space import SearchSpace
from optuna_nars.training import ClassificationObjective

PRESETS = ("tiny", "cifar", "fbnetv3")
DEFAULT_STORAGE = "sqlite:///optuna-nars.db"


class CLIError(Exception):
    """An error the user can fix; printed without a traceback."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def load_space(spec: str, in_channels: int | None = None, num_classes: int | None = None
               ) -> SearchSpace:
    """A preset name or a JSON file, adapted to the dataset's channels and classes."""
    if spec in PRESETS:
        kwargs = {}
        if in_channels is not None:
            kwargs["in_channels"] = in_channels
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        return getattr(SearchSpace, spec)(**kwargs)
    path = Path(spec)
    if not path.is_file():
        raise CLIError(f"--space {spec!r} is neither a preset {PRESETS} nor a JSON file.")
    try:
        space = SearchSpace.from_json(path.read_text())
    except (ValueError, TypeError) as err:
        raise CLIError(f"--space {spec}: {err}") from None
    changes = {}
    if in_channels is not None and in_channels != space.in_channels:
        changes["in_channels"] = in_channels
    if num_classes is not None and num_classes != space.num_classes:
        changes["num_classes"] = num_classes
    return space.replace(**changes) if changes else space


def _budget(args: argparse.Namespace) -> dict[str, float]:
    return {
        name: value
        for name, value in (("flops", args.max_flops), ("params", args.max_params))
        if value is not None
    }


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def best_trials_table(study: optuna.Study, top: int) -> str:
    """The best trials by their label (accuracy at the early-stopping label step), which is
    comparable across full-length and early-stopped trials."""
    labels = trial_labels(study)
    trials = {t.number: t for t in study.trials}
    best = sorted(labels, key=lambda n: labels[n], reverse=True)[:top]
    rows = []
    for n in best:
        t = trials[n]
        rows.append([
            str(n),
            f"{labels[n]:.4f}",
            f"{t.user_attrs.get('flops', float('nan')) / 1e6:.2f}",
            f"{t.user_attrs.get('params', float('nan')) / 1e3:.1f}",
            str(t.user_attrs.get("arch", "")),
            str(t.user_attrs.get("recipe", "")),
        ])
    header = ["trial", "accuracy", "MFLOPs", "kparams", "arch", "recipe"]
    return _table(rows, header) if rows else "(no labelled trials yet)"


def cmd_search(args: argparse.Namespace) -> int:
    try:
        info = dataset_info(args.dataset, data_dir=args.data_dir, download=args.download)
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    space = load_space(args.space, info.in_channels, info.num_classes)
    try:
        sampler = NARSSampler(space, constraints=_budget(args) or None, seed=args.seed)
        objective = ClassificationObjective(
            space,
            dataset=args.dataset,
            data_dir=args.data_dir,
            download=args.download,
            epochs=args.epochs,
            batch_size=args.batch_size,
            device=args.device,
            seed=args.seed,
            max_train_samples=args.max_train_samples,
        )
    except ValueError as err:
        raise CLIError(str(err)) from None
    pruner = EarlyStoppingPruner(args.calibration_trials, threshold=args.threshold)
    try:
        study = optuna.create_study(
            study_name=args.study_name,
            storage=args.storage,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except Exception as err:  # storages raise many kinds; all mean "cannot open it"
        raise CLIError(f"cannot open storage {args.storage!r}: {err}") from None
    if not args.verbose:
        # The progress bar and the summary below replace Optuna's per-trial log lines.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    done = len(study.trials)
    if done:
        print(f"Resuming study {args.study_name!r} with {done} trials.", file=sys.stderr)
    study.optimize(
        objective,
        n_trials=args.n_trials,
        n_jobs=args.n_jobs,
        show_progress_bar=args.progress,
        catch=(RuntimeError,),
    )
    label_step = get_label_step(study)
    print()
    print(f"Study {args.study_name!r}: {len(study.trials)} trials, label step "
          f"{label_step if label_step is not None else 'not calibrated yet'}.")
    print(best_trials_table(study, args.top))
    print()
    print(f"View it: optuna-dashboard {args.storage}")
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    space = load_space(args.space, args.in_channels, args.num_classes)
    print(f"{len(space.names)} searched parameters; {space.n_architectures():.3g} architectures "
          "(times a continuous recipe space).")
    for name, dist in space.distributions().items():
        print(f"  {name:28s} {dist}")
    values = space.sample_values(args.samples, seed=0)
    costs = space_costs(space, values)
    for metric in METRICS:
        q = np.quantile(costs[metric], [0, 0.5, 1])
        print(f"{metric:>6}: min {q[0]:.4g}  median {q[1]:.4g}  max {q[2]:.4g} "
              f"(over {args.samples} Sobol samples)")
    budget = _budget(args)
    if budget:
        ok = np.ones(len(values), dtype=bool)
        for metric, limit in budget.items():
            ok &= costs[metric] <= limit
        frac = ok.mean()
        print(f"Within {budget}: {frac:.1%} of the samples, about "
              f"{frac * space.n_architectures():.3g} architectures.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optuna-nars",
        description="FBNetV3's neural architecture-recipe search (NARS) on Optuna.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser(
        "search",
        help="run a study: NARSSampler, the early-stopping pruner and the provided objective",
        description="Search an architecture and its training recipe under a budget. Resumes "
        "the study when it exists in the storage.",
    )
    search.add_argument("--space", default="tiny",
                        help=f"a preset {PRESETS} or a SearchSpace JSON file (default: tiny)")
    search.add_argument("--dataset", default="digits",
                        help=f"one of {sorted(DATASETS)} or folder:<path> (default: digits)")
    search.add_argument("--data-dir", default=None, help="where the dataset lives")
    search.add_argument("--download", action="store_true",
                        help="download the dataset if missing (needs a network)")
    search.add_argument("--epochs", type=_positive_int, default=4,
                        help="epochs per full-length trial (default: 4)")
    search.add_argument("--batch-size", type=_positive_int, default=64)
    search.add_argument("--max-train-samples", type=_positive_int, default=None,
                        help="cap the training pool (for quick runs on large datasets)")
    search.add_argument("--n-trials", type=_positive_int, default=20)
    search.add_argument("--max-flops", type=_positive_float, default=None,
                        help="budget: multiply-adds per image")
    search.add_argument("--max-params", type=_positive_float, default=None,
                        help="budget: parameters")
    search.add_argument("--storage", default=DEFAULT_STORAGE,
                        help=f"Optuna storage URL (default: {DEFAULT_STORAGE})")
    search.add_argument("--study-name", default="nars",
                        help="study name; an existing study is resumed (default: nars)")
    search.add_argument("--n-jobs", type=_positive_int, default=1)
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    search.add_argument("--calibration-trials", type=_positive_int, default=6,
                        help="full-length trials before early stopping (default: 6)")
    search.add_argument("--threshold", type=float, default=0.9,
                        help="rank correlation that fixes the label step (default: 0.9)")
    search.add_argument("--top", type=_positive_int, default=5,
                        help="best trials to list at the end")
    search.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide the progress bar")
    search.add_argument("--verbose", action="store_true", help="log every trial")
    search.set_defaults(func=cmd_search)

    space = sub.add_parser("space", help="describe a search space",
                           description="Parameters, size, FLOPs and parameter ranges of a space.")
    space.add_argument("--space", default="tiny", help=f"a preset {PRESETS} or a JSON file")
    space.add_argument("--in-channels", type=_positive_int, default=None)
    space.add_argument("--num-classes", type=_positive_int, default=None)
    space.add_argument("--max-flops", type=_positive_float, default=None)
    space.add_argument("--max-params", type=_positive_float, default=None)
    space.add_argument("--samples", type=_positive_int, default=20_000)
    space.set_defaults(func=cmd_space)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CLIError as err:
        print(f"optuna-nars: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
