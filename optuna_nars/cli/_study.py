"""Opening what the commands work on: search spaces (a preset or a JSON file), existing studies
and the space a study was searched with (storages: :mod:`optuna_nars.cli._storages`). Every
failure becomes a :class:`CLIError`, a bad ``--space`` a :class:`UsageError`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import optuna

from optuna_nars.cli._errors import CLIError, UsageError
from optuna_nars.cli._parser import PRESETS
from optuna_nars.cli._storages import open_storage
from optuna_nars.export import load_search_settings, load_study_space
from optuna_nars.space import SearchSpace

__all__ = [
    "check_single_maximize",
    "open_searched_study",
    "load_existing_study",
    "load_space",
    "space_of_study",
    "stored_space",
    "study_names",
]


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
        raise UsageError(f"--space {spec!r} is neither a preset {PRESETS} nor a JSON file.")
    try:
        space = SearchSpace.from_json(path.read_text())
    except (ValueError, TypeError) as err:
        raise UsageError(f"--space {spec}: {err}") from None
    changes = {}
    if in_channels is not None and in_channels != space.in_channels:
        changes["in_channels"] = in_channels
    if num_classes is not None and num_classes != space.num_classes:
        changes["num_classes"] = num_classes
    return space.replace(**changes) if changes else space


def study_names(storage: optuna.storages.BaseStorage, url: str) -> list[str]:
    """The names of the studies in a storage (``url`` is for the error message)."""
    try:
        return optuna.get_all_study_names(storage)
    except Exception as err:
        raise CLIError(f"cannot read storage {url!r}: {err}") from None


def load_existing_study(
    storage: optuna.storages.BaseStorage, url: str, name: str,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Load a study, or say which studies the storage has."""
    names = study_names(storage, url)
    if name not in names:
        have = ", ".join(repr(n) for n in sorted(names)) if names else "none"
        raise CLIError(f"no study {name!r} in {url} (studies there: {have}); "
                       "pass --study-name.")
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def check_single_maximize(study: optuna.Study) -> None:
    """Refuse studies optuna-nars cannot have made (it always maximises one accuracy)."""
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise CLIError(f"study {study.study_name!r} is not a single-objective maximisation "
                       "study, so it was not made by optuna-nars.")


def stored_space(study: optuna.Study) -> SearchSpace | None:
    """The space stored with the study by ``search``, or ``None``."""
    try:
        return load_study_space(study)
    except ValueError as err:
        raise CLIError(str(err)) from None


def space_of_study(study: optuna.Study, spec: str | None) -> SearchSpace:
    """The space stored with the study, or the one given by ``--space`` (which must match)."""
    stored = stored_space(study)
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


def open_searched_study(
    args: argparse.Namespace,
) -> tuple[optuna.Study, SearchSpace, dict[str, Any]]:
    """The existing study of ``--storage`` / ``--study-name`` (made by optuna-nars: one
    maximised objective), its space (or ``--space``) and the settings ``search`` stored."""
    storage = open_storage(args.storage, must_exist=True)
    study = load_existing_study(storage, args.storage, args.study_name)
    check_single_maximize(study)
    return study, space_of_study(study, args.space), load_search_settings(study)
