"""Tests for optuna_nars.pruner on real Optuna studies (in-memory, SQLite, journal)."""

from __future__ import annotations

import contextlib
import logging
import math
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import optuna
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial

from optuna_nars.pruner import (
    CALIBRATION_ATTR,
    CALIBRATION_INFO_KEY,
    LABEL_CORRELATION_KEY,
    LABEL_STEP_KEY,
    LABEL_THRESHOLD_KEY,
    EarlyStoppingPruner,
    get_label_step,
    trial_labels,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_STEPS = 6
Curve = dict[int, float]


# ---- synthetic learning curves ------------------------------------------------------------------


def make_curve(
    final: float, early: float, stable_from: int, steps: range = range(1, N_STEPS + 1)
) -> Curve:
    """Curve ranked by ``early`` before ``stable_from`` and by ``final`` from then on.

    The same offset is subtracted from every trial at a step, so the ranking of trials at a step
    is the ranking of ``early`` or ``final``; the last step equals ``final``.
    """
    last = steps[-1]
    return {
        s: (final if s >= stable_from else early) - 0.01 * (last - s) / max(1, steps.step)
        for s in steps
    }


def finals(i: int) -> float:
    return 0.5 + 0.04 * (i % 8) + 0.001 * i  # distinct for every trial number


def stable_from_3(number: int) -> Curve:
    """Ranking reversed at steps 1-2 (correlation -1), equal to the final ranking from 3 on."""
    f = finals(number)
    return make_curve(f, 1.0 - f, 3)


def curve_objective(
    curves: Callable[[int], Curve],
    *,
    final: Callable[[int], float] | None = None,
    step_seconds: float = 0.0,
) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        curve = curves(trial.number)
        for step, value in sorted(curve.items()):
            time.sleep(step_seconds)  # "training"
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return final(trial.number) if final is not None else curve[max(curve)]

    return objective


def seed_trials(
    study: optuna.Study, curves: list[Curve], values: list[float] | None = None
) -> None:
    """Add COMPLETE trials with the given curves (final value = last point unless given)."""
    for i, curve in enumerate(curves):
        value = values[i] if values is not None else curve[max(curve)]
        study.add_trial(create_trial(value=value, intermediate_values=curve))


def run_trial(study: optuna.Study, curve: Curve, value: float | None = None) -> optuna.Trial:
    """Run one trial by ask/tell the way an objective would; return it (finished)."""
    trial = study.ask()
    for step, v in sorted(curve.items()):
        trial.report(v, step)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return trial
    study.tell(trial, value if value is not None else curve[max(curve)])
    return trial


def system_attrs(study: optuna.Study) -> dict:
    return study._storage.get_study_system_attrs(study._study_id)


@contextlib.contextmanager
def optuna_propagation() -> Iterator[None]:
    optuna.logging.enable_propagation()
    try:
        yield
    finally:
        optuna.logging.disable_propagation()


# ---- calibration --------------------------------------------------------------------------------


@pytest.mark.parametrize("correlation", ["kendall", "spearman"])
def test_label_step_is_first_stable_epoch(correlation: str) -> None:
    pruner = EarlyStoppingPruner(8, correlation=correlation, threshold=0.9)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(curve_objective(stable_from_3), n_trials=14)

    assert get_label_step(study) == 3
    trials = study.get_trials()
    # Calibration trials are never pruned and run to full length.
    assert all(t.state == TrialState.COMPLETE for t in trials[:8])
    assert all(t.last_step == N_STEPS for t in trials[:8])
    # Every later trial stops at the label step.
    for t in trials[8:]:
        assert t.state == TrialState.PRUNED
        assert t.last_step == 3
    attrs = system_attrs(study)
    assert attrs[LABEL_THRESHOLD_KEY] == 0.9
    assert attrs[LABEL_CORRELATION_KEY]["1"] == pytest.approx(-1.0)
    assert attrs[LABEL_CORRELATION_KEY]["3"] == pytest.approx(1.0)
    assert attrs[CALIBRATION_INFO_KEY]["trials"] == list(range(8))
    assert attrs[CALIBRATION_INFO_KEY]["full_step"] == N_STEPS


def test_pruned_trial_value_is_value_at_label_step() -> None:
    # Optuna's _tell records the last intermediate value as a PRUNED trial's value.
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    study.optimize(curve_objective(stable_from_3), n_trials=10)
    for t in study.get_trials(states=(TrialState.PRUNED,)):
        assert t.value == t.intermediate_values[3] == stable_from_3(t.number)[3]


def test_stored_attributes_are_json_serialisable(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        storage=storage, direction="maximize", pruner=EarlyStoppingPruner(4)
    )
    study.optimize(curve_objective(stable_from_3), n_trials=6)
    reloaded = optuna.load_study(study_name=study.study_name, storage=storage)
    attrs = system_attrs(reloaded)
    assert isinstance(attrs[LABEL_STEP_KEY], int) and attrs[LABEL_STEP_KEY] == 3
    assert isinstance(attrs[LABEL_THRESHOLD_KEY], float)
    assert set(attrs[LABEL_CORRELATION_KEY]) == {str(s) for s in range(1, N_STEPS + 1)}
    assert get_label_step(reloaded) == 3
    assert [t.state for t in reloaded.trials[4:]] == [TrialState.PRUNED] * 2


def test_no_pruning_until_calibration_trials_complete() -> None:
    pruner = EarlyStoppingPruner(5)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(curve_objective(stable_from_3), n_trials=5)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    # The label is computed lazily: on the first pruning check after calibration.
    assert get_label_step(study) is None
    assert pruner.calibrate(study) == 3
    assert get_label_step(study) == 3
    assert all(t.user_attrs[CALIBRATION_ATTR] is True for t in study.trials)


def test_failed_and_pruned_trials_do_not_count_for_calibration() -> None:
    def objective(trial: optuna.Trial) -> float:
        if trial.number == 2:
            raise RuntimeError("diverged")
        return curve_objective(stable_from_3)(trial)

    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    study.optimize(objective, n_trials=12, catch=(RuntimeError,))
    info = system_attrs(study)[CALIBRATION_INFO_KEY]
    assert info["trials"] == [0, 1, 3, 4, 5, 6, 7, 8]
    assert study.trials[8].state == TrialState.COMPLETE
    assert all(t.state == TrialState.PRUNED for t in study.trials[9:])


def test_calibration_waits_for_lower_numbered_running_trials() -> None:
    # Deterministic across workers: the calibration set is the first n COMPLETE trials by number
    # and is settled only when no lower-numbered trial can still join it.
    pruner = EarlyStoppingPruner(3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    slow = study.ask()  # trial 0, still running
    for i in range(1, 4):
        run_trial(study, stable_from_3(i))
    assert pruner.calibrate(study) is None
    probe = study.ask()
    probe.report(0.1, 1)
    probe.report(0.1, 5)
    assert not probe.should_prune()  # still calibrating

    for step, v in stable_from_3(0).items():
        slow.report(v, step)
    study.tell(slow, stable_from_3(0)[N_STEPS])
    assert pruner.calibrate(study) == 3
    assert system_attrs(study)[CALIBRATION_INFO_KEY]["trials"] == [0, 1, 2]
    # A trial that started during calibration is stopped once it is known, and is unmarked.
    assert probe.should_prune()
    study.tell(probe, state=TrialState.PRUNED)
    assert study.trials[probe.number].user_attrs[CALIBRATION_ATTR] is False


def test_seeded_trials_calibrate_without_running() -> None:
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    seed_trials(study, [stable_from_3(i) for i in range(8)])
    trial = run_trial(study, stable_from_3(8))
    assert study.trials[trial.number].state == TrialState.PRUNED
    assert get_label_step(study) == 3


def test_min_step() -> None:
    def stable_from_1(i: int) -> Curve:
        return make_curve(finals(i), 0.0, 1)

    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8, min_step=2))
    seed_trials(study, [stable_from_1(i) for i in range(8)])
    assert study.pruner.calibrate(study) == 2  # type: ignore[attr-defined]
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    seed_trials(study, [stable_from_1(i) for i in range(8)])
    assert study.pruner.calibrate(study) == 1  # type: ignore[attr-defined]


