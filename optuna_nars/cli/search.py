"""``optuna-nars search``: run (or resume) a study with NARSSampler, the early-stopping pruner and
the provided classification objective, printing a line per trial and a summary at the end."""

from __future__ import annotations

import argparse
import logging
import re
import shlex
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from optuna_nars import NARSSampler, __version__
from optuna_nars._keys import PREDICTOR_QUALITY_KEY
from optuna_nars.cli._errors import EXIT_INTERRUPTED, EXIT_OK, CLIError, UsageError, to_stderr
from optuna_nars.cli._format import ProgressPrinter, best_trials_table, budget_text
from optuna_nars.cli._parser import set_torch_threads
from optuna_nars.cli._run import (
    StopAtTotal,
    TrialPlan,
    WatchedObjective,
    raised_by_sampler,
    trial_plan,
)
from optuna_nars.cli._storages import open_storage
from optuna_nars.cli._study import (
    check_single_maximize,
    load_space,
    stored_space,
    study_names,
)
from optuna_nars.cost import LATENCY, METRICS, LatencyTable
from optuna_nars.dashboard import DashboardCallback, DashboardObjective
from optuna_nars.data import DatasetInfo, dataset_info
from optuna_nars.data.catalog import parse_name
from optuna_nars.export import load_search_settings, save_search_settings, save_study_space
from optuna_nars.labels import get_label_step
from optuna_nars.pruner import EarlyStoppingPruner
from optuna_nars.space import SearchSpace
from optuna_nars.training import ClassificationObjective

__all__ = [
    "SEARCH_DEFAULTS",
    "check_device",
    "cmd_search",
    "load_latency_table",
    "training_parts",
]

# ``search`` options whose default, when resuming a study, is what the study was searched with.
SEARCH_DEFAULTS: dict[str, Any] = {
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
    "max_latency_ms": None,
    "latency_table": None,
}


class _DropKeyboardInterrupt(logging.Filter):
    """Ctrl-C is an answer, not a crash: drop Optuna's traceback of the interrupted trial."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, KeyboardInterrupt)


def _existing_study(storage: optuna.storages.BaseStorage,
                    args: argparse.Namespace) -> optuna.Study | None:
    """The study to resume, if ``--study-name`` names one."""
    if args.study_name not in study_names(storage, args.storage):
        return None
    existing = optuna.load_study(study_name=args.study_name, storage=storage)
    check_single_maximize(existing)
    return existing


def _resolve_search_settings(
    args: argparse.Namespace, stored: Mapping[str, Any]
) -> dict[str, Any]:
    """Explicit options win; then what a resumed study was searched with; then the defaults."""
    settings = {}
    for key, default in SEARCH_DEFAULTS.items():
        given = getattr(args, key)
        settings[key] = given if given is not None else stored.get(key, default)
    if args.dataset is not None and stored.get("dataset") not in (None, args.dataset):
        raise CLIError(f"study {args.study_name!r} was searched on dataset "
                       f"{stored['dataset']!r}, not {args.dataset!r}; use another --study-name.")
    return settings


# The data module's messages name its Python arguments; on the command line, name the flags.
_CLI_WORDS = (
    (r"\bdownload=True\b", "--download"),
    (r"\bdataset='folder:<path>'", "--dataset folder:<path>"),
    (r"\bdata_dir=", "--data-dir "),
    (r"\bdata_dir\b", "--data-dir"),
)


def in_cli_words(message: str) -> str:
    """A data-loading message with the Python arguments it names as command-line flags."""
    for pattern, flag in _CLI_WORDS:
        message = re.sub(pattern, flag, message)
    return message


def _check_dataset_name(name: str | None) -> None:
    """An unknown ``--dataset`` name is a bad argument (its files are looked for later, with
    the resumed study's data directory)."""
    if name is not None:
        try:
            parse_name(name, data_dir=".")  # any folder: only the name is checked here
        except ValueError as err:
            raise UsageError(in_cli_words(str(err))) from None


def _dataset(settings: Mapping[str, Any], download: bool) -> DatasetInfo:
    try:
        return dataset_info(settings["dataset"], data_dir=settings["data_dir"], download=download)
    except ValueError as err:  # an unknown name: a bad argument
        raise UsageError(in_cli_words(str(err))) from None
    except FileNotFoundError as err:  # the files are missing: fix the machine, not the command
        raise CLIError(in_cli_words(str(err))) from None


def _search_space(args: argparse.Namespace, existing: optuna.Study | None,
                  info: DatasetInfo) -> tuple[SearchSpace, SearchSpace | None]:
    """The space to search and the one the resumed study has stored (``None`` if none)."""
    saved = stored_space(existing) if existing is not None else None
    if args.space is None and saved is not None:
        space = saved
    else:
        space = load_space(args.space or "tiny", info.in_channels, info.num_classes)
        if saved is not None and space.to_dict() != saved.to_dict():
            raise CLIError(f"--space {args.space} differs from the space study "
                           f"{args.study_name!r} was searched with; leave --space out to resume "
                           "with the stored one, or use another --study-name.")
    if existing is not None and saved is None:
        finished = existing.get_trials(deepcopy=False)
        if finished and set(finished[0].params) != set(space.names):
            raise CLIError(f"study {args.study_name!r} exists and was not made by optuna-nars "
                           "with this space (its trials have other parameters); use another "
                           "--study-name.")
    return space, saved


def check_device(device: str | None) -> None:
    """A misspelt ``--device`` is a bad argument; a missing GPU is this machine's state."""
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"--device {device!r}: {err}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {device}: no CUDA device is available here; use --device cpu "
                       "or leave --device out.")


