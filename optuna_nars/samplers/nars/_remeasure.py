"""Measuring a pair again: on a noisy objective, the best single measure is partly luck."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from optuna.study import Study
from optuna.trial import TrialState

from optuna_nars.samplers._context import SpaceContext, StudyRows, direction_sign, row_key


def remeasure_row(study: Study, ctx: SpaceContext, rows: StudyRows,
                  bonus: float = 0.0) -> np.ndarray | None:
    """The measured feasible pair with the best mean of its measures that no running trial
    holds; ``None`` once the measures of each of five pairs measured again agree exactly (a
    deterministic objective: measuring again teaches nothing)."""
    sign = direction_sign(study)
    measures: dict[tuple, list[float]] = defaultdict(list)
    running = set()
    for t in rows.trials:
        row = rows.rows.get(t.number)
        if row is None:
            continue
        if t.state == TrialState.RUNNING:
            running.add(row_key(row))
        elif t.state == TrialState.COMPLETE and t.value is not None:
            measures[row_key(row)].append(sign * t.value)
    repeated = [v for v in measures.values() if len(v) >= 2]
    if len(repeated) >= 5 and all(np.ptp(v) == 0 for v in repeated):
        return None
    # The measures' noise: the pooled spread of the pairs measured more than once.
    dof = sum(len(v) - 1 for v in repeated)
    noise = (np.sqrt(sum(np.var(v) * len(v) for v in repeated) / dof) if dof else 0.0)
    ranked = sorted(((float(np.mean(v)) + bonus * noise / np.sqrt(len(v)), k)
                     for k, v in measures.items() if k not in running), reverse=True)
    for _, key in ranked:
        row = np.asarray(key, dtype=float)
        if ctx.feasible(row[None])[0]:
            return row
    return None
