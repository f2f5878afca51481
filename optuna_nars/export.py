"""What a study keeps about its search, and exported architecture-recipe pairs.

A study made by ``optuna-nars search`` (or with :func:`save_study_space`) carries its
:class:`~optuna_nars.SearchSpace` and the search settings in its system attributes, so that
``optuna-nars retarget`` and ``optuna-nars export`` work from the storage alone:

* ``"nars:space"`` (:data:`SPACE_KEY`): the number of chunks of the space's JSON, stored in
  ``"nars:space:0"``, ``"nars:space:1"``, ... (RDB storages cap one attribute at 2045
  characters, so long spaces are split as Optuna's own samplers split theirs).
* ``"nars:search"`` (:data:`SETTINGS_KEY`): the settings of the latest ``optuna-nars search``
  (dataset, epochs, seed, budget, ...), a ``dict``.

An *export* is a JSON file holding :meth:`Candidate.to_dict` (``"architecture"``, ``"recipe"``)
plus ``"metadata"`` (trial number, accuracy, FLOPs, parameters, arch string, channels and
classes...). :meth:`Candidate.from_json` reads it as it is; :func:`load_candidate` and
:func:`build_from_export` are the short ways back to a candidate and to a ``torch`` model::

    from optuna_nars.export import build_from_export, load_candidate
    from optuna_nars.data import load_dataset
    from optuna_nars.training import train_candidate

    model = build_from_export("best.json")            # an untrained nn.Module
    candidate = load_candidate("best.json")           # train it with its own recipe:
    result = train_candidate(candidate, load_dataset("digits"), epochs=20)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import PREDICTED_KEY, SETTINGS_KEY, SPACE_KEY, STAGE_KEY
from optuna_nars._storage import get_study_chunked, set_study_chunked
from optuna_nars._validation import finite_number
from optuna_nars.candidate import Candidate
from optuna_nars.cost import count_flops, count_params
from optuna_nars.data.catalog import PathLike
from optuna_nars.labels import get_label_step, trial_labels
from optuna_nars.space import SearchSpace

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "EXPORT_FORMAT",
    "SETTINGS_KEY",
    "SPACE_KEY",
    "build_from_export",
    "export_trial",
    "load_candidate",
    "load_export",
    "load_search_settings",
    "load_study_space",
    "save_search_settings",
    "save_study_space",
    "write_export",
]

EXPORT_FORMAT = "optuna-nars/candidate"
EXPORT_VERSION = 1

# ---- the study's search space and settings -----------------------------------------------------


def save_study_space(study: optuna.Study, space: SearchSpace) -> None:
    """Store ``space`` in the study's system attributes (chunked), for ``retarget``/``export``."""
    text = json.dumps(space.to_dict(), separators=(",", ":"))
    set_study_chunked(study._storage, study._study_id, SPACE_KEY, text)


def load_study_space(study: optuna.Study) -> SearchSpace | None:
    """The space :func:`save_study_space` stored, or ``None`` if the study has none.

    Raises:
        ValueError: If the stored space cannot be read (written by an incompatible version).
    """
    text = get_study_chunked(study._storage, study._study_id, SPACE_KEY)
    if text is None:
        return None
    try:
        return SearchSpace.from_json(text)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"The search space stored in study {study.study_name!r} is unreadable: "
                         f"{err}") from None


def save_search_settings(study: optuna.Study, settings: Mapping[str, Any]) -> None:
    """Store the search settings (JSON-serialisable values) in the study's system attributes."""
    study._storage.set_study_system_attr(study._study_id, SETTINGS_KEY, dict(settings))


def load_search_settings(study: optuna.Study) -> dict[str, Any]:
    """The settings :func:`save_search_settings` stored (``{}`` if none)."""
    value = study._storage.get_study_system_attrs(study._study_id).get(SETTINGS_KEY)
    return dict(value) if isinstance(value, Mapping) else {}


# ---- exporting a trial --------------------------------------------------------------------------


