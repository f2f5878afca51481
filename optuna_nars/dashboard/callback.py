"""What runs during the search: the callback that rewrites the note and the plots, and the
objective wrapper that gives every trial its label step and a short note."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial

from optuna_nars._keys import (
    CALIBRATION_ATTR,
    ERROR_ATTR,
    INTERVAL_95_KEY,
    PREDICTED_KEY,
    PREDICTED_STD_KEY,
    STAGE_KEY,
    TRIAL_LABEL_STEP_ATTR,
)
from optuna_nars._validation import check_int, finite_interval
from optuna_nars.dashboard.figures import PLOT_IDS, build_figures
from optuna_nars.dashboard.note import merge_note, render_note, study_summary
from optuna_nars.dashboard.study_data import STAGE_TEXT, finite_number
from optuna_nars.labels import get_label_step

if TYPE_CHECKING:
    from optuna_nars.space import SearchSpace

__all__ = ["DashboardCallback", "DashboardObjective", "name_objective"]

_logger = optuna.logging.get_logger("optuna." + __name__)


class DashboardObjective:
    """Wrap an objective so every trial gets ``nars:label_step`` and a short trial note.

    Just before the trial ends (whatever way it ends) it sets the user attribute
    ``nars:label_step`` -- the study's label step at that moment, or ``"pending"`` while the
    early-stopping pruner calibrates -- and, with ``note=True``, the trial's dashboard note: its
    stage, label, predicted accuracy, cost, arch string and recipe at a glance. A trial that
    fails with an exception also gets ``nars:error``, the exception's text. Optuna allows
    neither once the trial has finished, hence a wrapper rather than a callback.
    """

    def __init__(self, objective: Callable[[optuna.Trial], Any], *, note: bool = True) -> None:
        self.objective = objective
        self.note = note

    def __call__(self, trial: optuna.Trial) -> Any:
        error: str | None = None
        try:
            return self.objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            # Optuna keeps no failure reason on the trial; the dashboard should show one.
            error = f"{type(err).__name__}: {err}"[:1000]
            with contextlib.suppress(Exception):
                trial.set_user_attr(ERROR_ATTR, error)
            raise
        finally:
            try:
                step = get_label_step(trial.study)
                trial.set_user_attr(TRIAL_LABEL_STEP_ATTR, "pending" if step is None else step)
                if self.note:
                    import optuna_dashboard

                    frozen = trial.study._storage.get_trial(trial._trial_id)
                    optuna_dashboard.save_note(trial, _trial_note(frozen, step, error))
            except Exception as err:  # never let bookkeeping hide the objective's outcome
                _logger.warning(f"Could not record the dashboard attributes of trial "
                                f"{trial.number}: {err}")


def _trial_note(frozen: FrozenTrial, label_step: int | None, error: str | None = None) -> str:
    """A few Markdown lines summing a trial up; ``error`` defaults to its ``nars:error``."""
    attrs = frozen.user_attrs
    steps = frozen.intermediate_values
    error = attrs.get(ERROR_ATTR) if error is None else error
    parts = [f"**{STAGE_TEXT.get(str(attrs.get(STAGE_KEY)), attrs.get(STAGE_KEY, 'no stage'))}**"]
    if error is not None:
        parts.append(f"failed: {error}")
    elif label_step is not None and label_step in steps:
        parts.append(f"label **{steps[label_step]:.4f}** (accuracy at epoch {label_step})")
    elif steps:
        last = max(steps)
        parts.append(f"accuracy {steps[last]:.4f} at epoch {last}"
                     + (" (label step not fixed yet)" if label_step is None else ""))
    predicted = finite_number(attrs.get(PREDICTED_KEY))
    if predicted is not None:
        spread = finite_number(attrs.get(PREDICTED_STD_KEY)) or 0.0
        interval = finite_interval(attrs.get(INTERVAL_95_KEY))
        parts.append(f"predicted {predicted:.4f} ± {spread:.4f}" + (
            "" if interval is None else f" (95%: {interval[0]:.4f} to {interval[1]:.4f})"))
    lines = [" · ".join(parts)]
    flops, params = finite_number(attrs.get("flops")), finite_number(attrs.get("params"))
    facts = ([] if flops is None else [f"{flops / 1e6:.3f} MFLOPs"]) + \
        ([] if params is None else [f"{params / 1e3:.1f} k params"]) + \
        (["full-length (calibration) trial"] if attrs.get(CALIBRATION_ATTR) else [])
    if facts:
        lines.append(" · ".join(facts))
    if attrs.get("arch"):
        lines.append(f"`{attrs['arch']}`")
    if attrs.get("recipe"):
        lines.append(str(attrs["recipe"]))
    return "\n\n".join(lines)


class _TrialNoteHandle:
    """What ``optuna_dashboard.save_note`` / ``get_note`` read of a trial (its storage, study and
    id), for a finished trial: an ``optuna.Trial`` would run the sampler's ``before_trial``."""

    def __init__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.study = study
        self.storage = study._storage
        self._trial_id = trial._trial_id


def name_objective(study: optuna.Study, name: str = "accuracy") -> None:
    """Call the objective ``name`` in the dashboard (unless the study names it already)."""
    if study.metric_names is None and len(study.directions) == 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental in some Optuna versions
            study.set_metric_names([name])


