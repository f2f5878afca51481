"""Exit codes and the one error type the commands raise for mistakes the user can fix."""

from __future__ import annotations

import sys

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CLIError",
    "UsageError",
    "to_stderr",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(Exception):
    """An error the user can fix; printed without a traceback, exit code 1."""


class UsageError(CLIError):
    """A bad argument found after parsing (an unknown preset, a malformed URL); exit code 2,
    as argparse's own."""


def to_stderr(message: str) -> None:
    """Print a message for the user; stdout is kept for results (tables, JSON)."""
    print(message, file=sys.stderr)
