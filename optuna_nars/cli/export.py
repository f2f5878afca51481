"""``optuna-nars export``: write a trial's architecture-recipe pair (default: the best) as JSON,
with the metadata :mod:`optuna_nars.export` defines."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from optuna_nars.cli._errors import EXIT_OK, CLIError, to_stderr
from optuna_nars.cli._storages import open_storage
from optuna_nars.cli._study import (
    check_single_maximize,
    load_existing_study,
    space_of_study,
)
from optuna_nars.export import export_trial, write_export

__all__ = ["cmd_export"]


def _exported_message(meta: Mapping[str, Any], output: str) -> str:
    """What was exported and how to use it."""
    acc = meta["accuracy"]
    step = meta["label_step"]
    return (
        f"Exported trial {meta['trial']} ("
        + (f"accuracy {acc:.4f}" + (f" at epoch {step}" if step is not None else "")
           if acc is not None else "no label")
        + f", {meta['flops'] / 1e6:.3f} MFLOPs, {meta['params'] / 1e3:.1f} k params)"
        + ("" if output == "-" else f" to {output}") + ".\n"
        f"  {meta['arch']}\n  {meta['recipe']}\n"
        "Build it: optuna_nars.export.build_from_export(path); train it with its recipe: "
        "optuna_nars.training.train_candidate(optuna_nars.export.load_candidate(path), data, "
        "epochs=...)."
    )


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``optuna-nars export``: the JSON goes to ``--output`` (stdout for ``-``)."""
    storage = open_storage(args.storage, must_exist=True)
    study = load_existing_study(storage, args.storage, args.study_name)
    check_single_maximize(study)
    space = space_of_study(study, args.space)
    try:
        data = export_trial(study, args.trial, space=space)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if args.output == "-":
        print(json.dumps(data, indent=2))
    else:
        try:
            write_export(args.output, data)
        except OSError as err:
            raise CLIError(f"cannot write {args.output}: {err}") from None
    to_stderr(_exported_message(data["metadata"], args.output))
    return EXIT_OK
