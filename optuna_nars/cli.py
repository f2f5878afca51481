"""The ``optuna-nars`` command line: ``search``, ``retarget``, ``export`` and ``space``.

Exit codes: 0 success, 1 a run-time error (unknown dataset, unreachable storage, missing study, a
budget no candidate meets, ...), 2 bad arguments (from argparse), 130 interrupted (Ctrl-C).
Messages go to stderr; results (tables, JSON) to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_nars import __version__
from optuna_nars._keys import ERROR_ATTR, PREDICTED_KEY, PREDICTOR_QUALITY_KEY, STAGE_KEY
from optuna_nars.cost import METRICS, format_budget, space_costs
from optuna_nars.dashboard import DashboardCallback, DashboardObjective
from optuna_nars.data import DATASETS, dataset_info
from optuna_nars.export import (
    export_trial,
    load_search_settings,
    load_study_space,
    save_search_settings,
    save_study_space,
    write_export,
)
from optuna_nars.labels import get_label_step, trial_labels
from optuna_nars.pruner import EarlyStoppingPruner
from optuna_nars.retarget import retarget
from optuna_nars.sampler import NARSSampler
from optuna_nars.space import SearchSpace
from optuna_nars.training import ClassificationObjective

PRESETS = ("tiny", "cifar", "fbnetv3")
DEFAULT_STORAGE = "sqlite:///optuna-nars.db"
DEFAULT_STUDY = "nars"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# ``search`` options whose default, when resuming a study, is what the study was searched with.
_SEARCH_DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "data_dir": None,
    "epochs": 4,
    "batch_size": 64,
    "max_train_samples": None,
    "seed": 0,
    "calibration_trials": 6,
    "threshold": 0.9,
    "max_flops": None,
    "max_params": None,
}


class CLIError(Exception):
    """An error the user can fix; printed without a traceback, exit code 1."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _threshold(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {text}")
    return value


def _err(message: str) -> None:
    print(message, file=sys.stderr)