def test_no_step_passes_disables_early_stopping_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The returned value ranks the trials in reverse of every reported step.
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    objective = curve_objective(lambda i: make_curve(finals(i), 0, 1), final=lambda i: -finals(i))
    with optuna_propagation(), caplog.at_level(logging.WARNING):
        study.optimize(objective, n_trials=12)
    assert get_label_step(study) == N_STEPS
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert any("not stopped early" in r.getMessage() for r in caplog.records)
    assert caplog.records[0].name == "optuna.optuna_nars.pruner"
    # Labels are still one consistent measurement: the value at the last step.
    labels = trial_labels(study)
    assert labels == {t.number: t.intermediate_values[N_STEPS] for t in study.trials}


def test_only_last_step_passing_means_no_early_stopping() -> None:
    # Reported value equals the final value only at the last step.
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    study.optimize(curve_objective(lambda i: make_curve(finals(i), -finals(i), 6)), n_trials=11)
    assert get_label_step(study) == N_STEPS
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_steps_not_starting_at_one_and_not_consecutive() -> None:
    steps = range(0, 41, 10)  # 0, 10, 20, 30, 40

    def curves(i: int) -> Curve:
        return make_curve(finals(i), 1.0 - finals(i), 20, steps)

    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8, min_step=0))
    study.optimize(curve_objective(curves), n_trials=10)
    assert get_label_step(study) == 20
    assert all(t.last_step == 20 for t in study.trials[8:])
    assert set(system_attrs(study)[LABEL_CORRELATION_KEY]) == {"0", "10", "20", "30", "40"}

    # A trial that skips the label step is stopped at the first step after it, unlabelled.
    skipper = run_trial(study, {10: 0.5, 25: 0.6, 40: 0.7})
    frozen = study.trials[skipper.number]
    assert frozen.state == TrialState.PRUNED and frozen.last_step == 25
    assert skipper.number not in trial_labels(study)


