"""``main``: parse the arguments, run the command, turn its errors into exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from optuna_nars.cli._errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, CLIError, UsageError
from optuna_nars.cli._parser import build_parser
from optuna_nars.cli._storages import resolve_storage

__all__ = ["main"]


def _command(name: str) -> Callable[..., int]:
    # Imported only now, so that ``--help`` and bad arguments never pay for torch and the rest.
    name = name.replace("-", "_")
    module = importlib.import_module(f"optuna_nars.cli.{name}")
    return getattr(module, f"cmd_{name}")


def _check_arguments(args: argparse.Namespace) -> None:
    """Bad arguments argparse cannot see, refused before a command creates anything (a
    storage, a study); ``--storage`` is replaced by what will be opened."""
    if getattr(args, "space", None) is not None:
        from optuna_nars.cli._study import load_space

        load_space(args.space)
    if getattr(args, "storage", None) is not None:
        args.storage = resolve_storage(args.storage)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse exits with 2 on bad arguments; a
    :class:`UsageError` found later returns 2 as well)."""
    args = build_parser().parse_args(argv)
    try:
        _check_arguments(args)
        return int(_command(args.command)(args))
    except UsageError as err:
        print(f"optuna-nars {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
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
