"""Whether two recorded grids are the same runs: every per-trial field, timings aside.

A change that should not alter what a sampler proposes (a restructuring, a speed-up) is checked
by running the same grid before and after it and comparing::

    git worktree add /tmp/before <old commit>
    (cd /tmp/before && python -m benchmarks run --quick --samplers nars --out /tmp/grid-before)
    python -m benchmarks run --quick --samplers nars --out /tmp/grid-after
    python -m benchmarks compare /tmp/grid-before /tmp/grid-after

A change that should alter runs (a schedule, a default) is compared instead at trial budgets:
``python -m benchmarks compare BEFORE AFTER --budgets 200 500 1000`` tabulates both grids' mean
regret at each budget (the incumbent's true value against the table's optimum; the negated
best-so-far where a problem has no optimum), over the seeds both hold, the median trial at
which the optimum was first evaluated (a table with a known optimum: on a noisy table the
incumbent is the best *observed* trial, which a lucky evaluation of a worse configuration can
hold even after the optimum was measured), and the sampler's mean seconds per run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import markdown_table

__all__ = ["compare_at_budgets", "compare_grids"]

# What may differ between identical runs: when and where they ran, and how long they took.
IGNORED = frozenset({"wall_s", "sampler_s", "eval_s", "commit", "date"})


def _runs(directory: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    runs = {}
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                run = json.loads(line)
                runs[(run["problem"], run["sampler"], run["seed"])] = run
    return runs


def compare_grids(before: Path, after: Path) -> tuple[int, list[str]]:
    """``(runs compared, differences)``: a difference names the run and the field."""
    old, new = _runs(before), _runs(after)
    if not old:
        raise ValueError(f"no recorded runs (*.jsonl) in {before}")
    differences = [f"{key}: recorded only in {before}" for key in old.keys() - new.keys()]
    differences += [f"{key}: recorded only in {after}" for key in new.keys() - old.keys()]
    for key in sorted(old.keys() & new.keys()):
        fields = (old[key].keys() | new[key].keys()) - IGNORED
        differences += [f"{key}: {field} differs" for field in sorted(fields)
                        if old[key].get(field) != new[key].get(field)]
    return len(old.keys() & new.keys()), differences


def _regret(run: dict[str, Any], t: int) -> float:
    """Regret after ``t`` trials (lower is better)."""
    regret = run["regret"][t - 1]
    if regret is not None:
        return float(regret)
    sign = 1.0 if run["direction"] == "maximize" else -1.0
    return -sign * float(run["best"][t - 1])


def _trials_to_optimum(run: dict[str, Any]) -> float:
    """The first trial (1-based) that evaluated a feasible configuration whose true value is
    the optimum; ``inf`` if none did, ``nan`` without an optimum or recorded true values."""
    optimum, true = run.get("optimum"), run.get("true")
    if optimum is None or not true:
        return math.nan
    feasible = run.get("feasible") or [True] * len(true)
    # The runner records values to 6 significant digits (runner._rounded).
    targets = {optimum, float(f"{optimum:.6g}")}
    for i, (value, ok) in enumerate(zip(true, feasible, strict=False)):
        if ok and value in targets:
            return float(i + 1)
    return math.inf


def _median_trials(runs: Sequence[dict[str, Any]]) -> str:
    trials = [_trials_to_optimum(run) for run in runs]
    if any(math.isnan(t) for t in trials):
        return "-"
    median = float(np.median(trials))
    return f"> {min(r['n_trials'] for r in runs)}" if math.isinf(median) else f"{median:g}"


def compare_at_budgets(before: Path, after: Path, budgets: Sequence[int]) -> str:
    """Markdown: per (problem, sampler) both grids hold, the mean regret at each of ``budgets``
    (before / after, over the seeds both recorded) and the sampler's mean seconds per run."""
    old, new = _runs(before), _runs(after)
    if not old or not new:
        raise ValueError(f"no recorded runs (*.jsonl) in {before if not old else after}")
    groups = sorted({key[:2] for key in old.keys() & new.keys()})
    if not groups:
        raise ValueError(f"{before} and {after} hold no run of the same problem and sampler")
    rows = []
    for problem, sampler in groups:
        seeds = sorted(k[2] for k in old.keys() & new.keys() if k[:2] == (problem, sampler))
        pairs = [(old[(problem, sampler, s)], new[(problem, sampler, s)]) for s in seeds]
        row: list[Any] = [problem, sampler, len(seeds)]
        for t in budgets:
            if min(min(a["n_trials"], b["n_trials"]) for a, b in pairs) < t:
                row.append("-")
                continue
            a, b = (np.mean([_regret(run, t) for run in side]) for side in zip(*pairs, strict=True))
            row.append(f"{a:.4g} / {b:.4g}")
        row.append(" / ".join(_median_trials(side) for side in zip(*pairs, strict=True)))
        a, b = (np.mean([math.fsum(run["sampler_s"]) for run in side])
                for side in zip(*pairs, strict=True))
        row.append(f"{a:.1f} / {b:.1f}")
        rows.append(row)
    header = ["problem", "sampler", "seeds", *(f"regret @ {t}" for t in budgets),
              "optimum first evaluated (median trial)", "sampler s per run"]
    return (f"Before: `{before}`; after: `{after}` (mean over the seeds, before / after).\n\n"
            + markdown_table(header, rows))