def export_trial(
    study: optuna.Study,
    trial_number: int | None = None,
    *,
    space: SearchSpace | None = None,
) -> dict[str, Any]:
    """A trial's architecture-recipe pair and metadata, as an export ``dict``.

    Args:
        study: A study made with a :class:`~optuna_nars.SearchSpace` (by ``optuna-nars search``,
            or in Python with :func:`save_study_space`).
        trial_number: The trial to export; default: the best by
            :func:`~optuna_nars.pruner.trial_labels` (accuracy at the label step, which is
            comparable across full-length and early-stopped trials).
        space: The study's space, when it has none stored.

    Raises:
        ValueError: Without a space, without labelled trials (for the default), for a trial
            number the study lacks, or for a trial whose parameters are not of the space.
    """
    space = space or load_study_space(study)
    if space is None:
        raise ValueError(
            f"Study {study.study_name!r} has no optuna-nars search space stored: it was not made "
            "by `optuna-nars search`. Pass the space (--space) it was searched with."
        )
    labels = trial_labels(study)
    if trial_number is None:
        if not labels:
            raise ValueError(f"Study {study.study_name!r} has no labelled (finished) trials yet.")
        # Ties go to the cheaper trial, then to the earlier one.
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        trial_number = max(labels, key=lambda n: (labels[n],
                                                  -float(trials[n].user_attrs.get("flops", 0)),
                                                  -n))
    trials = study.get_trials(deepcopy=False)
    if not 0 <= trial_number < len(trials):
        raise ValueError(f"Study {study.study_name!r} has no trial {trial_number} "
                         f"(it has trials 0..{len(trials) - 1}).")
    trial: FrozenTrial = trials[trial_number]
    try:
        candidate = space.from_params(trial.params)
    except ValueError as err:
        raise ValueError(f"Trial {trial_number} ({trial.state.name}) has no complete "
                         f"architecture-recipe pair of the study's space: {err}") from None
    arch = candidate.architecture
    flops = count_flops(arch, space.in_channels, space.num_classes)
    params = count_params(arch, space.in_channels, space.num_classes)
    settings = load_search_settings(study)
    attrs = trial.user_attrs
    metadata = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "study": study.study_name,
        "trial": trial.number,
        "state": trial.state.name,
        "accuracy": labels.get(trial.number),
        "label_step": get_label_step(study),
        "final_value": finite_number(trial.value) if trial.state == TrialState.COMPLETE
        else None,
        "epochs_trained": trial.last_step,
        "flops": flops,
        "params": params,
        "arch": str(arch),
        "recipe": str(candidate.recipe),
        "in_channels": space.in_channels,
        "num_classes": space.num_classes,
        "dataset": settings.get("dataset"),
        "epochs": settings.get("epochs"),
        "stage": attrs.get(STAGE_KEY),
        "predicted": attrs.get(PREDICTED_KEY),
        "optuna_params": dict(trial.params),
    }
    return {**candidate.to_dict(), "metadata": metadata}


def write_export(path: PathLike, data: Mapping[str, Any]) -> None:
    """Write an export ``dict`` as indented JSON."""
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def load_export(path: PathLike) -> tuple[Candidate, dict[str, Any]]:
    """Read an export: the candidate and its metadata (``{}`` for a bare ``Candidate.to_json``).

    Raises:
        ValueError: If the file is not JSON or not an architecture-recipe pair.
        FileNotFoundError: If it does not exist.
    """
    text = Path(path).read_text()
    try:
        data = json.loads(text)
        candidate = Candidate.from_dict(data)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not an optuna-nars export ({type(err).__name__}: {err}).") \
            from None
    metadata = data.get("metadata") or {}
    return candidate, dict(metadata)


def load_candidate(path: PathLike) -> Candidate:
    """The :class:`~optuna_nars.Candidate` of an export file (or of ``Candidate.to_json()``)."""
    return load_export(path)[0]


def build_from_export(
    path: PathLike, *, in_channels: int | None = None, num_classes: int | None = None
) -> nn.Module:
    """Build the (untrained) network of an export, with its recipe's dropout and stochastic depth.

    ``in_channels`` and ``num_classes`` default to the export's metadata (the study's task);
    a bare ``Candidate.to_json()`` file needs them.
    """
    from optuna_nars.models import build_model  # torch loads only when a model is wanted

    candidate, metadata = load_export(path)
    in_channels = in_channels or metadata.get("in_channels")
    num_classes = num_classes or metadata.get("num_classes")
    if in_channels is None or num_classes is None:
        raise ValueError(f"{path} does not say the input channels and classes; pass "
                         "in_channels= and num_classes=.")
    return build_model(
        candidate.architecture, int(num_classes), int(in_channels),
        dropout=candidate.recipe.dropout, stochastic_depth=candidate.recipe.stochastic_depth,
    )
