"""What the history-driven samplers share (regularized evolution, REINFORCE).

Both learn from the labelled trials *in the order they finished* (then by number): the
population of aging evolution is the latest of them, and REINFORCE replays its policy updates
in that order. :func:`completed_history` reads that order from the storage, so every worker and
every fresh process derives the same state. :func:`check_candidates` fails a budget no candidate
meets at construction; :func:`propose_first` turns a list of candidates into a claim with the
base's fallbacks (a fresh feasible random row, then an explicit repeat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nars._keys import Stage
from optuna_nars.labels import trial_labels
from optuna_nars.samplers._claims import Claim
from optuna_nars.samplers._constraints import Constraints, infeasible_message
from optuna_nars.samplers._context import SpaceContext, StudyRows, direction_sign

if TYPE_CHECKING:
    from optuna_nars.samplers._base import BaseNASSampler

__all__ = ["History", "check_candidates", "completed_history", "propose_first"]

_logger = optuna.logging.get_logger("optuna." + __name__)

# Random rows drawn to show that a budget leaves candidates (the base's random fallback draws
# as many before giving up).
_N_CHECK = 4096


@dataclass(frozen=True)
class History:
    """The labelled trials in completion order (then by number)."""

    numbers: list[int]
    x: np.ndarray  # (n, d) values rows
    y: np.ndarray  # (n,) labels signed so that larger is better
    feasible: np.ndarray  # (n,) whether each row meets the constraints (enqueued ones may not)

    def key(self) -> tuple[tuple[int, float], ...]:
        """What the history holds, hashable: a state derived from it can be cached by it."""
        return tuple(zip(self.numbers, self.y.tolist(), strict=True))


def completed_history(study: Study, ctx: SpaceContext, rows: StudyRows) -> History:
    """The labelled trials of ``rows`` (labels of :func:`~optuna_nars.labels.trial_labels`, so
    the EarlyStoppingPruner's label step is honoured) ordered by completion time, then number.
    Completion times come from the storage, so every reader sees the same order."""
    labels = trial_labels(study, rows.trials)
    by_number = {t.number: t for t in rows.trials}
    numbers = [n for n, y in labels.items() if n in rows.rows and math.isfinite(y)]
    numbers.sort(key=lambda n: (_completed_at(by_number[n]), n))
    width = len(ctx.param_space)
    x = np.array([rows.rows[n] for n in numbers], dtype=float).reshape(len(numbers), width)
    y = direction_sign(study) * np.array([labels[n] for n in numbers], dtype=float)
    feasible = ctx.feasible(x) if len(x) else np.zeros(0, dtype=bool)
    return History(numbers, x, y, feasible)


def _completed_at(trial: FrozenTrial) -> datetime:
    return trial.datetime_complete or datetime.max


def check_candidates(ctx: SpaceContext, constraints: Constraints | None, seed: int) -> None:
    """Raise a clear ``ValueError`` when no random row of the space meets ``constraints``."""
    if not ctx.constraint_names:
        return
    sample = ctx.param_space.sample_values(_N_CHECK, seed=seed, method="random")
    if not ctx.feasible(sample).any():
        raise ValueError(infeasible_message(ctx.constraint_names, ctx.violations(sample),
                                            constraints))


def propose_first(
    sampler: BaseNASSampler,
    ctx: SpaceContext,
    trial: FrozenTrial,
    rows: StudyRows,
    candidates: np.ndarray,
    stage: Stage,
) -> Claim:
    """The first feasible candidate not taken (``rows.pick``, so colliding workers spread),
    else a fresh feasible random row, else (the feasible space is exhausted) a repeat."""
    ok = candidates[ctx.feasible(candidates)] if len(candidates) else candidates
    i = rows.pick(ok)
    if i is not None:
        return Claim(ok[i], stage)
    row = ctx.random_feasible_row(rows, sampler._seed, trial.number)
    if row is not None:
        return Claim(row, Stage.RANDOM)
    _logger.warning(
        f"Every feasible candidate {type(sampler).__name__} found has been evaluated or is "
        "running; repeating one."
    )
    if len(ok):
        return Claim(ok[0], Stage.REPEAT)
    # The random search can miss a tiny feasible region; the study's own rows cannot.
    taken = np.array(list(rows.rows.values()), dtype=float).reshape(-1, len(ctx.param_space))
    taken = taken[ctx.feasible(taken)] if len(taken) else taken
    if len(taken):
        return Claim(taken[0], Stage.REPEAT)
    sample = ctx.param_space.sample_values(_N_CHECK, seed=trial.number, method="random")
    return Claim(sample[int(np.argmin(ctx.violations(sample).max(axis=1)))], Stage.REPEAT)