def load_latency_table(path: str | None, space: SearchSpace) -> LatencyTable | None:
    """The ``--latency-table`` file, checked against ``space`` (errors become CLI errors)."""
    if path is None:
        return None
    try:
        return LatencyTable.load(path, space=space)
    except ValueError as err:
        raise CLIError(str(err)) from None


def training_parts(space: SearchSpace, settings: Mapping[str, Any], *, download: bool,
                   device: str | None) -> tuple[ClassificationObjective, EarlyStoppingPruner]:
    """The objective and the pruner ``search`` trains with, from its resolved settings (what
    ``family --train`` reuses); their argument errors become CLI errors."""
    try:
        objective = ClassificationObjective(
            space,
            dataset=settings["dataset"],
            data_dir=settings["data_dir"],
            download=download,
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            device=device,
            seed=settings["seed"],
            max_train_samples=settings["max_train_samples"],
        )
        pruner = EarlyStoppingPruner(settings["calibration_trials"],
                                     threshold=settings["threshold"])
    except ValueError as err:
        raise CLIError(str(err)) from None
    return objective, pruner


def _search_parts(
    space: SearchSpace, settings: Mapping[str, Any], budget: Mapping[str, float],
    args: argparse.Namespace,
) -> tuple[NARSSampler, ClassificationObjective, EarlyStoppingPruner]:
    """The sampler, the objective and the pruner; their argument errors become CLI errors."""
    table = load_latency_table(settings["latency_table"], space)
    try:
        sampler = NARSSampler(space, constraints=budget or None, seed=settings["seed"],
                              latency_table=table)
    except ValueError as err:
        raise CLIError(str(err)) from None
    objective, pruner = training_parts(space, settings, download=args.download,
                                       device=args.device)
    return sampler, objective, pruner