def test_step_with_constant_values_is_undefined() -> None:
    def curves(i: int) -> Curve:
        curve = make_curve(finals(i), 0.0, 1)
        curve[1] = 0.1  # every trial reports the same value at step 1
        return curve

    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    seed_trials(study, [curves(i) for i in range(8)])
    assert study.pruner.calibrate(study) == 2  # type: ignore[attr-defined]
    assert system_attrs(study)[LABEL_CORRELATION_KEY]["1"] is None


def test_constant_final_values_never_pass() -> None:
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    curves = [make_curve(finals(i), finals(i), 1) for i in range(8)]
    seed_trials(study, curves, values=[0.5] * 8)
    assert study.pruner.calibrate(study) == N_STEPS  # type: ignore[attr-defined]
    assert all(c is None for c in system_attrs(study)[LABEL_CORRELATION_KEY].values())


def test_nan_reports_are_ignored_in_correlation() -> None:
    def curves(n_nan: int) -> list[Curve]:
        out = [make_curve(finals(i), 1.0 - finals(i), 2) for i in range(8)]
        for i in range(n_nan):
            out[i][2] = math.nan
        return out

    # Two NaNs at step 2: the six other trials still rank perfectly -> label step 2.
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    seed_trials(study, curves(2))
    assert study.pruner.calibrate(study) == 2  # type: ignore[attr-defined]
    assert system_attrs(study)[LABEL_CORRELATION_KEY]["2"] == pytest.approx(1.0)

    # Five NaNs: fewer than half the trials left, the step is undefined -> label step 3.
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    seed_trials(study, curves(5))
    assert study.pruner.calibrate(study) == 3  # type: ignore[attr-defined]
    assert system_attrs(study)[LABEL_CORRELATION_KEY]["2"] is None


def test_nan_at_label_step_still_stops_the_trial() -> None:
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
    seed_trials(study, [stable_from_3(i) for i in range(8)])
    trial = run_trial(study, {1: 0.5, 2: 0.5, 3: math.nan, 4: 0.9})
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.PRUNED and frozen.last_step == 3
    assert frozen.value is None  # Optuna does not record a NaN as the value
    assert trial.number not in trial_labels(study)


# ---- labels -------------------------------------------------------------------------------------


