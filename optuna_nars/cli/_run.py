"""How ``optuna-nars search`` runs its trials: how many (``--n-trials`` or ``--total-trials``),
and the objective wrapper that tells a sampler failure (a bug: exit code 1) from a training
failure (an outcome the study records) and marks a trial stopped by Ctrl-C as interrupted, so
that its candidate runs again."""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from optuna_nars.cli._parser import DEFAULT_N_TRIALS
from optuna_nars.stale import mark_interrupted, released_trials

__all__ = [
    "StopAtTotal",
    "TrialPlan",
    "WatchedObjective",
    "finished_trials",
    "raised_by_sampler",
    "trial_plan",
]


def raised_by_sampler(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it was raised from) came out of an optuna-nars sampler:
    a bug to report, unlike a training failure, which the study records as an outcome."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("optuna_nars.samplers"):
                return True
            tb = tb.tb_next
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__)
    return False


class WatchedObjective:
    """The objective as ``search`` runs it: a trial stopped by Ctrl-C is marked interrupted
    (its candidate runs again), and a trial the sampler failed stops the search, to be reported
    by the exit code (training failures are outcomes; sampler failures are bugs)."""

    def __init__(self, objective: Callable[[optuna.Trial], Any]) -> None:
        self.objective = objective
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, trial: optuna.Trial) -> Any:
        try:
            return self.objective(trial)
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                mark_interrupted(trial, "stopped by Ctrl-C")
            raise
        except Exception as err:
            if raised_by_sampler(err):
                self.sampler_failed(trial, err)
            raise

    def sampler_failed(self, trial: optuna.Trial | None, err: BaseException) -> None:
        """Record a sampler failure (once per exception) and stop the search."""
        with self._lock:
            if trial is None and self.errors:
                return  # already recorded from inside the objective
            where = f"trial {trial.number}" if trial is not None else "the study"
            self.errors.append(f"{where}: {type(err).__name__}: {err}")
        if trial is not None:
            trial.study.stop()

    def report(self) -> str:
        """The error message for the exit code."""
        return (f"the sampler failed ({'; '.join(self.errors)[:500]}), so the search stopped. "
                "This is a bug in optuna-nars, not a training failure: please report it with "
                "the traceback logged above. The trials so far are kept; fix or update and "
                "resume.")


@dataclass(frozen=True)
class TrialPlan:
    """How many trials: ``finished`` so far, ``now`` to run, ``total`` to reach."""

    finished: int
    now: int
    total: int


def finished_trials(study: optuna.Study) -> int:
    """Finished trials, but not those failed by an interruption (their candidates run again)."""
    trials = study.get_trials(deepcopy=False)
    released = released_trials(study, trials)
    return sum(1 for t in trials if t.state.is_finished() and t.number not in released)


def trial_plan(study: optuna.Study, args: argparse.Namespace) -> TrialPlan:
    """``--total-trials N``: up to N finished; else ``--n-trials`` (default 20) more."""
    finished = finished_trials(study)
    if args.total_trials is not None:
        return TrialPlan(finished, max(0, args.total_trials - finished), args.total_trials)
    n = args.n_trials if args.n_trials is not None else DEFAULT_N_TRIALS
    return TrialPlan(finished, n, finished + n)


class StopAtTotal:
    """Stop when the study has its total of finished trials (several workers may run it)."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if finished_trials(study) >= self.total:
            study.stop()
