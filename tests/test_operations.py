"""Operating a study: failing the trials of killed workers (``fail_stale_trials``, the RDB
heartbeat callback, ``optuna-nars fail-stale``), releasing their candidates, storage URLs and
their errors, exit codes of bad arguments, ``--total-trials`` and sampler failures in
``optuna-nars search``."""

from __future__ import annotations

import datetime
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial

import optuna_nars.training.trainer as training
from optuna_nars import NARSSampler, SearchSpace, fail_stale_trials, release_stale_trial
from optuna_nars.cli import main as cli_main
from optuna_nars.export import load_study_space
from optuna_nars.stale import released_trials

ROOT = Path(__file__).resolve().parents[1]
INTERRUPTED = "nars:interrupted"
# The quickest real search: one epoch on 200 digits, no dashboard.
QUICK = ["--epochs", "1", "--max-train-samples", "200", "--threads", "1", "--no-dashboard",
         "--calibration-trials", "3"]


def _journal(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """``optuna-nars ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as mp:
        mp.setattr(sys, "stdout", out)
        mp.setattr(sys, "stderr", err)
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse's own bad arguments
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def _sampler(space: SearchSpace) -> NARSSampler:
    # Every trial here is in the QMC stage: candidates come in the pool's fixed order.
    return NARSSampler(space, n_startup_trials=20, pool_size=256, n_pretrain=64, seed=0)


def _claim(study: optuna.Study, space: SearchSpace) -> optuna.Trial:
    """Start a trial as a worker does: ask, and take the sampler's candidate."""
    trial = study.ask()
    space.suggest(trial)
    return trial


# ---- fail_stale_trials on a real JournalStorage -----------------------------------------------


def test_a_stale_trial_fails_with_its_reason_and_its_candidate_runs_again(tmp_path: Path) -> None:
    space = SearchSpace.tiny()
    study = optuna.create_study(storage=_journal(tmp_path / "journal.log"),
                                sampler=_sampler(space), direction="maximize")
    done = _claim(study, space)
    study.tell(done, 0.5)
    dead = _claim(study, space)  # its worker is killed: the trial stays RUNNING
    young = _claim(study, space)  # a worker still training
    frozen = study.get_trials()
    start_dead = frozen[dead.number].datetime_start
    start_young = frozen[young.number].datetime_start
    assert start_dead < start_young
    # At the moment the young trial started, the dead one was older than half their gap.
    older_than = (start_young - start_dead) / 2
    assert fail_stale_trials(study, older_than, now=start_young) == [dead.number]

    trials = study.get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    reason = trials[dead.number].user_attrs[INTERRUPTED]
    assert reason.startswith("interrupted: RUNNING for") and "presumed dead" in reason
    assert trials[done.number].state == TrialState.COMPLETE
    assert INTERRUPTED not in trials[done.number].user_attrs
    assert trials[young.number].state == TrialState.RUNNING
    assert INTERRUPTED not in trials[young.number].user_attrs
    # Idempotent: nothing else is that old.
    assert fail_stale_trials(study, older_than, now=start_young) == []

    # The released candidate is proposed again, by a fresh worker (its own sampler) too.
    fresh = optuna.load_study(study_name=study.study_name,
                              storage=_journal(tmp_path / "journal.log"), sampler=_sampler(space))
    again = _claim(fresh, space)
    assert again.params == dead.params
    # An ordinary failure (the objective raised) keeps its candidate taken.
    study.tell(young, state=TrialState.FAIL)
    taken = [t.params for t in study.get_trials() if t.number != dead.number]
    nxt = _claim(fresh, space)
    assert nxt.params not in taken


def test_fail_stale_trials_checks_its_threshold(tmp_path: Path) -> None:
    study = optuna.create_study(storage=_journal(tmp_path / "journal.log"))
    with pytest.raises(TypeError, match="timedelta"):
        fail_stale_trials(study, 600)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        fail_stale_trials(study, datetime.timedelta(seconds=-1))


def test_two_operators_at_once_fail_each_trial_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    study = optuna.create_study(storage=_journal(path))
    for _ in range(6):
        study.ask()
    later = datetime.datetime.now() + datetime.timedelta(hours=1)
    results: list[list[int]] = []

    def operator() -> None:  # each with its own storage, as separate processes would be
        own = optuna.load_study(study_name=study.study_name, storage=_journal(path))
        results.append(fail_stale_trials(own, datetime.timedelta(minutes=10), now=later))

    threads = [threading.Thread(target=operator) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = [n for r in results for n in r]
    assert sorted(failed) == list(range(6))  # each trial failed by exactly one operator
    assert all(t.state == TrialState.FAIL for t in study.get_trials())


# ---- the RDB heartbeat ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_heartbeat_failed_trials_release_their_candidates(tmp_path: Path) -> None:
    space = SearchSpace.tiny()
    storage = RDBStorage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=1, grace_period=1,
                         heartbeat_stale_trial_callback=release_stale_trial)
    study = optuna.create_study(storage=storage, sampler=_sampler(space), direction="maximize")
    dead = _claim(study, space)
    storage.record_heartbeat(dead._trial_id)  # its last sign of life; then the worker dies
    deadline = time.monotonic() + 60
    while study.get_trials()[dead.number].state == TrialState.RUNNING:
        assert time.monotonic() < deadline, "the heartbeat never went stale"
        time.sleep(0.5)
        optuna.storages.fail_stale_trials(study)  # what optimize() runs before each trial
    assert released_trials(study, study.get_trials()) == {dead.number}
    assert _claim(study, space).params == dead.params


# ---- optuna-nars fail-stale -------------------------------------------------------------------


def _study_with_stale_trials(storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Trial 0 complete, trial 1 RUNNING for two hours, trial 2 for a minute, trial 3 just now."""
    study = optuna.create_study(study_name=f"ops-{uuid.uuid4().hex[:8]}", storage=storage)
    now = datetime.datetime.now()
    study.add_trial(create_trial(value=1.0))
    for age in (datetime.timedelta(hours=2), datetime.timedelta(minutes=1)):
        trial = create_trial(state=TrialState.RUNNING)
        trial.datetime_start = now - age
        study.add_trial(trial)
    study.ask()
    return study


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("kind", ["file", "redis"])
def test_cli_fail_stale(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "file":
        url = str(tmp_path / "journal.log")
        storage: optuna.storages.BaseStorage = _journal(Path(url))
    else:
        url = os.environ.get("OPTUNA_NARS_TEST_REDIS_URL", "")
        if not url:
            pytest.skip("OPTUNA_NARS_TEST_REDIS_URL is not set (.ci/run sets it)")
        from optuna.storages.journal import JournalRedisBackend

        storage = JournalStorage(JournalRedisBackend(url))
    study = _study_with_stale_trials(storage)
    base = ["fail-stale", "--storage", url, "--study-name", study.study_name]

    code, out, _ = _run([*base, "--older-than", "10m", "--dry-run"], monkeypatch)
    assert code == 0
    assert "Would fail 1 trial" in out and "dry run: nothing changed" in out
    assert re.search(r"^1\s+2h00m\s", out, re.M), out
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] + [TrialState.RUNNING] * 3

    code, out, _ = _run([*base, "--older-than", "10m"], monkeypatch)
    assert code == 0
    assert "Failed 1 trial" in out and "proposed again" in out
    assert re.search(r"^1\s+2h00m\s", out, re.M), out
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL,
                                         TrialState.RUNNING, TrialState.RUNNING]
    assert trials[1].user_attrs[INTERRUPTED].startswith("interrupted: RUNNING for 2:00:")
    assert all(INTERRUPTED not in t.user_attrs for t in trials if t.number != 1)

    code, out, _ = _run([*base, "--older-than", "30s"], monkeypatch)
    assert code == 0 and "Failed 1 trial" in out and re.search(r"^2\s+1m0\ds\s", out, re.M)
    code, out, _ = _run([*base, "--older-than", "1h30m"], monkeypatch)
    assert code == 0
    assert "No trial of study" in out and "RUNNING for more than 1h30m" in out


@pytest.mark.parametrize("value", ["10", "10x", "m10", "-5m", ""])
def test_cli_fail_stale_bad_duration_is_exit_2(value: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run(["fail-stale", "--storage", str(tmp_path / "j.log"),
                         f"--older-than={value}"], monkeypatch)
    assert code == 2
    assert "--older-than: must be a duration with a unit, such as 90s, 10m, 2h" in err


def test_cli_fail_stale_runtime_errors_are_exit_1(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.log"
    code, _, err = _run(["fail-stale", "--storage", str(missing), "--older-than", "1h"],
                        monkeypatch)
    assert code == 1 and "no such journal file" in err
    assert not missing.exists()  # a reading command creates nothing
    journal = tmp_path / "journal.log"
    optuna.create_study(study_name="there", storage=_journal(journal))
    code, _, err = _run(["fail-stale", "--storage", str(journal), "--study-name", "other",
                         "--older-than", "1h"], monkeypatch)
    assert code == 1 and "no study 'other'" in err and "'there'" in err


def test_cli_fail_stale_in_a_subprocess(tmp_path: Path) -> None:
    journal = tmp_path / "journal.log"
    study = _study_with_stale_trials(_journal(journal))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "optuna_nars.cli", "fail-stale", "--storage", str(journal),
         "--study-name", study.study_name, "--older-than", "30s"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Failed 2 trials" in proc.stdout
    assert [t.state for t in study.get_trials()].count(TrialState.FAIL) == 2


# ---- --storage: URL forms and errors ----------------------------------------------------------


def test_storage_mistakes_are_bad_arguments(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["search"], ["export"], ["retarget"], ["fail-stale", "--older-than", "1h"]):
        code, _, err = _run([*command, "--storage", "optuna-nars.db"], monkeypatch)
        assert code == 2, (command, err)
        assert "'sqlite:///optuna-nars.db'" in err
    assert not (tmp_path / "optuna-nars.db").exists()
    sqlite3.connect(tmp_path / "made.db").execute("create table t (x)").connection.close()
    code, _, err = _run(["export", "--storage", "made.db"], monkeypatch)
    assert code == 2 and "is an SQLite database" in err and "'sqlite:///made.db'" in err
    code, _, err = _run(["export", "--storage", "postgresq://user@host/db"], monkeypatch)
    assert code == 2 and "unknown database 'postgresq'" in err


def test_missing_driver_and_unreachable_server_say_what_to_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg2")
    try:
        import pg8000  # noqa: F401
        pytest.skip("pg8000 is installed: no missing driver to report")
    except ImportError:
        pass
    code, _, err = _run(["export", "--storage", "postgresql+pg8000://u@127.0.0.1/db"],
                        monkeypatch)
    assert code == 1
    assert "the pg8000 driver for postgresql is not installed: pip install" in err
    assert "or use postgresql+psycopg2:// (installed)" in err
    # A bare postgresql:// gets the installed driver; port 1 has no server.
    code, _, err = _run(["export", "--storage", "postgresql://nobody:secret@127.0.0.1:1/none"],
                        monkeypatch)
    assert code == 1
    assert "cannot open storage" in err and "Connection refused" in err
    assert "Is the server running" in err and "secret" not in err


def test_bare_postgresql_url_works(monkeypatch: pytest.MonkeyPatch) -> None:
    url = os.environ.get("OPTUNA_NARS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("OPTUNA_NARS_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    bare = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
    assert bare.startswith("postgresql://")
    storage = optuna.storages.get_storage(url)
    study = _study_with_stale_trials(storage)
    try:
        code, out, err = _run(["fail-stale", "--storage", bare, "--study-name", study.study_name,
                               "--older-than", "10m"], monkeypatch)
        assert code == 0, err
        assert "Failed 1 trial" in out
        assert study.get_trials()[1].state == TrialState.FAIL
    finally:
        optuna.delete_study(study_name=study.study_name, storage=storage)


# ---- bad arguments are exit code 2 ------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["search", "--space", "mobilenet"],
    ["retarget", "--space", "mobilenet"],
    ["export", "--space", "mobilenet"],
    ["space", "--space", "mobilenet"],
    ["search", "--dataset", "imagenet-22k"],
    ["search", "--device", "gpu0"],
    ["search", "--seed", "-1"],
    ["search", "--calibration-trials", "2"],
    ["search", "--max-train-samples", "1"],
    ["search", "--n-trials", "3", "--total-trials", "5"],
])
def test_bad_arguments_are_exit_2_and_create_nothing(
        argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(argv, monkeypatch)
    assert code == 2, err
    assert "error:" in err
    assert not list(tmp_path.iterdir())  # no database left behind


def test_bad_space_file_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "space.json"
    bad.write_text('{"stages": "not a list"}')
    code, _, err = _run(["space", "--space", str(bad)], monkeypatch)
    assert code == 2 and f"--space {bad}" in err


def test_missing_dataset_names_the_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run(["search", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"),
                         "--storage", f"sqlite:///{tmp_path / 's.db'}"], monkeypatch)
    assert code == 1
    assert "Pass --download to download it" in err and "point --data-dir at" in err
    assert "download=True" not in err and "data_dir" not in err


# ---- search: sampler failures, --total-trials, Ctrl-C -----------------------------------------


@pytest.mark.parametrize("error", [RuntimeError, ValueError])
def test_a_sampler_failure_is_exit_1(error: type[Exception], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise error("simulated sampler bug")

    monkeypatch.setattr(NARSSampler, "_propose", broken)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    code, _, err = _run(["search", *QUICK, "--storage", storage, "--n-trials", "3"], monkeypatch)
    assert code == 1
    assert "the sampler failed (trial 0: " in err and "simulated sampler bug" in err
    assert "bug in optuna-nars, not a training failure" in err
    trials = optuna.load_study(study_name="nars", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL]  # stopped at once


def test_a_training_failure_is_an_outcome(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(training, "build_model", broken)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    code, out, err = _run(["search", *QUICK, "--storage", storage, "--n-trials", "2"],
                          monkeypatch)
    assert code == 0, err
    assert "2 trials (0 complete, 0 stopped early, 2 failed)" in out
    trials = optuna.load_study(study_name="nars", storage=storage).trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 2  # candidates stay taken


def _wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the search ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _ctrl_c_enabled() -> None:
    """In the child: SIGINT's default action, as in a terminal. A test run started in the
    background by a shell without job control inherits SIGINT ignored, and Python then keeps
    ignoring it, so the Ctrl-C below would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_then_total_trials_resumes_with_the_same_candidate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = tmp_path / "journal.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "optuna_nars.cli", "search", "--storage", str(journal),
         "--study-name", "s", "--epochs", "200", "--max-train-samples", "800", "--threads", "1",
         "--no-dashboard", "--n-trials", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=_ctrl_c_enabled,
    )
    try:
        def training() -> bool:  # trial 0 took its candidate and reports epochs
            if not journal.exists():
                return False
            try:
                trials = optuna.load_study(study_name="s", storage=_journal(journal)).trials
            except KeyError:  # the journal exists, the study is not written to it yet
                return False
            return bool(trials) and bool(trials[0].intermediate_values)

        _wait_for(training, "trial 0 trains", proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "its candidate will run again" in err
    assert "--study-name s --total-trials 2`" in err
    study = optuna.load_study(study_name="s", storage=_journal(journal))
    interrupted = study.trials[0]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs[INTERRUPTED] == "interrupted: stopped by Ctrl-C"

    base = ["search", "--storage", str(journal), "--study-name", "s", *QUICK]
    code, out, err = _run([*base, "--total-trials", "2"], monkeypatch)
    assert code == 0, err
    assert "2 trials to run, to 2 finished" in err
    trials = study.get_trials()
    assert len(trials) == 3 and trials[1].params == interrupted.params
    code, out, err = _run([*base, "--total-trials", "2"], monkeypatch)
    assert code == 0, err
    assert "nothing to run" in err and len(study.get_trials()) == 3
    code, out, err = _run([*base, "--total-trials", "3"], monkeypatch)
    assert code == 0 and "1 trial to run, to 3 finished" in err
    assert len(study.get_trials()) == 4
    assert load_study_space(study) is not None


def test_fail_stale_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["fail-stale", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--older-than DURATION" in out and "--dry-run" in out and "--storage" in out