def test_mixed_study_has_one_consistent_label_set() -> None:
    # Calibration trials return a value different from their step-3 value (e.g. a test score):
    # their label must still be the step-3 value, like the early-stopped trials.
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 9:
            raise RuntimeError("crashed")
        curve = stable_from_3(trial.number)
        if trial.number == 10:  # diverged: gives up after step 2
            curve = {1: curve[1], 2: curve[2]}
        return curve_objective(lambda _: curve, final=lambda i: finals(i) + 0.05)(trial)

    study.optimize(objective, n_trials=14, catch=(RuntimeError,))
    study.add_trial(create_trial(value=0.42))  # a COMPLETE trial that never reported

    labels = trial_labels(study)
    by_number = {t.number: t for t in study.trials}
    assert get_label_step(study) == 3
    assert by_number[9].state == TrialState.FAIL and 9 not in labels
    assert by_number[10].state == TrialState.COMPLETE and 10 not in labels
    assert labels[14] == 0.42
    measured = [n for n in labels if n != 14]
    assert measured == [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13]
    for n in measured:
        assert labels[n] == by_number[n].intermediate_values[3] == stable_from_3(n)[3]
        assert labels[n] != by_number[n].value or by_number[n].state == TrialState.PRUNED
    # Calibration (COMPLETE) and early-stopped (PRUNED) trials are both present.
    assert {by_number[n].state for n in measured} == {TrialState.COMPLETE, TrialState.PRUNED}
    # The same labels whatever trials are passed in, including RUNNING/FAIL ones.
    assert trial_labels(study, study.get_trials(deepcopy=False)) == labels
    assert trial_labels(study, [by_number[0], by_number[9]]) == {0: labels[0]}


def test_labels_before_calibration_are_final_values() -> None:
    study = optuna.create_study(direction="maximize")
    seed_trials(study, [stable_from_3(i) for i in range(3)], values=[0.1, 0.2, 0.3])
    study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.9}))
    study.add_trial(create_trial(state=TrialState.FAIL))
    assert get_label_step(study) is None
    assert trial_labels(study) == {0: 0.1, 1: 0.2, 2: 0.3}


# ---- recalibration ------------------------------------------------------------------------------