class DashboardCallback:
    """Keep a study's optuna-dashboard note and plots current while the search runs.

    Args:
        space: The study's :class:`~optuna_nars.SearchSpace`: described in the note, used for
            FLOPs/params of trials that lack those user attributes, and stored in the study (if
            it has none) so ``optuna-nars retarget`` and ``export`` can use the study.
        constraints: The budget to show (``{"flops": ..., "params": ...}``); default: the
            study's NARSSampler's.
        every: Rewrite the note after every ``every`` trials (of this process).
        plot_every: Save the plots after every ``plot_every`` trials; 0 disables plots.
            Plots need ``plotly``; without it they are skipped with a warning.
        top: Best pairs listed in the note.
        storage_url: Shown in the note's example commands.

    Call :meth:`update` after ``study.optimize`` for the final note and plots. Errors while
    writing are logged, never raised: the dashboard must not stop a search.
    """

    def __init__(
        self,
        space: SearchSpace | None = None,
        *,
        constraints: Mapping[str, float] | None = None,
        every: int = 1,
        plot_every: int = 5,
        top: int = 5,
        storage_url: str | None = None,
    ) -> None:
        self.space = space
        self.constraints = None if constraints is None else dict(constraints)
        self.every = check_int("every", every, minimum=1)
        self.plot_every = check_int("plot_every", plot_every, minimum=0)
        self.top = check_int("top", top, minimum=1)
        self.storage_url = storage_url
        self._calls = 0
        self._lock = threading.Lock()
        self._prepared: set[tuple[int, int]] = set()
        # Trials (storage, study, trial id) whose "pending" note this process has brought up to
        # date, or left alone: each is looked at once.
        self._notes_done: set[tuple[int, int, int]] = set()
        self._plotly_missing_warned = False

    def wrap(self, objective: Callable[[optuna.Trial], Any]) -> DashboardObjective:
        """``objective`` wrapped so every trial records ``nars:label_step`` and a note."""
        return DashboardObjective(objective)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with self._lock:
            self._calls += 1
            calls = self._calls
        note = calls % self.every == 0
        plots = self.plot_every > 0 and calls % self.plot_every == 0
        if note or plots:
            self.update(study, note=note, plots=plots)

    def update(self, study: optuna.Study, *, note: bool = True, plots: bool = True) -> None:
        """Rewrite the note and (with ``plots`` and plotly) the plots now."""
        # One writer at a time in this process (n_jobs threads); should a writer hang on a
        # locked storage, the others give up after a minute rather than stall the search.
        if not self._lock.acquire(timeout=60):
            return
        try:
            self._prepare(study)
            trials = study.get_trials(deepcopy=False)
            if note:
                self._write_note(study, trials)
                self._write_summary(study, trials)
                self._update_pending_trial_notes(study, trials)
            if plots and self.plot_every > 0:
                self._write_plots(study, trials)
        except Exception as err:  # the dashboard must never stop a search
            _logger.warning(f"Could not update the optuna-dashboard note/plots: {err!r}")
        finally:
            self._lock.release()

    def _prepare(self, study: optuna.Study) -> None:
        """Once per study: store the space (for retarget/export) and name the objective."""
        key = (id(study._storage), study._study_id)
        if key in self._prepared:
            return
        if self.space is not None:
            from optuna_nars.export import load_study_space, save_study_space

            if load_study_space(study) is None:
                save_study_space(study, self.space)
        name_objective(study)
        self._prepared.add(key)

    def _write_note(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> None:
        import optuna_dashboard

        generated = render_note(study, space=self.space, constraints=self.constraints,
                                top=self.top, storage_url=self.storage_url, trials=trials)
        previous = optuna_dashboard.get_note(study)
        optuna_dashboard.save_note(study, merge_note(generated, previous))

    def _update_pending_trial_notes(
        self, study: optuna.Study, trials: Sequence[FrozenTrial]
    ) -> None:
        """Once the label step is fixed, rewrite the notes that trials finished before it got
        (``nars:label_step`` "pending": the calibration trials) with their label.

        A note is rewritten only if it still reads as :class:`DashboardObjective` wrote it, so
        text a user put in a trial note is kept.
        """
        step = get_label_step(study)
        if step is None:
            return
        import optuna_dashboard

        for t in trials:
            key = (id(study._storage), study._study_id, t._trial_id)
            if (key in self._notes_done or not t.state.is_finished()
                    or t.user_attrs.get(TRIAL_LABEL_STEP_ATTR) != "pending"):
                continue
            handle = _TrialNoteHandle(study, t)
            written, current = _trial_note(t, None), _trial_note(t, step)
            if current != written and optuna_dashboard.get_note(handle) == written:
                optuna_dashboard.save_note(handle, current)
            self._notes_done.add(key)

    def _write_summary(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> None:
        """A few study user attributes: the dashboard shows them on the study's main page."""
        summary = study_summary(study, space=self.space, constraints=self.constraints,
                                trials=trials)
        current = study.user_attrs
        for key, value in summary.items():
            if current.get(key) != value:
                study.set_user_attr(key, value)

    def _write_plots(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> None:
        try:
            import plotly  # noqa: F401
        except ImportError:
            if not self._plotly_missing_warned:
                _logger.warning("plotly is not installed: no plots saved for optuna-dashboard "
                                "(pip install plotly).")
                self._plotly_missing_warned = True
            return
        import optuna_dashboard

        figures = build_figures(study, space=self.space, constraints=self.constraints,
                                trials=trials)
        for key, fig in figures.items():
            optuna_dashboard.save_plotly_graph_object(study, fig, graph_object_id=PLOT_IDS[key])
