"""optuna-dashboard integration: the note, the plots and the per-trial attributes, in Python
and in a real browser (headless Debian Chromium driven by Playwright)."""

from __future__ import annotations

import contextlib
import math
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import optuna_dashboard
import pytest

from optuna_nars import SearchSpace
from optuna_nars.cli import main as cli_main
from optuna_nars.cost import count_flops
from optuna_nars.dashboard import (
    ERROR_ATTR,
    LABEL_STEP_ATTR,
    NOTE_BEGIN,
    NOTE_END,
    PLOT_IDS,
    DashboardCallback,
    DashboardObjective,
    build_figures,
)
from optuna_nars.dashboard.figures import pareto_front as _pareto
from optuna_nars.export import load_study_space
from optuna_nars.predictor import NARSPredictor
from optuna_nars.pruner import EarlyStoppingPruner, get_label_step
from optuna_nars.samplers import NARSSampler

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _fast_sampler(space: SearchSpace, **kwargs) -> NARSSampler:
    return NARSSampler(space, n_startup_trials=5, batch_size=3, n_rounds=1, pool_size=512,
                       n_pretrain=128, seed=0,
                       predictor=NARSPredictor(n_members=2, frozen_epochs=5, finetune_epochs=5,
                                               pretrain_epochs=5), **kwargs)