def test_recalibration_moves_label_step_later() -> None:
    # Calibration trials 0-7 are stable from step 2. With interval 3 the boundary is trial 7 and
    # trials 10, 13, ... run to full length; trial 10 is stable only from step 4 and is the best
    # trial but the worst one at steps 1-3, so the correlation at step 2 drops.
    def curves(i: int) -> Curve:
        if i < 8:
            return make_curve(finals(i), 1.0 - finals(i), 2)
        if i == 10:
            return make_curve(0.99, 0.0, 4)
        return stable_from_3(i)

    pruner = EarlyStoppingPruner(8, recalibration_interval=3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(curve_objective(curves), n_trials=10)
    assert get_label_step(study) == 2
    study.optimize(curve_objective(curves), n_trials=6)
    assert get_label_step(study) == 4

    trials = study.trials
    assert [t.last_step for t in trials[8:10]] == [2, 2]
    for n in (10, 13):
        assert trials[n].state == TrialState.COMPLETE
        assert trials[n].last_step == N_STEPS
        assert trials[n].user_attrs[CALIBRATION_ATTR] is True
    assert [t.last_step for t in trials[11:16] if t.number != 13] == [4, 4, 4, 4]
    assert all(CALIBRATION_ATTR not in t.user_attrs for t in (trials[8], trials[11]))
    assert system_attrs(study)[CALIBRATION_INFO_KEY]["trials"] == [*range(8), 10, 13]
    # Trials stopped at the old step lose their label; the rest are measured at step 4.
    labels = trial_labels(study)
    assert 8 not in labels and 9 not in labels
    assert all(labels[n] == trials[n].intermediate_values[4] for n in labels)


def test_recalibration_never_moves_earlier() -> None:
    # Calibration: steps 1-2 have two discordant pairs (tau = 0.857 < 0.9) -> label step 3.
    # Perfectly ranked recalibration trials would lift steps 1-2 above 0.9, but the label stays.
    def calibration_curve(i: int) -> Curve:
        swap = {0: 1, 1: 0, 4: 5, 5: 4}.get(i, i)
        return make_curve(finals(i), finals(swap), 3)

    pruner = EarlyStoppingPruner(8, recalibration_interval=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    seed_trials(study, [calibration_curve(i) for i in range(8)])
    assert pruner.calibrate(study) == 3
    for k in range(4):
        run_trial(study, make_curve(1.0 + k, 1.0 + k, 1))
    curve = system_attrs(study)[LABEL_CORRELATION_KEY]
    assert curve["1"] >= 0.9  # the curve alone would now pick step 1
    assert pruner.calibrate(study) == 3
    assert all(t.state == TrialState.COMPLETE for t in study.trials)  # interval 1: all full


# ---- resumed studies, storages, concurrency ------------------------------------------------------


def test_changed_threshold_on_resumed_study(tmp_path: Path) -> None:
    def curves(i: int) -> Curve:
        swap = {0: 1, 1: 0, 4: 5, 5: 4}.get(i, i)  # steps 1-2: tau = 0.857
        return make_curve(finals(i), finals(swap), 3)

    storage = f"sqlite:///{tmp_path / 'resume.db'}"
    study = optuna.create_study(
        study_name="s", storage=storage, direction="maximize", pruner=EarlyStoppingPruner(8)
    )
    seed_trials(study, [curves(i) for i in range(8)])
    study.optimize(curve_objective(curves), n_trials=2)
    assert get_label_step(study) == 3

    # A lower threshold re-selects from the same calibration trials: the step moves earlier,
    # and trials stopped at step 3 keep a label (measured at step 1 now).
    low = EarlyStoppingPruner(8, threshold=0.8)
    resumed = optuna.load_study(study_name="s", storage=storage, pruner=low)
    assert low.calibrate(resumed) == 1
    assert system_attrs(resumed)[LABEL_THRESHOLD_KEY] == 0.8
    labels = trial_labels(resumed)
    assert sorted(labels) == list(range(10))
    assert all(labels[n] == resumed.trials[n].intermediate_values[1] for n in labels)

    # A higher one moves it later again.
    high = EarlyStoppingPruner(8, threshold=0.95)
    resumed = optuna.load_study(study_name="s", storage=storage, pruner=high)
    resumed.optimize(curve_objective(curves), n_trials=1)
    assert get_label_step(resumed) == 3
    assert resumed.trials[-1].last_step == 3


def test_larger_calibration_set_on_resume_runs_full_length_until_complete() -> None:
    study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(4))
    study.optimize(curve_objective(stable_from_3), n_trials=6)
    assert [t.state for t in study.trials[4:]] == [TrialState.PRUNED] * 2
    study.pruner = EarlyStoppingPruner(6)
    study.optimize(curve_objective(stable_from_3), n_trials=4)
    # Trials 6 and 7 complete the new calibration set {0, 1, 2, 3, 6, 7}; 8+ are stopped again.
    assert [t.state for t in study.trials[6:]] == [TrialState.COMPLETE] * 2 + [
        TrialState.PRUNED
    ] * 2
    assert system_attrs(study)[CALIBRATION_INFO_KEY]["trials"] == [0, 1, 2, 3, 6, 7]


def test_deterministic_across_studies_and_workers(tmp_path: Path) -> None:
    results = []
    for _ in range(2):
        study = optuna.create_study(direction="maximize", pruner=EarlyStoppingPruner(8))
        study.optimize(curve_objective(stable_from_3), n_trials=10)
        results.append(system_attrs(study))
    assert results[0] == results[1]

    # Two workers (separate Study objects and pruners) on one SQLite file agree, and
    # recomputing leaves the stored calibration unchanged.
    storage = f"sqlite:///{tmp_path / 'workers.db'}"
    a = optuna.create_study(study_name="w", storage=storage, direction="maximize")
    seed_trials(a, [stable_from_3(i) for i in range(8)])
    b = optuna.load_study(study_name="w", storage=storage)
    pa, pb = EarlyStoppingPruner(8), EarlyStoppingPruner(8)
    assert pa.calibrate(a) == pb.calibrate(b) == 3
    before = system_attrs(a)
    assert pb.calibrate(b) == 3 and system_attrs(a) == before
    assert {k: v for k, v in before.items() if k.startswith("nars:")} == results[0]


def test_journal_storage(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.log")
    study = optuna.create_study(
        study_name="j",
        storage=JournalStorage(JournalFileBackend(path)),
        direction="maximize",
        pruner=EarlyStoppingPruner(8),
    )
    study.optimize(curve_objective(stable_from_3), n_trials=10)
    # Another process opening the same journal sees and applies the stored label step.
    other = optuna.load_study(
        study_name="j",
        storage=JournalStorage(JournalFileBackend(path)),
        pruner=EarlyStoppingPruner(8),
    )
    assert get_label_step(other) == 3
    other.optimize(curve_objective(stable_from_3), n_trials=2)
    assert [t.last_step for t in other.trials[8:]] == [3] * 4
    assert sorted(trial_labels(other)) == list(range(12))


@pytest.mark.parametrize("storage_kind", ["inmemory", "sqlite"])
def test_n_jobs_2_thread_safety(storage_kind: str, tmp_path: Path) -> None:
    storage = None if storage_kind == "inmemory" else f"sqlite:///{tmp_path / 'threads.db'}"
    pruner = EarlyStoppingPruner(8, recalibration_interval=5)
    study = optuna.create_study(direction="maximize", storage=storage, pruner=pruner)
    # A short sleep per step makes the two threads' trials overlap.
    n_trials = 30 if storage is None else 14  # SQLite is slow on this machine
    study.optimize(curve_objective(stable_from_3, step_seconds=0.002), n_trials=n_trials, n_jobs=2)
    trials = study.trials
    assert not [t for t in trials if t.state == TrialState.FAIL]
    assert get_label_step(study) == 3
    info = system_attrs(study)[CALIBRATION_INFO_KEY]
    assert info["trials"][:8] == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in trials[:8])
    for t in trials[8:]:
        if (t.number - 7) % 5 == 0:
            assert t.state == TrialState.COMPLETE and t.user_attrs[CALIBRATION_ATTR] is True
        elif t.state == TrialState.PRUNED:
            assert t.last_step >= 3
            assert t.user_attrs.get(CALIBRATION_ATTR) is not True
    labels = trial_labels(study)
    assert all(labels[n] == trials[n].intermediate_values[3] for n in labels)
    assert len(labels) == len(trials)


def test_pruner_is_picklable() -> None:
    pruner = pickle.loads(pickle.dumps(EarlyStoppingPruner(8, bucket_pruning=True)))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(curve_objective(stable_from_3), n_trials=9)
    assert study.trials[-1].last_step == 3


# ---- bucket pruning -----------------------------------------------------------------------------


def cost_curve(number: int) -> tuple[float, Curve]:
    """Cheap models score ~0.3-0.4, expensive ones ~0.8-0.9; stable from step 3."""
    cheap = number % 2 == 0
    f = (0.3 if cheap else 0.8) + 0.01 * (number % 10)
    return (1e6 if cheap else 1e9), make_curve(f, 1.0 - f, 3)


def bucket_study(direction: str = "maximize", **kwargs: object) -> optuna.Study:
    pruner = EarlyStoppingPruner(8, n_buckets=2, **kwargs)  # type: ignore[arg-type]
    study = optuna.create_study(direction=direction, pruner=pruner)
    sign = 1.0 if direction == "maximize" else -1.0
    for number in range(16):
        cost, curve = cost_curve(number)
        curve = {s: sign * v for s, v in curve.items()}
        study.add_trial(
            create_trial(
                value=curve[N_STEPS], intermediate_values=curve, user_attrs={"flops": cost}
            )
        )
    return study


def probe(study: optuna.Study, cost: float | None, value: float) -> bool:
    trial = study.ask()
    if cost is not None:
        trial.set_user_attr("flops", cost)
    trial.report(value, 1)
    pruned = trial.should_prune()
    study.tell(trial, state=TrialState.PRUNED)
    return pruned


def test_bucket_pruning_off_by_default() -> None:
    study = bucket_study()
    assert not probe(study, 1e6, 0.0)  # hopeless, but only the label step stops trials
    assert not probe(study, 1e9, 0.0)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_bucket_pruning_compares_within_cost_bucket(direction: str) -> None:
    sign = 1.0 if direction == "maximize" else -1.0
    study = bucket_study(direction, bucket_pruning=True)
    # Step-1 values of the finished trials: cheap 0.57-0.65, expensive 0.06-0.14.
    assert probe(study, 1e6, sign * 0.3)  # worst among cheap models
    assert not probe(study, 1e6, sign * 0.62)  # mid-pack among cheap models
    # Mid-pack among expensive models: kept although far below every cheap model. (The two
    # probes above made cheap models the majority: the buckets must still split by cost.)
    assert not probe(study, 1e9, sign * 0.11)
    assert probe(study, 1e9, sign * 0.05)
    assert not probe(study, None, sign * 0.0)  # no cost: never bucket-pruned
    assert not probe(study, 1e6, math.nan)  # NaN: left to the label step


def test_bucket_pruning_needs_enough_trials_and_respects_calibration() -> None:
    study = bucket_study(bucket_pruning=True, n_min_bucket_trials=9)
    assert not probe(study, 1e6, 0.0)  # only 8 finished trials in the bucket

    pruner = EarlyStoppingPruner(8, bucket_pruning=True, n_buckets=1, n_min_bucket_trials=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    seed_trials(study, [stable_from_3(i) for i in range(7)])
    assert not probe(study, 1.0, -1.0)  # still calibrating: never pruned


# ---- errors and validation ----------------------------------------------------------------------


def test_multi_objective_study_raises() -> None:
    pruner = EarlyStoppingPruner()
    study = optuna.create_study(directions=["maximize", "minimize"], pruner=pruner)
    trial = study.ask()
    with pytest.raises(ValueError, match="single-objective"):
        pruner.prune(study, study.trials[trial.number])
    with pytest.raises(ValueError, match="single-objective"):
        pruner.calibrate(study)
    with pytest.raises(ValueError, match="single-objective"):
        trial_labels(study)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_calibration_trials": 2}, r"'n_calibration_trials'.*>= 3.*Got 2"),
        ({"n_calibration_trials": 8.0}, r"'n_calibration_trials'.*int.*Got 8.0"),
        ({"n_calibration_trials": True}, r"'n_calibration_trials'"),
        ({"correlation": "pearson"}, r"'correlation'.*\['kendall', 'spearman'\].*'pearson'"),
        ({"threshold": 0.0}, r"'threshold'.*\(0.0, 1.0\].*Got 0.0"),
        ({"threshold": 1.5}, r"'threshold'.*Got 1.5"),
        ({"threshold": math.nan}, r"'threshold'.*NaN"),
        ({"threshold": "0.9"}, r"'threshold'.*float"),
        ({"min_step": -1}, r"'min_step'.*>= 0.*Got -1"),
        ({"recalibration_interval": 0}, r"'recalibration_interval'.*>= 1 or None.*Got 0"),
        ({"bucket_pruning": "yes"}, r"'bucket_pruning'.*bool"),
        ({"cost_attr": ""}, r"'cost_attr'.*non-empty"),
        ({"n_buckets": 0}, r"'n_buckets'.*>= 1"),
        ({"bucket_percentile": 100.0}, r"'bucket_percentile'.*\(0.0, 100.0\)"),
        ({"bucket_percentile": 0}, r"'bucket_percentile'"),
        ({"n_min_bucket_trials": 0}, r"'n_min_bucket_trials'.*>= 1"),
    ],
)
def test_argument_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EarlyStoppingPruner(**kwargs)


