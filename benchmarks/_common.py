"""What every benchmark script shares: its command-line boilerplate (``--quick``, ``--threads``,
``--seed``, ``--output``), what it records (the machine, the commit, the command), markdown
tables, and the results file."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def benchmark_parser(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """A script's parser, described by the first paragraph of its docstring ``doc``, with
    ``--quick`` (a shorter run, as ``quick_help`` says)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    return parser


def parse_run_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    *,
    output: Path | None,
    seed: bool = True,
    quiet_optuna: bool = False,
) -> argparse.Namespace:
    """Add the options every script ends with, parse ``argv`` and apply ``--threads``.

    The options: ``--threads`` (torch intra-op threads, default 1), ``--seed`` (default 0;
    unless ``seed`` is false) and ``--output`` (the JSON results path, default ``output``).
    ``quiet_optuna`` keeps Optuna's per-trial INFO lines out of the benchmark's own output.
    """
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    if seed:
        parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=output, help="JSON output path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if quiet_optuna:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    return args


def machine_info(threads: int) -> dict[str, Any]:
    """The platform, the library versions and ``threads`` (torch's intra-op threads)."""
    try:
        import greenlet  # noqa: F401  (SQLAlchemy's storages are slower without it)

        has_greenlet = True
    except ImportError:
        has_greenlet = False
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "numpy": np.__version__,
        "torch_threads": threads,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "greenlet": has_greenlet,
    }


def git_state() -> dict[str, Any]:
    """The commit benchmarked and whether the library had uncommitted changes (read-only)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"),
            "modified": git("status", "--porcelain", "--", "optuna_nars").splitlines()}


def command_line() -> str:
    """The command that ran the benchmark, with the interpreter's name only."""
    return " ".join([Path(sys.executable).name, *sys.argv])


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table of ``rows`` under ``headers``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x: float | None, spec: str = ".3f") -> str:
    """``x`` formatted with ``spec``, or ``"-"`` for ``None`` and NaN."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def write_results(path: Path, out: dict[str, Any]) -> None:
    """Write ``out`` as indented JSON to ``path`` and say so, with the run's wall time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nWrote {path} ({out.get('wall_s', 0.0):.0f} s).")


def save_results(
    path: Path, benchmark: str, args: argparse.Namespace, results: dict[str, Any], *,
    git: bool = False,
) -> None:
    """Write a script's ``results`` after the fields every results file starts with: the
    benchmark, its command, the date, the mode (``"quick"`` or ``"full"``, from ``args``), the
    machine (with ``args.threads``) and, with ``git``, the commit."""
    header = {
        "benchmark": benchmark,
        "command": command_line(),
        "date": utc_now(),
        "mode": "quick" if args.quick else "full",
        "machine": machine_info(args.threads),
    }
    if git:
        header["git"] = git_state()
    write_results(path, {**header, **results})
