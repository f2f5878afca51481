"""The ``optuna-nars`` command line: ``search``, ``retarget``, ``family``, ``export``, ``space``,
``latency-table`` and ``fail-stale``.

Exit codes: 0 success; 1 a run-time error (missing dataset files, unreachable storage or missing
driver, missing study, a budget no candidate meets, a sampler failure during ``search``, ...);
2 bad arguments (from argparse, or found later: an unknown ``--space`` preset or dataset name, a
malformed ``--storage``); 130 interrupted (Ctrl-C). Messages go to stderr; results (tables,
JSON) to stdout.

Layout, one concept per module:

- ``_main``: :func:`main`, which parses, runs the command and maps errors to exit codes;
- ``_errors``: the exit codes, :class:`CLIError` and :class:`UsageError`;
- ``_parser``: the parser (one function per command), shared options and value types;
- ``_storages``: what ``--storage`` may be (database URLs, Redis, journal files) and opening it;
- ``_study``: opening spaces, existing studies and a study's stored space;
- ``_format``: tables, numbers, durations, budgets and the per-trial progress line;
- ``_run``: how ``search`` runs its trials (how many; sampler failures; Ctrl-C);
- ``search``, ``retarget``, ``family``, ``export``, ``space``, ``latency_table``, ``fail_stale``:
  one module per command (``cmd_<name>``).

Only the parser is imported here: a command's module, and torch with it, loads when the command
runs, so ``optuna-nars --help`` answers at once. For the same reason the commands' functions are
not re-exported here; import them from their modules (``optuna_nars.cli.search.cmd_search``).
"""

from __future__ import annotations

from optuna_nars.cli._errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    UsageError,
)
from optuna_nars.cli._main import main
from optuna_nars.cli._parser import DEFAULT_STORAGE, DEFAULT_STUDY, PRESETS, build_parser

__all__ = [
    "DEFAULT_STORAGE",
    "DEFAULT_STUDY",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PRESETS",
    "CLIError",
    "UsageError",
    "build_parser",
    "main",
]
