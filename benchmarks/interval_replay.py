"""Which window and quantile rule make NARS's prediction intervals cover what they claim (issue 12).

A replay on recorded runs, not a rerun of the sampler: for each NARS run of a grid directory
(``python -m benchmarks run`` output; default the suite, ``benchmarks/results/suite``), each
proposal's error ratio is ``|measured - predicted| / predicted_std`` (the recorded, already
scaled spread; the scale varies slowly, so this stands in for the raw spread). Each proposal's
interval is replayed from the ratios of the proposals before it in the same run, once 5 exist:
the latest ``window`` of them, at a level (68.27% for one standard deviation, 95%), by one of
two rules:

- ``plain``: ``numpy.quantile`` at the level (what the sampler did before session 10);
- ``conformal``: the split-conformal quantile, the ``ceil((n + 1) level)``-th smallest of the
  ``n`` ratios; no interval while ``n`` is too small for that (19 at 95%), as the sampler does
  now.

Reported: the fraction of proposals whose ratio falls within the replayed multiple, per window,
rule and level, over all runs and per problem. Real-training problems are left out (their
30-trial runs hold too few proposals). The sampler's own scales come from a fit made before a
batch of proposals, so its coverage differs a little from the replay's.

Run from the repository root::

    python benchmarks/interval_replay.py                       # the suite's runs
    python benchmarks/interval_replay.py --runs DIR --windows 20 40

Results go to ``benchmarks/results/interval_replay.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    RESULTS_DIR,
    ROOT,
    command_line,
    markdown_table,
    utc_now,
    write_results,
)
from benchmarks.suite.runner import load_runs  # noqa: E402

LEVELS = (0.6827, 0.95)
RULES = ("plain", "conformal")
MIN_PAIRS = 5


def ratios(run: dict[str, Any]) -> np.ndarray:
    """The run's proposals' error ratios, in trial order (proposals with a prediction only)."""
    nars = run.get("nars", {})
    out = []
    for value, p, s in zip(run["value"], nars.get("predicted") or [],
                           nars.get("predicted_std") or [], strict=False):
        if value is None or p is None or s is None or not math.isfinite(value) or s <= 0:
            continue
        out.append(abs(value - p) / s)
    return np.asarray(out)


def multiple(previous: np.ndarray, level: float, rule: str) -> float | None:
    """The replayed interval's multiple of the spread, from the ``previous`` ratios (``None``:
    no interval)."""
    if rule == "plain":
        return float(np.quantile(previous, level))
    k = math.ceil((len(previous) + 1) * level)
    return float(np.sort(previous)[k - 1]) if k <= len(previous) else None


def coverage(runs: list[np.ndarray], window: int, level: float, rule: str) -> float:
    """The fraction of replayed intervals that hold their proposal's ratio."""
    inside = []
    for r in runs:
        for t in range(MIN_PAIRS, len(r)):
            m = multiple(r[max(0, t - window):t], level, rule)
            if m is not None:
                inside.append(r[t] <= m)
    return float(np.mean(inside)) if inside else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=RESULTS_DIR / "suite")
    parser.add_argument("--windows", type=int, nargs="+", default=[20, 40, 60])
    args = parser.parse_args(argv)
    by_problem: dict[str, list[np.ndarray]] = {}
    for run in load_runs(args.runs):
        if run["sampler"] == "nars" and run.get("nars") and "true" in run:  # tables only
            by_problem.setdefault(run["problem"], []).append(ratios(run))
    if not by_problem:
        print(f"No NARS table runs in {args.runs}.", file=sys.stderr)
        return 2
    everything = [r for rs in by_problem.values() for r in rs]
    rows, results = [], []
    for window in args.windows:
        for rule in RULES:
            cells = {level: coverage(everything, window, level, rule) for level in LEVELS}
            per = {p: coverage(rs, window, 0.95, rule) for p, rs in sorted(by_problem.items())}
            results.append({"window": window, "rule": rule, "coverage": cells,
                            "coverage_95_per_problem": per})
            rows.append([window, rule, *(f"{cells[level]:.3f}" for level in LEVELS),
                         f"{min(per.values()):.2f}-{max(per.values()):.2f}"])
    print(markdown_table(["window", "rule", "within 1 std (claims 0.68)",
                          "within 95% (claims 0.95)", "95%, per problem"], rows))
    runs_dir = args.runs.resolve()
    write_results(RESULTS_DIR / "interval_replay.json", {
        "benchmark": "interval_replay", "command": command_line(), "date": utc_now(),
        "runs": str(runs_dir.relative_to(ROOT) if runs_dir.is_relative_to(ROOT) else runs_dir),
        "n_runs": len(everything), "n_proposals": int(sum(len(r) for r in everything)),
        "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