def _curve_objective(space: SearchSpace, epochs: int = 4):
    """Reports a learning curve whose level grows with log FLOPs (no training)."""

    def objective(trial: optuna.Trial) -> float:
        c = space.suggest(trial)
        flops = count_flops(c.architecture, space.in_channels, space.num_classes)
        trial.set_user_attr("flops", flops)
        level = 0.05 * math.log(flops) - 0.05 * (math.log10(c.recipe.lr) + 1.5) ** 2
        value = 0.0
        for epoch in range(1, epochs + 1):
            value = level * (1 - 0.5 ** epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


@pytest.fixture(scope="module")
def synthetic_study() -> tuple[optuna.Study, SearchSpace, DashboardCallback]:
    space = SearchSpace.tiny()
    study = optuna.create_study(direction="maximize",
                                sampler=_fast_sampler(space, constraints={"flops": 1.5e6}),
                                pruner=EarlyStoppingPruner(3, threshold=0.5))
    callback = DashboardCallback(space, every=2, plot_every=4)
    study.optimize(callback.wrap(_curve_objective(space)), n_trials=10, callbacks=[callback])
    callback.update(study)
    return study, space, callback


def test_callback_keeps_note_plots_and_attrs(synthetic_study) -> None:
    study, space, _ = synthetic_study
    assert load_study_space(study) == space  # stored for retarget / export
    assert study.metric_names == ["accuracy"]
    label_step = get_label_step(study)
    assert label_step is not None
    steps = [t.user_attrs[LABEL_STEP_ATTR] for t in study.trials]
    assert steps[0] == "pending" and steps[-1] == label_step
    assert all(s in ("pending", label_step) for s in steps)

    note = optuna_dashboard.get_note(study)
    assert note.startswith(NOTE_BEGIN) and NOTE_END in note
    assert "10 finished trials" in note
    assert "| 1. QMC warm start | 5 | 5 |" in note
    assert "| 2. predictor-guided rounds | 3 |" in note
    assert f"Label step: **epoch {label_step}**" in note
    assert "flops ≤ 1.5 MFLOPs" in note  # the sampler's budget, found by itself
    assert "On the " in note and "trials it proposed" in note  # predicted vs measured
    assert "stopped early, saving" in note

    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert all(f"dashboard:plot_data:{pid}:0" in attrs for pid in PLOT_IDS.values())

    # The study's summary attributes and every trial's note.
    summary = study.user_attrs
    assert summary["nars:budget"] == "flops ≤ 1.5 MFLOPs"
    assert summary["nars:label_step"] == label_step
    assert summary["nars:best"].startswith("trial ") and "MFLOPs" in summary["nars:best"]
    for t in study.trials:
        text = optuna_dashboard.get_note(optuna.Trial(study, t._trial_id))
        assert "MFLOPs" in text
        if t.user_attrs["nars:stage"] == "qmc":
            assert text.startswith("**1. QMC warm start**")
        if "nars:predicted" in t.user_attrs:
            assert f"predicted {t.user_attrs['nars:predicted']:.4f} ± " in text
            assert "95%" not in text  # too few measured proposals for a 95% interval
        if t.state == optuna.trial.TrialState.PRUNED:
            assert f"label **{t.intermediate_values[label_step]:.4f}**" in text
        # The calibration trials finished before the label step was fixed; their notes are
        # brought up to date once it is.
        assert "label step not fixed yet" not in text
        if t.user_attrs[LABEL_STEP_ATTR] == "pending":
            assert f"label **{t.intermediate_values[label_step]:.4f}**" in text


def test_note_keeps_user_text(synthetic_study) -> None:
    study, space, callback = synthetic_study
    note = optuna_dashboard.get_note(study)
    optuna_dashboard.save_note(study, "Why this budget: the phone.\n\n" + note +
                               "\n\nTry SGD next.")
    callback.update(study, plots=False)
    updated = optuna_dashboard.get_note(study)
    assert updated.startswith("Why this budget: the phone.")
    assert updated.endswith("Try SGD next.")
    assert updated.count(NOTE_BEGIN) == 1 and updated.count(NOTE_END) == 1
    # A note written before the callback ever ran is kept below the block.
    other = optuna.create_study(direction="maximize")
    optuna_dashboard.save_note(other, "my own notes")
    DashboardCallback(space).update(other)
    text = optuna_dashboard.get_note(other)
    assert text.startswith(NOTE_BEGIN) and text.endswith("my own notes")
    assert "No labelled trials yet." in text


def test_pending_trial_note_edited_by_a_user_is_kept(synthetic_study) -> None:
    study, space, _ = synthetic_study
    calibration = next(t for t in study.trials if t.user_attrs[LABEL_STEP_ATTR] == "pending")
    trial = optuna.Trial(study, calibration._trial_id)
    optuna_dashboard.save_note(trial, "**1. QMC warm start** · accuracy 0.1 at epoch 4 (label "
                                      "step not fixed yet)\n\nmy remark")
    DashboardCallback(space).update(study, plots=False)  # a fresh callback looks at every note
    assert optuna_dashboard.get_note(trial).endswith("my remark")


@pytest.mark.parametrize(("quality", "text"), [
    ({"n_labels": 12, "kendall_tau": 0.0}, "0.000"),
    ({"n_labels": 30, "kendall_tau": 0.25, "kendall_tau_method": "prequential"}, "0.250"),
    ({"n_labels": 20, "kendall_tau": 0.3, "kendall_tau_method": "cross-validated",
      "model": "gp"}, "0.300"),
    ({"n_labels": 20, "kendall_tau": 0.3, "kendall_tau_method": "cross-validated",
      "model": ["gp"]}, "0.300"),  # a malformed model is not shown, and breaks nothing
    ({"n_labels": 40, "kendall_tau": 0.41234}, "0.412"),
    ({"n_labels": 12, "kendall_tau": math.nan}, "undefined"),  # constant predictions
    (None, "not yet"),
])
def test_predictor_kendall_tau_is_one_text_everywhere(quality, text: str) -> None:
    study = optuna.create_study(direction="maximize")
    if quality is not None:
        study._storage.set_study_system_attr(study._study_id, "nars:predictor", quality)
    DashboardCallback(plot_every=1).update(study)
    assert study.user_attrs["nars:predictor_kendall_tau"] == text
    method = (quality or {}).get("kendall_tau_method", "cross-validated")
    title = build_figures(study)["predicted"].layout.title.text
    who = {"gp": "the Gaussian process"}.get(str((quality or {}).get("model")), "predictor")
    assert title.endswith(f"{who}'s {method} Kendall tau {text})")
    note = optuna_dashboard.get_note(study)
    if quality is None:
        assert "Not cross-validated yet" in note
    else:
        assert f"{method} Kendall tau **{text}**" in note
        assert ("by a Gaussian process" in note) == (quality.get("model") == "gp")


@pytest.mark.parametrize(("interval", "shown"), [
    ([0.5, 0.9], "(95%: 0.5000 to 0.9000)"),
    ([0.9, 0.5], None),  # malformed values in storage are not shown, and break nothing
    ([0.5], None),
    (["0.5", 0.9], None),
    ([0.5, math.inf], None),
    ("0.5 to 0.9", None),
])
def test_trial_note_shows_the_95_percent_interval(interval, shown: str | None) -> None:
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("nars:predicted", 0.7)
        trial.set_user_attr("nars:predicted_std", 0.05)
        trial.set_user_attr("nars:interval_95", interval)
        return 0.75

    study.optimize(DashboardObjective(objective), n_trials=1)
    text = optuna_dashboard.get_note(optuna.Trial(study, study.trials[0]._trial_id))
    assert "predicted 0.7000 ± 0.0500" in text
    assert ("95%" in text) == (shown is not None)
    if shown is not None:
        assert shown in text


def test_figures(synthetic_study) -> None:
    study, space, _ = synthetic_study
    figures = build_figures(study, space=space)
    assert set(figures) == set(PLOT_IDS)
    flops = figures["flops"]
    names = [trace.name for trace in flops.data]
    assert "Pareto front" in names and "qmc" in names
    front = next(tr for tr in flops.data if tr.name == "Pareto front")
    assert list(front.x) == sorted(front.x) and list(front.y) == sorted(front.y)
    shapes = flops.layout.shapes
    assert any(s.type == "line" and s.x0 == pytest.approx(1.5) for s in shapes)  # the budget
    assert any(s.type == "rect" and s.x0 == pytest.approx(1.5) for s in shapes)  # infeasible
    assert "Pareto front" in [t.name for t in figures["params"].data]
    assert not any(s.type == "line" for s in figures["params"].layout.shapes)  # no params budget
    predicted = figures["predicted"]
    assert "predicted = measured" in [t.name for t in predicted.data]
    assert predicted.layout.title.text.endswith(
        f"Kendall tau {study.user_attrs['nars:predictor_kendall_tau']})")
    assert _pareto([(1, 0.5, 0), (2, 0.4, 1), (2, 0.7, 2), (3, 0.7, 3)]) == [(1, 0.5, 0),
                                                                             (2, 0.7, 2)]


def test_label_step_objective_records_failures_and_pruning() -> None:
    study = optuna.create_study(direction="maximize")

    def fails(trial: optuna.Trial) -> float:
        raise RuntimeError("out of memory")

    def pruned(trial: optuna.Trial) -> float:
        raise optuna.TrialPruned()

    study.optimize(DashboardObjective(fails), n_trials=1, catch=(RuntimeError,))
    study.optimize(DashboardObjective(pruned), n_trials=1)
    failed, stopped = study.trials
    assert failed.user_attrs[ERROR_ATTR] == "RuntimeError: out of memory"
    note = optuna_dashboard.get_note(optuna.Trial(study, failed._trial_id))
    assert "failed: RuntimeError: out of memory" in note
    assert failed.user_attrs[LABEL_STEP_ATTR] == "pending"
    assert stopped.state == optuna.trial.TrialState.PRUNED
    assert stopped.user_attrs[LABEL_STEP_ATTR] == "pending" and ERROR_ATTR not in stopped.user_attrs


def test_callback_validates_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    for kwargs in ({"every": 0}, {"plot_every": -1}, {"top": 0}, {"every": 1.5}):
        with pytest.raises(ValueError):
            DashboardCallback(**kwargs)
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)

    def broken(*args, **kwargs):
        raise OSError("database is locked")

    monkeypatch.setattr(optuna_dashboard, "save_note", broken)
    callback = DashboardCallback(every=1, plot_every=0)
    callback(study, study.trials[-1])  # logs a warning, does not raise
    # Throttling: with every=3 only the third call writes.
    monkeypatch.undo()
    calls = []
    callback = DashboardCallback(every=3, plot_every=0)
    monkeypatch.setattr(callback, "update", lambda s, **kw: calls.append(kw))
    for t in study.trials + study.trials + study.trials[:1]:
        callback(study, t)
    assert calls == [{"note": True, "plots": False}]


