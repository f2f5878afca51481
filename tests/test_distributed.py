"""Several worker processes share one study through a real storage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import optuna
import pytest

WORKER = textwrap.dedent(
    """
    import sys, time, optuna
    sys.path.insert(0, {tests!r})
    from test_sampler import fast_sampler, synthetic_accuracy
    from optuna_nars import SearchSpace
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.tiny()

    def objective(trial):
        space.suggest(trial)
        time.sleep(0.05)  # overlap with the other workers
        return synthetic_accuracy(space, trial.params)

    study = optuna.load_study(study_name={name!r}, storage=make_storage(),
                              sampler=fast_sampler(search_space=space))
    study.optimize(objective, n_trials={n_trials})
    """
)


def journal_storage(path: Path) -> tuple[str, optuna.storages.BaseStorage]:
    code = (
        "from optuna.storages import JournalStorage\n"
        "from optuna.storages.journal import JournalFileBackend\n"
        f"def make_storage(): return JournalStorage(JournalFileBackend({str(path)!r}))\n"
    )
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return code, JournalStorage(JournalFileBackend(str(path)))


def rdb_storage(url: str) -> tuple[str, optuna.storages.BaseStorage]:
    code = f"def make_storage(): return {url!r}\n"
    return code, optuna.storages.RDBStorage(url)


def _run_workers(code: str, name: str, n_workers: int, n_trials: int, tmp_path: Path) -> None:
    script = code + WORKER.format(tests=str(Path(__file__).parent), name=name, n_trials=n_trials)
    path = tmp_path / f"worker-{uuid.uuid4().hex}.py"
    path.write_text(script)
    procs = [
        subprocess.Popen([sys.executable, str(path)], stderr=subprocess.PIPE, text=True)
        for _ in range(n_workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


def _check_study(storage: optuna.storages.BaseStorage, name: str, expected: int) -> None:
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.trials
    assert len(trials) == expected
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    keys = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(keys)) == len(keys), "two workers evaluated the same candidate"


def _three_workers_then_resume(code: str, storage, tmp_path: Path) -> None:
    name = f"nars-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=storage, direction="maximize")
    _run_workers(code, name, n_workers=3, n_trials=6, tmp_path=tmp_path)
    _check_study(storage, name, 18)
    # A fresh process with a new sampler continues mid-stage (stage 3 starts at trial 12).
    _run_workers(code, name, n_workers=1, n_trials=4, tmp_path=tmp_path)
    _check_study(storage, name, 22)
    stages = [t.user_attrs["nars:stage"] for t in optuna.load_study(
        study_name=name, storage=storage).trials]
    assert stages[-1] == "evolution"


def test_journal_file_three_workers(tmp_path: Path) -> None:
    code, storage = journal_storage(tmp_path / "journal.log")
    _three_workers_then_resume(code, storage, tmp_path)


@pytest.mark.parametrize("env", ["OPTUNA_NARS_TEST_POSTGRES_URL", "OPTUNA_NARS_TEST_MYSQL_URL"])
def test_rdb_three_workers(env: str, tmp_path: Path) -> None:
    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} is not set (.ci/run sets it to this machine's server)")
    code, storage = rdb_storage(url)
    _three_workers_then_resume(code, storage, tmp_path)


def test_redis_journal_three_workers(tmp_path: Path) -> None:
    url = os.environ.get("OPTUNA_NARS_TEST_REDIS_URL")
    if not url:
        pytest.skip("OPTUNA_NARS_TEST_REDIS_URL is not set (.ci/run sets it)")
    pytest.importorskip("redis")
    code = (
        "from optuna.storages import JournalStorage\n"
        "from optuna.storages.journal import JournalRedisBackend\n"
        f"def make_storage(): return JournalStorage(JournalRedisBackend({url!r}))\n"
    )
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalRedisBackend

    _three_workers_then_resume(code, JournalStorage(JournalRedisBackend(url)), tmp_path)


def test_threads_share_one_sampler() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_sampler import fast_sampler, synthetic_objective

    from optuna_nars import SearchSpace

    space = SearchSpace.tiny()
    study = optuna.create_study(direction="maximize", sampler=fast_sampler(search_space=space))
    study.optimize(synthetic_objective(space), n_trials=20, n_jobs=2)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(keys) == 20 and len(set(keys)) == 20
