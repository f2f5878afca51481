"""optuna-dashboard integration: a study note kept current and plots saved to the study.

:class:`DashboardCallback` is an Optuna callback. After every ``every`` trials it rewrites the
study's note (``optuna_dashboard.save_note``) with the search's state -- trials per stage, the
predictor's Kendall tau, the early-stopping label step and its correlation
curve, the budget and the best architecture-recipe pairs so far -- and after every
``plot_every`` trials it saves three plots (``optuna_dashboard.save_plotly_graph_object``, shown
on the study's main page in the dashboard, below Optuna's own charts):

* predicted vs measured accuracy (the predictor's error bars, the diagonal),
* accuracy vs FLOPs and accuracy vs parameters, with the budget's infeasible region shaded and
  the Pareto front drawn.

Text that users write into the note below the generated block is kept on every rewrite.

Trial user attributes come from the sampler (``nars:stage``, ``nars:predicted``,
``nars:predicted_std``), the objective (``flops``, ``params``, ``arch``, ``recipe``) and the
pruner (``nars:calibration``). Optuna does not let a callback change a finished trial, so the
label step is recorded by wrapping the objective: :class:`DashboardObjective` (or
:meth:`DashboardCallback.wrap`) sets ``nars:label_step`` before the trial ends -- the label step
in force then, or ``"pending"`` while the pruner is still calibrating -- and a short trial note;
once the label step is fixed, the callback rewrites the notes of the trials that finished while
it was pending with their label (unless a user edited them).
The callback also keeps a few study user attributes (shown on the study's main page) current:
``nars:best``, ``nars:budget``, ``nars:label_step``, ``nars:predictor_kendall_tau`` (the same
text as the note's and the predicted-vs-measured plot's title: ``"0.412"``, ``"not yet"`` or
``"undefined"``).

From Python::

    callback = DashboardCallback(space, constraints={"flops": 1.5e6})
    study.optimize(callback.wrap(objective), n_trials=30, callbacks=[callback])
    callback.update(study)  # the final note and plots

The package, one concept per module:

* :mod:`~optuna_nars.dashboard.callback`: :class:`DashboardCallback`,
  :class:`DashboardObjective` and the per-trial note.
* :mod:`~optuna_nars.dashboard.note`: the study note, one function per section, and
  :func:`study_summary`.
* :mod:`~optuna_nars.dashboard.figures`: :func:`build_figures` and the Pareto front.
* :mod:`~optuna_nars.dashboard.study_data`: what the others read from a study (costs, budget,
  stage names) and how numbers are shown.
"""

from __future__ import annotations

from optuna_nars._keys import ERROR_ATTR
from optuna_nars._keys import TRIAL_LABEL_STEP_ATTR as LABEL_STEP_ATTR
from optuna_nars.dashboard.callback import DashboardCallback, DashboardObjective, name_objective
from optuna_nars.dashboard.figures import PLOT_IDS, build_figures
from optuna_nars.dashboard.note import NOTE_BEGIN, NOTE_END, render_note, study_summary

__all__ = [
    "ERROR_ATTR",
    "LABEL_STEP_ATTR",
    "NOTE_BEGIN",
    "NOTE_END",
    "PLOT_IDS",
    "DashboardCallback",
    "DashboardObjective",
    "build_figures",
    "name_objective",
    "render_note",
    "study_summary",
]
