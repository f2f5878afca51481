"""Workers of one study share each fit: fitted once per label set, read by the others."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pytest

from optuna_nars import SearchSpace
from optuna_nars.samplers import NARSSampler
from optuna_nars.samplers.nars._shared_fit import fit_digest

sys.path.insert(0, str(Path(__file__).parent))
from test_distributed import WORKER, journal_storage  # noqa: E402
from test_sampler import fast_sampler, synthetic_objective  # noqa: E402

SETTINGS = dict(n_startup_trials=4, batch_size=3, n_rounds=2)  # stage 3 from trial 10
N_TRIALS = 16


def _refits(*samplers: NARSSampler) -> Counter[int]:
    """How often the samplers fitted the predictor, by number of labels."""
    return Counter(t.n_labels for s in samplers for t in s.timings if t.step == "refit")


def _record(study: optuna.Study) -> list[tuple[dict, float | None, str]]:
    return [(t.params, t.user_attrs.get("nars:predicted"), t.user_attrs["nars:stage"])
            for t in study.trials]


def _intervals(study: optuna.Study) -> list[tuple[float | None, float | None]]:
    return [(t.user_attrs.get("nars:predicted_std"), t.user_attrs.get("nars:interval_scale"))
            for t in study.trials]


def test_two_workers_fit_once_per_label_set_and_propose_what_one_would() -> None:
    space = SearchSpace.tiny()
    objective = synthetic_objective(space)
    alone = fast_sampler(search_space=space, **SETTINGS)
    single = optuna.create_study(direction="maximize", sampler=alone)
    single.optimize(objective, n_trials=N_TRIALS)

    storage = optuna.storages.InMemoryStorage()
    workers = [fast_sampler(search_space=space, **SETTINGS) for _ in range(2)]
    name = optuna.create_study(storage=storage, direction="maximize").study_name
    studies = [optuna.load_study(study_name=name, storage=storage, sampler=w) for w in workers]
    for i in range(N_TRIALS):  # the workers take turns
        studies[i % 2].optimize(objective, n_trials=1)

    shared = _record(studies[0])
    assert [p for p, _, _ in shared] == [p for p, _, _ in _record(single)]
    assert [v for _, v, _ in shared] == pytest.approx([v for _, v, _ in _record(single)])
    # The interval scale is derived from the storage: the workers report what one would.
    scales = [k for _, k in _intervals(studies[0])]
    assert any(k is not None and k != 1.0 for k in scales)
    for (std, scale), (std_alone, scale_alone) in zip(_intervals(studies[0]), _intervals(single),
                                                      strict=True):
        assert (std is None) == (std_alone is None) and (scale is None) == (scale_alone is None)
        if std is not None:
            assert (std, scale) == pytest.approx((std_alone, scale_alone))
    assert {"predictor", "evolution"} <= {s for _, _, s in shared}
    refits = _refits(*workers)
    assert set(refits) == set(_refits(alone))  # the same label sets ...
    assert set(refits.values()) == {1}  # ... each fitted once between the two workers
    assert all(_refits(w) for w in workers)  # both took their turn at fitting
    # One slot, overwritten: a bounded share of the study's attributes.
    attrs = storage.get_study_system_attrs(studies[0]._study_id)
    shared_attrs = [v for k, v in attrs.items() if k.startswith("nars:fit")]
    assert len(shared_attrs) <= 40
    assert sum(len(str(v)) for v in shared_attrs) < 80_000


def test_a_torn_or_foreign_shared_fit_is_ignored() -> None:
    space = SearchSpace.tiny()
    objective = synthetic_objective(space)
    clean = optuna.create_study(direction="maximize",
                                sampler=fast_sampler(search_space=space, **SETTINGS))
    clean.optimize(objective, n_trials=8)

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction="maximize",
                                sampler=fast_sampler(search_space=space, **SETTINGS))
    study.optimize(objective, n_trials=5)
    # What a worker left in the slot: half a write.
    storage.set_study_system_attr(study._study_id, "nars:fit:0", '0123 {"format": 1, "dig')
    storage.set_study_system_attr(study._study_id, "nars:fit", 1)
    fresh = fast_sampler(search_space=space, **SETTINGS)  # knows nothing but the storage
    optuna.load_study(study_name=study.study_name, storage=storage,
                      sampler=fresh).optimize(objective, n_trials=1)
    assert _refits(fresh)  # it fitted for itself
    # Then another sampler's fit (other settings) in the slot.
    other = optuna.create_study(direction="maximize",
                                sampler=fast_sampler(search_space=space, seed=1, **SETTINGS))
    other.optimize(objective, n_trials=6)
    for key, value in other._storage.get_study_system_attrs(other._study_id).items():
        if key.startswith("nars:fit"):
            storage.set_study_system_attr(study._study_id, key, value)
    fresh = fast_sampler(search_space=space, **SETTINGS)
    optuna.load_study(study_name=study.study_name, storage=storage,
                      sampler=fresh).optimize(objective, n_trials=2)
    assert _refits(fresh)
    assert [t.params for t in study.trials] == [t.params for t in clean.trials]


# Appended to test_distributed's worker script: what this process fitted.
REPORT = (
    "import json\n"
    "print(json.dumps([t.n_labels for t in study.sampler.timings if t.step == 'refit']))\n"
)


def worker_script(tmp_path: Path, n_trials: int, report: str
                  ) -> tuple[Path, str, optuna.storages.BaseStorage]:
    """``(script, study name, storage)``: a new study on a journal file, and the script of a
    worker process running ``n_trials`` of it then printing what ``report`` prints."""
    code, storage = journal_storage(tmp_path / "journal.log")
    name = f"shared-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=storage, direction="maximize")
    script = tmp_path / "worker.py"
    script.write_text(code + WORKER.format(tests=str(Path(__file__).parent), name=name,
                                           n_trials=n_trials) + report)
    return script, name, storage


def test_worker_processes_share_their_fits(tmp_path: Path) -> None:
    script, name, storage = worker_script(tmp_path, 8, REPORT)
    n_workers = 3
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n_workers)]
    refits: Counter[int] = Counter()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        refits.update(json.loads(out.strip().splitlines()[-1]))

    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert len(trials) == n_workers * 8
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    keys = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(keys)) == len(keys), "two workers evaluated the same candidate"
    assert len(refits) >= 3  # several label sets were fitted ...
    assert sum(refits.values()) < n_workers * len(refits)  # ... not each by every worker


# A hand-made study (minimised): trials 2-11 proposed with predictions 0..9 and measured with one
# pair swapped; trials 0 and 1 without a prediction (warm start).
_VALUES = [50.0, -50.0, 0, 1, 2, 3, 4, 5, 6, 7, 9, 8]
_PREDICTED = [None, None, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize(("n_predicted", "method"), [(10, "prequential"),
                                                      (9, "cross-validated")])
def test_the_fit_reports_the_prequential_tau_of_its_trials(n_predicted: int, method: str) -> None:
    space = SearchSpace.tiny()
    keep = set(range(12 - n_predicted, 12))

    def objective(trial: optuna.Trial) -> float:
        space.suggest(trial)
        if trial.number < 12:
            if trial.number in keep:
                trial.set_user_attr("nars:predicted", _PREDICTED[trial.number])
            return _VALUES[trial.number]
        return 0.0

    # The first refit comes at 12 labels and takes all of them (refit_size(12, 12) == 12).
    sampler = fast_sampler(search_space=space, n_startup_trials=12, batch_size=12)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(objective, n_trials=13)
    assert study.trials[12].user_attrs["nars:stage"] == "predictor"
    assert _refits(sampler) == {12: 1}
    quality = study._storage.get_study_system_attrs(study._study_id)["nars:predictor"]
    assert quality["n_labels"] == 12
    assert quality["kendall_tau_method"] == method
    if method == "prequential":
        # Predictions and values on the objective's scale, one discordant pair of 10.
        assert quality["kendall_tau"] == pytest.approx(43 / 45)


def test_a_fit_is_named_by_its_rows_labels_and_recorded_predictions() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((6, 3)), rng.random(6)
    predicted = np.array([np.nan, np.nan, 0.1, 0.2, 0.3, 0.4])
    name = fit_digest("base", x, y, predicted)
    assert name == fit_digest("base", x.copy(), y.copy(), predicted.copy())
    others = [
        fit_digest("other base", x, y, predicted),
        fit_digest("base", x, y[::-1], predicted),
        fit_digest("base", x, y, predicted[::-1]),  # other predictions: another prequential tau
        fit_digest("base", x, y),
    ]
    assert name not in others and len(set(others)) == len(others)


def test_refit_schedule_every_round_then_ever_sparser() -> None:
    from optuna_nars.samplers.nars._schedule import StagePlan, refit_size

    sizes = sorted({refit_size(n, 10) for n in range(10, 5001)})
    steps = np.diff(sizes)
    # A FBNetV3 round of 10 labels up to 100, then every 10% to 200 labels.
    assert sizes[:11] == list(range(10, 111, 10))
    below = [s for s in sizes if s < 200]
    assert all(b - a == max(10, a // 10) for a, b in zip(below, below[1:], strict=False))
    # Past 200 the interval grows faster than the labels, up to a quarter of them.
    fractions = steps / np.asarray(sizes[:-1])
    past = fractions[np.asarray(sizes[:-1]) >= 200]
    assert np.all(np.diff(past) >= -0.01) and past[0] < 0.15
    assert past[-1] == pytest.approx(0.25, abs=0.01)
    # Labels short of the next refit still use the last one.
    assert refit_size(sizes[-1] + steps[-1] - 1, 10) == sizes[-1]
    assert refit_size(7, 10) == 7
    # The sampler reads the schedule through its StagePlan; no fit before a round's labels.
    plan = StagePlan(n_startup_trials=6, n_rounds=4, batch_size=10)
    assert [plan.refit_size(n) for n in (9, 10, 19, 20, 250)] == [
        refit_size(n, 10) for n in (9, 10, 19, 20, 250)]
    assert plan.min_fit_labels == 6 and StagePlan(10, 4, 10).min_fit_labels == 10
