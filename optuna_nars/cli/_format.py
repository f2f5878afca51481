"""What the commands print: plain-text tables, numbers, durations, budgets, and the one line per
finished trial that ``search`` prints while it runs."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import ERROR_ATTR, PREDICTED_KEY, STAGE_KEY
from optuna_nars._validation import finite_interval
from optuna_nars.cost import format_budget
from optuna_nars.labels import get_label_step, trial_labels

__all__ = [
    "ProgressPrinter",
    "best_trials_table",
    "budget_text",
    "format_duration",
    "format_interval",
    "format_scaled",
    "table",
]


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns two spaces apart, a dashed line under the header."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)]).rstrip()


def format_scaled(x: Any, scale: float, spec: str) -> str:
    """``x / scale`` formatted with ``spec`` (e.g. FLOPs in millions), ``-`` for no number."""
    return format(x / scale, spec) if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def format_interval(interval: Any) -> str:
    """``[low, high]`` as ``low to high`` with 4 decimals, ``-`` for none (or not an interval)."""
    pair = finite_interval(interval)
    return "-" if pair is None else f"{pair[0]:.4f} to {pair[1]:.4f}"


def format_duration(seconds: float) -> str:
    """``42s``, ``3m07s`` or ``2h05m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def budget_text(budget: Mapping[str, float]) -> str:
    """A budget as the commands write it: ``flops <= 2 MFLOPs``, or ``no budget``."""
    return format_budget(budget, le="<=", empty="no budget")


def best_trials_table(study: optuna.Study, top: int) -> str:
    """The best trials by their label (accuracy at the early-stopping label step), which is
    comparable across full-length and early-stopped trials."""
    labels = trial_labels(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    best = sorted(labels, key=lambda n: (-labels[n], n))[:top]
    rows = []
    for n in best:
        t = trials[n]
        predicted = t.user_attrs.get(PREDICTED_KEY)
        rows.append([
            str(n),
            f"{labels[n]:.4f}",
            f"{predicted:.4f}" if isinstance(predicted, (int, float)) else "-",
            format_scaled(t.user_attrs.get("flops"), 1e6, ".2f"),
            format_scaled(t.user_attrs.get("params"), 1e3, ".1f"),
            str(t.user_attrs.get(STAGE_KEY, "-")),
            str(t.user_attrs.get("arch", "")),
            str(t.user_attrs.get("recipe", "")),
        ])
    header = ["trial", "accuracy", "predicted", "MFLOPs", "kparams", "stage", "arch", "recipe"]
    return table(rows, header) if rows else "(no labelled trials yet)"


def _trial_outcome(trial: FrozenTrial, label: float | None, label_step: int | None) -> str:
    """How a finished trial ended: failed, unlabelled, stopped early or trained to the end."""
    attrs = trial.user_attrs
    if trial.state == TrialState.FAIL:
        what = f"FAILED {attrs.get(ERROR_ATTR, '(see the warning above)')}"[:70]
    elif label is None:
        what = f"no label ({trial.state.name.lower()} at epoch {trial.last_step})"
    elif trial.state == TrialState.PRUNED:
        what = f"acc {label:.4f}  stopped at epoch {trial.last_step}"
    else:
        at = f"epoch {label_step}" if label_step is not None else "the end"
        n = trial.last_step or 0
        what = f"acc {label:.4f} at {at} (full length, {n} epoch{'s' if n != 1 else ''})"
    if attrs.get("diverged"):
        what += " diverged"
    return what


class ProgressPrinter:
    """An Optuna callback printing one line per finished trial (works in logs, not only on a
    terminal): its stage, label, cost, time, the best so far and an estimate of the time left."""

    def __init__(self, n_trials: int, stream: TextIO | None = None) -> None:
        self.n_trials = n_trials
        self.stream = stream
        self.done = 0
        self.start = time.monotonic()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        stream = self.stream or sys.stderr
        labels = trial_labels(study)
        what = _trial_outcome(trial, labels.get(trial.number), get_label_step(study))
        attrs = trial.user_attrs
        flops = format_scaled(attrs.get("flops"), 1e6, ".2f")
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        best = max(labels, key=lambda n: (labels[n], -n)) if labels else None
        best_text = f"best {labels[best]:.4f} (trial {best})" if best is not None else "best -"
        elapsed = time.monotonic() - self.start
        left = self.n_trials - self.done
        eta = f", ~{format_duration(elapsed / self.done * left)} left" if left > 0 else ""
        width = len(str(self.n_trials))
        print(
            f"[{self.done:>{width}}/{self.n_trials}] trial {trial.number:<3d} "
            f"{str(attrs.get(STAGE_KEY, '-')):<9} {what:<48} {flops:>7} MFLOPs "
            f"{format_duration(seconds):>6} | {best_text}{eta}",
            file=stream, flush=True,
        )
