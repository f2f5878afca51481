"""``main``: parse the arguments, run the command, turn its errors into exit codes."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

from optuna_nars.cli._errors import EXIT_ERROR, EXIT_INTERRUPTED, CLIError
from optuna_nars.cli._parser import build_parser

__all__ = ["main"]


def _command(name: str) -> Callable[..., int]:
    # Imported only now, so that ``--help`` and bad arguments never pay for torch and the rest.
    module = importlib.import_module(f"optuna_nars.cli.{name}")
    return getattr(module, f"cmd_{name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse exits with 2 on bad arguments)."""
    args = build_parser().parse_args(argv)
    try:
        return int(_command(args.command)(args))
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