def test_valid_arguments() -> None:
    EarlyStoppingPruner(
        3,
        correlation="spearman",
        threshold=1.0,
        min_step=0,
        recalibration_interval=1,
        bucket_pruning=True,
        cost_attr="params",
        n_buckets=1,
        bucket_percentile=50,
        n_min_bucket_trials=1,
    )


# ---- property: the rule matches a direct computation --------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    data=st.lists(st.lists(st.integers(0, 4), min_size=5, max_size=5), min_size=8, max_size=8),
    threshold=st.sampled_from([0.3, 0.6, 0.9]),
    correlation=st.sampled_from(["kendall", "spearman"]),
)
def test_label_step_matches_reference(
    data: list[list[int]], threshold: float, correlation: str
) -> None:
    values = np.array(data, dtype=float)  # trials x steps 1..5, final value = last column
    study = optuna.create_study(direction="maximize")
    seed_trials(study, [{s + 1: float(v) for s, v in enumerate(row)} for row in values])
    pruner = EarlyStoppingPruner(8, correlation=correlation, threshold=threshold)

    corr_fn = scipy.stats.kendalltau if correlation == "kendall" else scipy.stats.spearmanr
    expected = 5
    for s in range(5):
        x, y = values[:, s], values[:, -1]
        if len(set(x)) > 1 and len(set(y)) > 1 and corr_fn(x, y).statistic >= threshold:
            expected = s + 1
            break
    assert pruner.calibrate(study) == expected
