"""``optuna-nars fail-stale``: fail the trials whose workers are gone (RUNNING for longer than
``--older-than``), so that their candidates are proposed again. The work is
:func:`optuna_nars.stale.fail_stale_trials`; this command lists what it did (or, with
``--dry-run``, would do)."""

from __future__ import annotations

import argparse
import datetime

from optuna.trial import FrozenTrial

from optuna_nars._keys import STAGE_KEY
from optuna_nars.cli._errors import EXIT_OK, to_stderr
from optuna_nars.cli._format import format_duration, table
from optuna_nars.cli._storages import open_storage
from optuna_nars.cli._study import load_existing_study
from optuna_nars.stale import fail_stale_trials, stale_trials, trial_age

__all__ = ["cmd_fail_stale"]


def _trials_table(trials: list[FrozenTrial], now: datetime.datetime) -> str:
    rows = [[
        str(t.number),
        format_duration(trial_age(t, now).total_seconds()),
        f"{t.datetime_start:%Y-%m-%d %H:%M:%S}" if t.datetime_start else "-",
        str(t.user_attrs.get(STAGE_KEY, "-")),
        str(t.user_attrs.get("arch", "-")),
    ] for t in trials]
    return table(rows, ["trial", "running for", "started", "stage", "arch"])


def cmd_fail_stale(args: argparse.Namespace) -> int:
    """Run ``optuna-nars fail-stale``."""
    storage = open_storage(args.storage, must_exist=True)
    study = load_existing_study(storage, args.storage, args.study_name)
    now = datetime.datetime.now()
    threshold = format_duration(args.older_than.total_seconds())
    stale = stale_trials(study, args.older_than, now=now)
    if not stale:
        print(f"No trial of study {args.study_name!r} has been RUNNING for more than "
              f"{threshold}.")
        return EXIT_OK
    if args.dry_run:
        print(f"Would fail {len(stale)} trial{'s' if len(stale) != 1 else ''} of study "
              f"{args.study_name!r} RUNNING for more than {threshold} (dry run: nothing "
              "changed):")
        print(_trials_table(stale, now))
        return EXIT_OK
    failed = set(fail_stale_trials(study, args.older_than, now=now))
    done = [t for t in stale if t.number in failed]
    print(f"Failed {len(done)} trial{'s' if len(done) != 1 else ''} of study "
          f"{args.study_name!r} RUNNING for more than {threshold}; their candidates will be "
          "proposed again:")
    print(_trials_table(done, now) if done else "(none)")
    skipped = [str(t.number) for t in stale if t.number not in failed]
    if skipped:
        to_stderr(f"Skipped trial{'s' if len(skipped) != 1 else ''} {', '.join(skipped)}: "
                  "finished meanwhile (by its worker or another fail-stale).")
    return EXIT_OK
