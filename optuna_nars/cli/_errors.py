"""Exit codes and the one error type the commands raise for mistakes the user can fix."""

from __future__ import annotations

import sys

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CLIError",
    "to_stderr",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(Exception):
    """An error the user can fix; printed without a traceback, exit code 1."""


def to_stderr(message: str) -> None:
    """Print a message for the user; stdout is kept for results (tables, JSON)."""
    print(message, file=sys.stderr)