def _open_study(storage: optuna.storages.BaseStorage, args: argparse.Namespace,
                sampler: NARSSampler, pruner: EarlyStoppingPruner) -> optuna.Study:
    try:
        return optuna.create_study(
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


def _callbacks(
    study: optuna.Study, space: SearchSpace, budget: Mapping[str, float],
    args: argparse.Namespace, plan: TrialPlan,
) -> tuple[list[Any], DashboardCallback | None]:
    """The per-trial callbacks (dashboard note and plots, progress line, the stop at
    ``--total-trials``) and the dashboard one."""
    # With --n-trials, this process runs that many whatever other workers do.
    callbacks: list[Any] = [StopAtTotal(plan.total)] if args.total_trials is not None else []
    dashboard = None
    if args.dashboard:
        dashboard = DashboardCallback(space, constraints=budget, every=1,
                                      plot_every=args.plot_every, top=args.top,
                                      storage_url=args.storage)
        dashboard.update(study, plots=False)  # a note before the first trial ends
        callbacks.append(dashboard)
        to_stderr(f"Watch it live: optuna-dashboard {shlex.quote(args.storage)}")
    if args.progress:
        callbacks.append(ProgressPrinter(plan.now))
    return callbacks, dashboard


def _resume_hint(args: argparse.Namespace, plan: TrialPlan) -> str:
    """How to finish the search after Ctrl-C: the same total, not ``--n-trials`` more."""
    if args.total_trials is not None:
        return "resume with the same command"
    return (f"to finish its {plan.total} trials, resume with `optuna-nars search --storage "
            f"{shlex.quote(args.storage)} --study-name {shlex.quote(args.study_name)} "
            f"--total-trials {plan.total}` (the same command would run --n-trials more)")


def _optimize(study: optuna.Study, objective: WatchedObjective, callbacks: list[Any],
              args: argparse.Namespace, plan: TrialPlan) -> bool:
    """Run the trials; ``True`` if Ctrl-C stopped them."""
    interrupted = False
    quiet_interrupt = _DropKeyboardInterrupt()
    # On the handlers: a logger's own filters do not see its children's records.
    handlers = optuna.logging.get_logger("optuna").handlers
    for handler in handlers:
        handler.addFilter(quiet_interrupt)
    try:
        study.optimize(objective, n_trials=plan.now, n_jobs=args.n_jobs, callbacks=callbacks,
                       catch=(RuntimeError,))
    except KeyboardInterrupt:
        interrupted = True
        to_stderr("Interrupted: the running trial is marked FAIL and its candidate will run "
                  f"again; {_resume_hint(args, plan)}.")
    except Exception as err:
        if not raised_by_sampler(err):
            raise
        # Raised outside the objective (or not a RuntimeError): Optuna logged the traceback.
        objective.sampler_failed(None, err)
    finally:
        for handler in handlers:
            handler.removeFilter(quiet_interrupt)
    return interrupted


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


def cmd_search(args: argparse.Namespace) -> int:
    """Run ``optuna-nars search``; an existing study is resumed with its stored settings."""
    set_torch_threads(args.threads)
    if not args.verbose:
        # The progress lines and the summary replace Optuna's per-trial log lines.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Bad arguments are refused before a storage is created.
    _check_dataset_name(args.dataset)
    check_device(args.device)
    storage = open_storage(args.storage)
    existing = _existing_study(storage, args)
    stored = load_search_settings(existing) if existing is not None else {}
    settings = _resolve_search_settings(args, stored)
    if settings["max_latency_ms"] is not None and settings["latency_table"] is None:
        raise UsageError("--max-latency-ms needs --latency-table (a table of the space from "
                         "`optuna-nars latency-table`).")
    space, saved_space = _search_space(args, existing, _dataset(settings, args.download))
    budget = {m: settings[f"max_{m}"] for m in (*METRICS, LATENCY)
              if settings[f"max_{m}"] is not None}
    sampler, objective, pruner = _search_parts(space, settings, budget, args)
    study = _open_study(storage, args, sampler, pruner)
    if saved_space is None:
        save_study_space(study, space)
    save_search_settings(study, {**settings, "space": args.space or stored.get("space", "tiny"),
                                 "optuna_nars": __version__})
    plan = trial_plan(study, args)
    done = len(study.trials)
    to_stderr(f"{'Resuming' if done else 'Created'} study {args.study_name!r} in {args.storage}"
              + (f" ({done} trials so far)" if done else "") + f": {settings['dataset']}, "
              f"{settings['epochs']} epoch{'s' if settings['epochs'] != 1 else ''} per "
              f"full-length trial, {budget_text(budget)}; {plan.now} trial"
              f"{'s' if plan.now != 1 else ''} to run, to {plan.total} finished.")
    interrupted = False
    watched = WatchedObjective(DashboardObjective(objective, note=args.dashboard))
    if plan.now > 0:
        callbacks, dashboard = _callbacks(study, space, budget, args, plan)
        interrupted = _optimize(study, watched, callbacks, args, plan)
        if dashboard is not None:
            dashboard.update(study)  # the final note and plots
    else:
        to_stderr(f"The study has {plan.finished} finished trials (--total-trials "
                  f"{plan.total}): nothing to run.")
    _print_search_summary(study, args)
    if watched.errors:
        raise CLIError(watched.report())
    return EXIT_INTERRUPTED if interrupted else EXIT_OK
