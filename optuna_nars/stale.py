"""Trials whose worker is gone: failing them, and releasing their candidates.

A worker killed mid-trial (``kill -9``, a lost node, a closed laptop) leaves its trial RUNNING.
:class:`~optuna.storages.RDBStorage` can notice through its heartbeat; JournalStorage (file and
Redis) has none, so such a trial stays RUNNING forever, and because a sampler never proposes a
running trial's candidate again, that candidate is lost to the study too.

* :func:`fail_stale_trials` marks the trials RUNNING for longer than a threshold FAIL, with the
  reason in the trial user attribute ``nars:interrupted`` (shown by optuna-dashboard). The
  command line has it as ``optuna-nars fail-stale --older-than 10m``.
* :func:`release_stale_trial` is the same record for RDBStorage's heartbeat:
  ``RDBStorage(url, heartbeat_interval=60, heartbeat_stale_trial_callback=release_stale_trial)``
  (``failed_trial_callback=`` in Optuna < 4.9).
* :func:`mark_interrupted` records it for a live trial about to fail (e.g. on Ctrl-C).

A FAIL so recorded *releases* the trial's candidate: :func:`released_trials` names those trials,
and optuna-nars's samplers leave them out of the candidates never to be proposed again, so the
candidate can be proposed (and trained) again. Any other FAIL (the objective raised) keeps its
candidate taken, as a failed evaluation is an outcome.

Choose the threshold above the longest trial: a trial failed while its worker still runs makes
that worker's next report or result raise :class:`~optuna.exceptions.UpdateFinishedTrialError`.
Ages are measured from the trial's start (JournalStorage keeps no other sign of life), against
this machine's clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import INTERRUPTED_ATTR, INTERRUPTED_PREFIX

__all__ = [
    "fail_stale_trials",
    "mark_interrupted",
    "release_stale_trial",
    "released_trials",
    "stale_trials",
    "trial_age",
]

_logger = optuna.logging.get_logger("optuna." + __name__)


def _check_threshold(older_than: datetime.timedelta) -> None:
    if not isinstance(older_than, datetime.timedelta):
        raise TypeError(f"older_than must be a datetime.timedelta, got "
                        f"{type(older_than).__name__}, e.g. datetime.timedelta(minutes=10).")
    if older_than < datetime.timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}.")


def trial_age(trial: FrozenTrial, now: datetime.datetime | None = None) -> datetime.timedelta:
    """How long ago ``trial`` started (zero if it has not started)."""
    if trial.datetime_start is None:
        return datetime.timedelta(0)
    return (now or datetime.datetime.now()) - trial.datetime_start


def stale_trials(study: Study, older_than: datetime.timedelta, *,
                 now: datetime.datetime | None = None) -> list[FrozenTrial]:
    """The RUNNING trials of ``study`` started more than ``older_than`` before ``now`` (default:
    this machine's clock; Optuna records start times in local time), oldest first."""
    _check_threshold(older_than)
    now = now or datetime.datetime.now()
    running = study._storage.get_all_trials(study._study_id, deepcopy=False,
                                            states=(TrialState.RUNNING,))
    stale = [t for t in running if t.datetime_start is not None
             and trial_age(t, now) > older_than]
    return sorted(stale, key=lambda t: (t.datetime_start, t.number))


def _rounded(delta: datetime.timedelta) -> datetime.timedelta:
    return datetime.timedelta(seconds=round(delta.total_seconds()))


def fail_stale_trials(study: Study, older_than: datetime.timedelta, *,
                      now: datetime.datetime | None = None) -> list[int]:
    """Mark the trials RUNNING for more than ``older_than`` FAIL as interrupted; return their
    numbers.

    Each gets the user attribute ``nars:interrupted`` (the reason and its age) and releases its
    candidate (see the module docstring). Safe to run from several places at once: a trial its
    worker (or another operator) finished meanwhile is skipped.
    """
    now = now or datetime.datetime.now()
    failed = []
    for trial in stale_trials(study, older_than, now=now):
        reason = (f"interrupted: RUNNING for {_rounded(trial_age(trial, now))} (more than "
                  f"{older_than}) with no result, its worker presumed dead; failed as stale at "
                  f"{now:%Y-%m-%d %H:%M:%S}")
        if _fail_as_interrupted(study, trial._trial_id, reason):
            _logger.info(f"Trial {trial.number} failed: {reason}.")
            failed.append(trial.number)
    return failed


def _fail_as_interrupted(study: Study, trial_id: int, reason: str) -> bool:
    """FAIL a running trial with ``reason``; ``False`` if someone finished it first."""
    storage = study._storage
    try:
        # The reason first: a finished trial can no longer be written.
        storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, reason)
        return bool(storage.set_trial_state_values(trial_id, TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def mark_interrupted(trial: optuna.Trial, reason: str) -> None:
    """Record on a running ``trial`` that it is failing because it was interrupted (not
    because the objective failed), so that its candidate is released once it is FAIL."""
    trial.set_user_attr(INTERRUPTED_ATTR, f"interrupted: {reason}")


def release_stale_trial(study: Study, trial: FrozenTrial) -> None:
    """An RDBStorage ``heartbeat_stale_trial_callback``: record that ``trial`` failed because
    its heartbeat stopped, so that its candidate is released.

    Optuna calls it once the trial is FAIL, when the trial can no longer be written: the
    record goes to the study's system attributes instead, keyed by the trial number.
    """
    reason = ("interrupted: its heartbeat stopped, its worker presumed dead; failed by the "
              "storage's heartbeat check")
    study._storage.set_study_system_attr(study._study_id, f"{INTERRUPTED_PREFIX}{trial.number}",
                                         reason)


def released_trials(study: Study, trials: Sequence[FrozenTrial]) -> set[int]:
    """The numbers of the FAIL trials of ``trials`` (a study's) recorded as interrupted, whose
    candidates may be proposed again."""
    failed = [t for t in trials if t.state == TrialState.FAIL]
    released = {t.number for t in failed if INTERRUPTED_ATTR in t.user_attrs}
    if len(released) < len(failed):  # the study's records are read only when they can matter
        attrs = study._storage.get_study_system_attrs(study._study_id)
        released |= {t.number for t in failed if f"{INTERRUPTED_PREFIX}{t.number}" in attrs}
    return released