# ---- spaces, storages, studies ---------------------------------------------------------------


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


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def open_storage(url: str, *, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """Open an Optuna storage URL, turning every failure into a :class:`CLIError`.

    With ``must_exist``, a SQLite file that does not exist is an error rather than created empty
    (reading commands should not leave a stray database behind a typo).
    """
    path = _sqlite_path(url)
    if must_exist and path is not None and not path.is_file():
        raise CLIError(f"cannot open storage {url!r}: no such database file {str(path)!r}.")
    try:
        return optuna.storages.get_storage(url)
    except Exception as err:  # storages raise many kinds; all mean "cannot open it"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CLIError(f"cannot open storage {url!r}: {first}") from None


def _study_names(storage: optuna.storages.BaseStorage, url: str) -> list[str]:
    try:
        return optuna.get_all_study_names(storage)
    except Exception as err:
        raise CLIError(f"cannot read storage {url!r}: {err}") from None


def load_existing_study(
    storage: optuna.storages.BaseStorage, url: str, name: str,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Load a study, or say which studies the storage has."""
    names = _study_names(storage, url)
    if name not in names:
        have = ", ".join(repr(n) for n in sorted(names)) if names else "none"
        raise CLIError(f"no study {name!r} in {url} (studies there: {have}); "
                       "pass --study-name.")
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def _study_space(study: optuna.Study, spec: str | None) -> SearchSpace:
    """The space stored with the study, or the one given by ``--space``."""
    try:
        stored = load_study_space(study)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if spec is not None:
        space = load_space(spec)
        if stored is not None and space.to_dict() != stored.to_dict():
            raise CLIError(f"--space {spec} differs from the space study {study.study_name!r} "
                           "was searched with; leave --space out to use the stored one.")
        return space
    if stored is None:
        raise CLIError(
            f"study {study.study_name!r} has no optuna-nars search space stored: it was not made "
            "by `optuna-nars search`. If it was made in Python with a SearchSpace, pass that "
            "space with --space (a preset or a JSON file from SearchSpace.to_json()), or store "
            "it with optuna_nars.export.save_study_space(study, space)."
        )
    return stored


def _check_single_maximize(study: optuna.Study) -> None:
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise CLIError(f"study {study.study_name!r} is not a single-objective maximisation "
                       "study, so it was not made by optuna-nars.")


def _budget(args: argparse.Namespace) -> dict[str, float]:
    return {
        name: value
        for name, value in (("flops", args.max_flops), ("params", args.max_params))
        if value is not None
    }


def _budget_text(budget: Mapping[str, float]) -> str:
    return format_budget(budget, le="<=", empty="no budget")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


# ---- tables ------------------------------------------------------------------------------------


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)]).rstrip()


def _kilo(x: Any, scale: float, spec: str) -> str:
    return format(x / scale, spec) if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def best_trials_table(study: optuna.Study, top: int) -> str:
    """The best trials by their label (accuracy at the early-stopping label step), which is
    comparable across full-length and early-stopped trials."""
    labels = trial_labels(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    best = sorted(labels, key=lambda n: (-labels[n], n))[:top]
    rows = []
    for n in best:
        t = trials[n]
        predicted = t.user_attrs.get(PREDICTED_KEY)
        rows.append([
            str(n),
            f"{labels[n]:.4f}",
            f"{predicted:.4f}" if isinstance(predicted, (int, float)) else "-",
            _kilo(t.user_attrs.get("flops"), 1e6, ".2f"),
            _kilo(t.user_attrs.get("params"), 1e3, ".1f"),
            str(t.user_attrs.get(STAGE_KEY, "-")),
            str(t.user_attrs.get("arch", "")),
            str(t.user_attrs.get("recipe", "")),
        ])
    header = ["trial", "accuracy", "predicted", "MFLOPs", "kparams", "stage", "arch", "recipe"]
    return _table(rows, header) if rows else "(no labelled trials yet)"


# ---- search -----------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressPrinter:
    """An Optuna callback printing one line per finished trial (works in logs, not only on a
    terminal): its stage, label, cost, time, the best so far and an estimate of the time left."""

    def __init__(self, n_trials: int, stream: TextIO | None = None) -> None:
        self.n_trials = n_trials
        self.stream = stream
        self.done = 0
        self.start = time.monotonic()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        stream = self.stream or sys.stderr
        labels = trial_labels(study)
        label = labels.get(trial.number)
        label_step = get_label_step(study)
        attrs = trial.user_attrs
        if trial.state == TrialState.FAIL:
            what = f"FAILED {attrs.get(ERROR_ATTR, '(see the warning above)')}"[:70]
        elif label is None:
            what = f"no label ({trial.state.name.lower()} at epoch {trial.last_step})"
        elif trial.state == TrialState.PRUNED:
            what = f"acc {label:.4f}  stopped at epoch {trial.last_step}"
        else:
            at = f"epoch {label_step}" if label_step is not None else "the end"
            n = trial.last_step or 0
            what = f"acc {label:.4f} at {at} (full length, {n} epoch{'s' if n != 1 else ''})"
        if attrs.get("diverged"):
            what += " diverged"
        flops = _kilo(attrs.get("flops"), 1e6, ".2f")
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        best = max(labels, key=lambda n: (labels[n], -n)) if labels else None
        best_text = f"best {labels[best]:.4f} (trial {best})" if best is not None else "best -"
        elapsed = time.monotonic() - self.start
        left = self.n_trials - self.done
        eta = f", ~{_duration(elapsed / self.done * left)} left" if left > 0 else ""
        width = len(str(self.n_trials))
        print(
            f"[{self.done:>{width}}/{self.n_trials}] trial {trial.number:<3d} "
            f"{str(attrs.get(STAGE_KEY, '-')):<9} {what:<48} {flops:>7} MFLOPs "
            f"{_duration(seconds):>6} | {best_text}{eta}",
            file=stream, flush=True,
        )


class _DropKeyboardInterrupt(logging.Filter):
    """Ctrl-C is an answer, not a crash: drop Optuna's traceback of the interrupted trial."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, KeyboardInterrupt)


def _resolve_search_settings(
    args: argparse.Namespace, stored: Mapping[str, Any]
) -> dict[str, Any]:
    """Explicit options win; then what a resumed study was searched with; then the defaults."""
    settings = {}
    for key, default in _SEARCH_DEFAULTS.items():
        given = getattr(args, key)
        settings[key] = given if given is not None else stored.get(key, default)
    if args.dataset is not None and stored.get("dataset") not in (None, args.dataset):
        raise CLIError(f"study {args.study_name!r} was searched on dataset "
                       f"{stored['dataset']!r}, not {args.dataset!r}; use another --study-name.")
    return settings


def cmd_search(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    if not args.verbose:
        # The progress lines and the summary replace Optuna's per-trial log lines.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(args.storage)
    existing = None
    if args.study_name in _study_names(storage, args.storage):
        existing = optuna.load_study(study_name=args.study_name, storage=storage)
        _check_single_maximize(existing)
    stored = load_search_settings(existing) if existing is not None else {}
    settings = _resolve_search_settings(args, stored)

    try:
        info = dataset_info(settings["dataset"], data_dir=settings["data_dir"],
                            download=args.download)
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    stored_space = None
    if existing is not None:
        try:
            stored_space = load_study_space(existing)
        except ValueError as err:
            raise CLIError(str(err)) from None
    if args.space is None and stored_space is not None:
        space = stored_space
    else:
        space = load_space(args.space or "tiny", info.in_channels, info.num_classes)
        if stored_space is not None and space.to_dict() != stored_space.to_dict():
            raise CLIError(f"--space {args.space} differs from the space study "
                           f"{args.study_name!r} was searched with; leave --space out to resume "
                           "with the stored one, or use another --study-name.")
    if existing is not None and stored_space is None:
        finished = existing.get_trials(deepcopy=False)
        if finished and set(finished[0].params) != set(space.names):
            raise CLIError(f"study {args.study_name!r} exists and was not made by optuna-nars "
                           "with this space (its trials have other parameters); use another "
                           "--study-name.")

    budget = {m: settings[f"max_{m}"] for m in METRICS if settings[f"max_{m}"] is not None}
    try:
        sampler = NARSSampler(space, constraints=budget or None, seed=settings["seed"])
        objective = ClassificationObjective(
            space,
            dataset=settings["dataset"],
            data_dir=settings["data_dir"],
            download=args.download,
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            device=args.device,
            seed=settings["seed"],
            max_train_samples=settings["max_train_samples"],
        )
        pruner = EarlyStoppingPruner(settings["calibration_trials"],
                                     threshold=settings["threshold"])
    except ValueError as err:
        raise CLIError(str(err)) from None
    try:
        study = optuna.create_study(
            study_name=args.study_name,
            storage=storage,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except Exception as err:
        raise CLIError(f"cannot create study {args.study_name!r} in {args.storage!r}: "
                       f"{err}") from None
    if stored_space is None:
        save_study_space(study, space)
    save_search_settings(study, {**settings, "space": args.space or stored.get("space", "tiny"),
                                 "optuna_nars": __version__})
    done = len(study.trials)
    _err(f"{'Resuming' if done else 'Created'} study {args.study_name!r} in {args.storage}"
         + (f" ({done} trials so far)" if done else "") + f": {settings['dataset']}, "
         f"{settings['epochs']} epoch{'s' if settings['epochs'] != 1 else ''} per full-length "
         f"trial, {_budget_text(budget)}.")
    callbacks: list[Any] = []
    dashboard = None
    if args.dashboard:
        dashboard = DashboardCallback(space, constraints=budget, every=1,
                                      plot_every=args.plot_every, top=args.top,
                                      storage_url=args.storage)
        dashboard.update(study, plots=False)  # a note before the first trial ends
        callbacks.append(dashboard)
        _err(f"Watch it live: optuna-dashboard {shlex.quote(args.storage)}")
    if args.progress:
        callbacks.append(ProgressPrinter(args.n_trials))

    interrupted = False
    quiet_interrupt = _DropKeyboardInterrupt()
    # On the handlers: a logger's own filters do not see its children's records.
    handlers = optuna.logging.get_logger("optuna").handlers
    for handler in handlers:
        handler.addFilter(quiet_interrupt)
    try:
        study.optimize(
            DashboardObjective(objective, note=args.dashboard),
            n_trials=args.n_trials,
            n_jobs=args.n_jobs,
            callbacks=callbacks,
            catch=(RuntimeError,),
        )
    except KeyboardInterrupt:
        interrupted = True
        _err("Interrupted: the running trial is marked FAIL; resume with the same command.")
    finally:
        for handler in handlers:
            handler.removeFilter(quiet_interrupt)
    if dashboard is not None:
        dashboard.update(study)  # the final note and plots
    _print_search_summary(study, args)
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def _print_search_summary(study: optuna.Study, args: argparse.Namespace) -> None:
    trials = study.get_trials(deepcopy=False)
    states = {s: sum(1 for t in trials if t.state == s) for s in TrialState}
    label_step = get_label_step(study)
    quality = study._storage.get_study_system_attrs(study._study_id).get(PREDICTOR_QUALITY_KEY)
    tau = (f"; predictor Kendall tau {quality['kendall_tau']:.3f} ({quality['n_labels']} labels)"
           if isinstance(quality, Mapping) and quality.get("kendall_tau") is not None else "")
    print()
    print(f"Study {args.study_name!r}: {len(trials)} trials ({states[TrialState.COMPLETE]} "
          f"complete, {states[TrialState.PRUNED]} stopped early, {states[TrialState.FAIL]} "
          f"failed); label step "
          f"{label_step if label_step is not None else 'not calibrated yet'}{tau}.")
    print(best_trials_table(study, args.top))
    where = f"--storage {shlex.quote(args.storage)} --study-name {shlex.quote(args.study_name)}"
    print()
    print(f"Export the best:  optuna-nars export {where} -o best.json")
    print(f"Re-target:        optuna-nars retarget {where} --max-flops <FLOPs> --top 5")
    print(f"View it:          optuna-dashboard {shlex.quote(args.storage)}")


# ---- retarget ---------------------------------------------------------------------------------


def retarget_table(report: Mapping[str, Any]) -> str:
    rows = [[
        str(r["rank"]),
        f"{r['predicted']:.4f} ± {r['predicted_std']:.4f}",
        _kilo(r["flops"], 1e6, ".3f"),
        _kilo(r["params"], 1e3, ".1f"),
        "-" if r["trial"] is None else f"#{r['trial']}: {r['measured']:.4f}",
        r["arch"],
        r["recipe"],
    ] for r in report["proposals"]]
    header = ["rank", "predicted", "MFLOPs", "kparams", "trained", "arch", "recipe"]
    return _table(rows, header) if rows else "(no candidate)"


def cmd_retarget(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    storage = open_storage(args.storage, must_exist=True)
    study = load_existing_study(storage, args.storage, args.study_name)
    _check_single_maximize(study)
    space = _study_space(study, args.space)
    settings = load_search_settings(study)
    budget = _budget(args)
    if not budget:
        budget = {m: settings[f"max_{m}"] for m in METRICS
                  if settings.get(f"max_{m}") is not None}
        _err(f"No --max-flops/--max-params given: using the study's budget "
             f"({_budget_text(budget)}).")
    seed = args.seed if args.seed is not None else int(settings.get("seed", 0))
    try:
        report = retarget(study, space, budget, top=args.top, distinct=args.distinct, seed=seed)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if report["n_labels"] < 10:
        _err(f"Note: the predictor learnt from only {report['n_labels']} labelled trials; "
             "expect rough predictions (run more trials for better ones).")
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        except OSError as err:
            raise CLIError(f"cannot write {args.json}: {err}") from None
        _err(f"Wrote {len(report['proposals'])} proposals to {args.json}.")
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return EXIT_OK
    step = report["label_step"]
    quality = report["predictor"] or {}
    tau = (f", predictor Kendall tau {quality['kendall_tau']:.3f}"
           if quality.get("kendall_tau") is not None else "")
    print(f"Top {len(report['proposals'])} predicted pairs for {_budget_text(budget)} from study "
          f"{study.study_name!r} ({report['n_labels']} labelled trials{tau}); predicted accuracy "
          f"{'at epoch ' + str(step) if step is not None else 'after full training'}, "
          "no training done:")
    print(retarget_table(report))
    return EXIT_OK


# ---- export -----------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage, must_exist=True)
    study = load_existing_study(storage, args.storage, args.study_name)
    _check_single_maximize(study)
    space = _study_space(study, args.space)
    try:
        data = export_trial(study, args.trial, space=space)
    except ValueError as err:
        raise CLIError(str(err)) from None
    meta = data["metadata"]
    if args.output == "-":
        print(json.dumps(data, indent=2))
    else:
        try:
            write_export(args.output, data)
        except OSError as err:
            raise CLIError(f"cannot write {args.output}: {err}") from None
    acc = meta["accuracy"]
    step = meta["label_step"]
    _err(
        f"Exported trial {meta['trial']} ("
        + (f"accuracy {acc:.4f}" + (f" at epoch {step}" if step is not None else "")
           if acc is not None else "no label")
        + f", {meta['flops'] / 1e6:.3f} MFLOPs, {meta['params'] / 1e3:.1f} k params)"
        + ("" if args.output == "-" else f" to {args.output}") + ".\n"
        f"  {meta['arch']}\n  {meta['recipe']}\n"
        "Build it: optuna_nars.export.build_from_export(path); train it with its recipe: "
        "optuna_nars.training.train_candidate(optuna_nars.export.load_candidate(path), data, "
        "epochs=...)."
    )
    return EXIT_OK


# ---- space ------------------------------------------------------------------------------------


def cmd_space(args: argparse.Namespace) -> int:
    space = load_space(args.space, args.in_channels, args.num_classes)
    if args.json:
        print(space.to_json())
        return EXIT_OK
    print(f"{len(space.names)} searched parameters; {space.n_architectures():.3g} architectures "
          f"(times a continuous recipe space); {space.in_channels}-channel input, "
          f"{space.num_classes} classes.")
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
        if not ok.any():
            cheapest = ", ".join(f"{m} {costs[m].min():.4g}" for m in budget)
            raise CLIError(f"no sampled candidate meets {_budget_text(budget)}; the cheapest "
                           f"need {cheapest}. Raise the budget or shrink the space.")
    return EXIT_OK


# ---- the parser -------------------------------------------------------------------------------


def _study_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", default=DEFAULT_STORAGE,
                        help=f"Optuna storage URL (default: {DEFAULT_STORAGE})")
    parser.add_argument("--study-name", default=DEFAULT_STUDY,
                        help=f"study name (default: {DEFAULT_STUDY})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optuna-nars",
        description="FBNetV3's neural architecture-recipe search (NARS) on Optuna. "
        "Exit codes: 0 ok, 1 run-time error, 2 bad arguments, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    search = sub.add_parser(
        "search",
        help="run a study: NARSSampler, the early-stopping pruner and the provided objective",
        description="Search an architecture and its training recipe under a budget, keeping an "
        "optuna-dashboard note and plots current. An existing study is resumed with the "
        "settings it was searched with, unless options override them.",
    )
    search.add_argument("--space", default=None,
                        help=f"a preset {PRESETS} or a SearchSpace JSON file (default: the "
                        "resumed study's, else tiny)")
    search.add_argument("--dataset", default=None,
                        help=f"one of {sorted(DATASETS)} or folder:<path> (default: digits)")
    search.add_argument("--data-dir", default=None, help="where the dataset lives")
    search.add_argument("--download", action="store_true",
                        help="download the dataset if missing (needs a network)")
    search.add_argument("--epochs", type=_positive_int, default=None,
                        help="epochs per full-length trial (default: 4)")
    search.add_argument("--batch-size", type=_positive_int, default=None, help="(default: 64)")
    search.add_argument("--max-train-samples", type=_positive_int, default=None,
                        help="cap the training pool (for quick runs on large datasets)")
    search.add_argument("--n-trials", type=_positive_int, default=20,
                        help="trials to run now (default: 20)")
    search.add_argument("--max-flops", type=_positive_float, default=None,
                        help="budget: multiply-adds per image")
    search.add_argument("--max-params", type=_positive_float, default=None,
                        help="budget: parameters")
    _study_options(search)
    search.add_argument("--n-jobs", type=_positive_int, default=1,
                        help="trials in parallel threads (default: 1)")
    search.add_argument("--seed", type=int, default=None, help="(default: 0)")
    search.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    search.add_argument("--threads", type=_positive_int, default=None,
                        help="CPU threads for torch (default: torch's; 1 is best on a busy "
                        "machine)")
    search.add_argument("--calibration-trials", type=_positive_int, default=None,
                        help="full-length trials before early stopping (default: 6)")
    search.add_argument("--threshold", type=_threshold, default=None,
                        help="rank correlation that fixes the label step (default: 0.9)")
    search.add_argument("--top", type=_positive_int, default=5,
                        help="best trials to list at the end and in the note (default: 5)")
    search.add_argument("--plot-every", type=_non_negative_int, default=5,
                        help="save the dashboard plots every N trials, 0 for never "
                        "(default: 5; always at the end)")
    search.add_argument("--no-dashboard", dest="dashboard", action="store_false",
                        help="keep no note or plots for optuna-dashboard")
    search.add_argument("--no-progress", dest="progress", action="store_false",
                        help="print no line per trial")
    search.add_argument("--verbose", action="store_true", help="also log Optuna's messages")
    search.set_defaults(func=cmd_search)

    retarget_ = sub.add_parser(
        "retarget",
        help="the best predicted pairs of a finished study for a new budget, without training",
        description="Refit the study's accuracy predictor and search it for the top "
        "architecture-recipe pairs under a new FLOPs / parameter budget. No training: seconds "
        "on a CPU.",
    )
    _study_options(retarget_)
    retarget_.add_argument("--max-flops", type=_positive_float, default=None,
                           help="budget: multiply-adds per image (default: the study's budget)")
    retarget_.add_argument("--max-params", type=_positive_float, default=None,
                           help="budget: parameters (default: the study's budget)")
    retarget_.add_argument("--top", type=_positive_int, default=5,
                           help="pairs to list (default: 5)")
    retarget_.add_argument("--distinct", choices=("arch", "pair"), default="arch",
                           help="arch: one (the best) recipe per architecture; pair: every pair "
                           "(default: arch)")
    retarget_.add_argument("--json", metavar="PATH", default=None,
                           help="also write the proposals as JSON to PATH")
    retarget_.add_argument("--format", choices=("table", "json"), default="table",
                           help="stdout format (default: table)")
    retarget_.add_argument("--space", default=None,
                           help="the space, for studies made in Python without one stored")
    retarget_.add_argument("--seed", type=int, default=None,
                           help="predictor seed (default: the study's)")
    retarget_.add_argument("--threads", type=_positive_int, default=None,
                           help="CPU threads for torch (default: torch's)")
    retarget_.set_defaults(func=cmd_retarget)

    export = sub.add_parser(
        "export",
        help="write a trial's architecture and recipe as JSON",
        description="Write a trial's architecture-recipe pair (default: the best by accuracy at "
        "the label step) as JSON: Candidate.to_json() plus metadata. Load it with "
        "optuna_nars.export.load_candidate / build_from_export.",
    )
    _study_options(export)
    export.add_argument("--trial", type=_non_negative_int, default=None,
                        help="trial number (default: the best)")
    export.add_argument("-o", "--output", default="-",
                        help="file to write, - for stdout (default: -)")
    export.add_argument("--space", default=None,
                        help="the space, for studies made in Python without one stored")
    export.set_defaults(func=cmd_export)

    space = sub.add_parser("space", help="describe a search space",
                           description="Parameters, size, FLOPs and parameter ranges of a space, "
                           "and how much of it fits a budget (exit code 1 if nothing does).")
    space.add_argument("--space", default="tiny",
                       help=f"a preset {PRESETS} or a JSON file (default: tiny)")
    space.add_argument("--in-channels", type=_positive_int, default=None)
    space.add_argument("--num-classes", type=_positive_int, default=None)
    space.add_argument("--max-flops", type=_positive_float, default=None)
    space.add_argument("--max-params", type=_positive_float, default=None)
    space.add_argument("--samples", type=_positive_int, default=20_000,
                       help="Sobol samples for the cost ranges (default: 20000)")
    space.add_argument("--json", action="store_true",
                       help="print the space as JSON (a start for a custom --space file)")
    space.set_defaults(func=cmd_space)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse exits with 2 on bad arguments)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CLIError as err:
        print(f"optuna-nars: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("optuna-nars: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout was closed early (``| head``): no traceback, and none at interpreter exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