# ---- a real browser -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _dashboard_server(storage: str, log: Path) -> Iterator[str]:
    """optuna-dashboard on a free loopback port, stopped afterwards."""
    port = _free_port()
    code = "import sys; from optuna_dashboard._cli import main; sys.exit(main())"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, storage, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/meta", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"optuna-dashboard did not start:\n{log.read_text()}") \
                        from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dashboard_in_browser(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): "
                    "apt-get install -y chromium")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install playwright")

    storage = f"sqlite:///{tmp_path / 'dash.db'}"
    assert cli_main(["search", "--n-trials", "3", "--epochs", "1", "--max-train-samples", "600",
                     "--storage", storage, "--study-name", "dash", "--threads", "1",
                     "--calibration-trials", "3", "--no-progress"]) == 0
    study = optuna.load_study(study_name="dash", storage=storage)
    base = f"/dashboard/studies/{study._study_id}"

    with _dashboard_server(storage, tmp_path / "dashboard.log") as url, \
            sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)

            # The note, rendered as Markdown: headings, the stage table, the best pairs; the
            # markers that delimit the generated block stay invisible.
            page.goto(f"{url}{base}/note")
            page.get_by_role("heading", name="optuna-nars: dash").wait_for()
            note = page.inner_text("body")
            for text in ("Search stages", "1. QMC warm start", "Accuracy predictor",
                         "Early stopping", "Best architecture-recipe pairs",
                         "optuna-nars retarget"):
                assert text in note, text
            assert "optuna-nars:begin" not in note
            page.screenshot(path=str(tmp_path / "note.png"), full_page=True)

            # Every trial, with its user attributes.
            page.goto(f"{url}{base}/trials")
            page.get_by_text("Trial 2", exact=True).first.wait_for()
            page.get_by_text("User Attributes").first.wait_for()
            trials = page.inner_text("body")
            assert all(f"Trial {n}" in trials for n in range(3))
            for attr in ("arch", "flops", "params", "recipe", "nars:stage", LABEL_STEP_ATTR,
                         "nars:calibration"):
                assert attr in trials, attr
            # The trial note sums the trial up.
            page.get_by_text("1. QMC warm start").first.wait_for()
            assert "full-length (calibration) trial" in trials
            page.screenshot(path=str(tmp_path / "trials.png"), full_page=True)

            # The study page: Optuna's charts and ours.
            page.goto(f"{url}{base}")
            page.get_by_text("Predicted vs measured").first.wait_for()
            page.get_by_text("vs MFLOPs").first.wait_for()
            page.get_by_text("Pareto front").first.wait_for()
            page.get_by_text("nars:best").first.wait_for()  # the study user attributes
            assert "nars:budget" in page.inner_text("body")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    for name in ("note.png", "trials.png", "dashboard.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    print(f"screenshots in {tmp_path}")  # findable from the test log with -s
