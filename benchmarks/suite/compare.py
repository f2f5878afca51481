"""Whether two recorded grids are the same runs: every per-trial field, timings aside.

A change that should not alter what a sampler proposes (a restructuring, a speed-up) is checked
by running the same grid before and after it and comparing::

    git worktree add /tmp/before <old commit>
    (cd /tmp/before && python -m benchmarks run --quick --samplers nars --out /tmp/grid-before)
    python -m benchmarks run --quick --samplers nars --out /tmp/grid-after
    python -m benchmarks compare /tmp/grid-before /tmp/grid-after
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["compare_grids"]

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
