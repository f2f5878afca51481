"""Measuring a pair again, on a noisy objective.

A study's best trial is its best single measure. Where measures are noisy (training seeds, data
order; a table's runs), that is partly luck: a pair measured once, luckily, holds the lead over
a better pair measured once, unluckily. On the benchmark tables NARSSampler has measured the
best pair of NAS-Bench-201 and NAS-Bench-Macro by trial 100 in every seed, and the incumbent is
another (``benchmarks/lucky_incumbents.py``). Measuring the pairs that look best again gives the
better one more draws, so that it takes the lead, and tells a lucky measure from a good pair.

Which pair: the best mean of its measures plus ``bonus`` times the measures' noise (their
pooled spread over the pairs measured more than once) over the square root of its count, an
upper confidence bound that lets a pair measured once, unluckily, have its turn. Measuring
again stops on a deterministic objective: once eight measures again have each agreed exactly
with their pair's others.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from optuna.study import Study
from optuna.trial import TrialState

from optuna_nars.samplers._context import SpaceContext, StudyRows, labelled_rows, row_key

__all__ = ["DETERMINISTIC_AFTER", "remeasure_row"]

# Measures again, every one identical to its pair's others, before the objective counts as
# deterministic: on a table of 2 runs a pair, two draws agree by chance half of the time, and
# eight in a row 0.4% of the time.
DETERMINISTIC_AFTER = 8


def remeasure_row(
    study: Study, ctx: SpaceContext, rows: StudyRows, bonus: float
) -> np.ndarray | None:
    """The feasible labelled pair to measure again (module docstring), that no running trial
    holds nor this trial has lost to a rival (``rows.lost``); ``None`` if there is none or the
    objective is deterministic."""
    _, x, y = labelled_rows(study, rows)
    measures: dict[tuple[float, ...], list[float]] = defaultdict(list)
    for row, label in zip(x, y, strict=True):
        measures[row_key(row)].append(float(label))
    repeated = [v for v in measures.values() if len(v) > 1]
    dof = sum(len(v) - 1 for v in repeated)
    if dof >= DETERMINISTIC_AFTER and all(np.ptp(v) == 0 for v in repeated):
        return None
    noise = np.sqrt(sum(len(v) * np.var(v) for v in repeated) / dof) if dof else 0.0
    busy = {row_key(rows.rows[t.number]) for t in rows.trials
            if t.state == TrialState.RUNNING and t.number in rows.rows} | rows.lost
    scores = sorted(((np.mean(v) + bonus * noise / np.sqrt(len(v)), key)
                     for key, v in measures.items() if key not in busy), reverse=True)
    for _, key in scores:
        row = np.asarray(key, dtype=float)
        if ctx.feasible(row[None])[0] and np.array_equal(rows.actual(row), row):
            return row
    return None
