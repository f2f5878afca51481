"""optuna-dashboard integration: a study note kept current and plots saved to the study.

:class:`DashboardCallback` is an Optuna callback. After every ``every`` trials it rewrites the
study's note (``optuna_dashboard.save_note``) with the search's state -- trials per stage, the
predictor's cross-validated Kendall tau, the early-stopping label step and its correlation
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
in force then, or ``"pending"`` while the pruner is still calibrating -- and a short trial note.
The callback also keeps a few study user attributes (shown on the study's main page) current:
``nars:best``, ``nars:budget``, ``nars:label_step``, ``nars:predictor_kendall_tau``.

From Python::

    callback = DashboardCallback(space, constraints={"flops": 1.5e6})
    study.optimize(callback.wrap(objective), n_trials=30, callbacks=[callback])
    callback.update(study)  # the final note and plots
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import (
    CALIBRATION_ATTR,
    CALIBRATION_INFO_KEY,
    ERROR_ATTR,
    LABEL_CORRELATION_KEY,
    LABEL_THRESHOLD_KEY,
    PREDICTED_KEY,
    PREDICTED_STD_KEY,
    PREDICTOR_QUALITY_KEY,
    STAGE_KEY,
    Stage,
)
from optuna_nars._keys import TRIAL_LABEL_STEP_ATTR as LABEL_STEP_ATTR
from optuna_nars.cost import UNITS, format_budget
from optuna_nars.labels import get_label_step, trial_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from optuna_nars.space import SearchSpace

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

_logger = optuna.logging.get_logger("optuna." + __name__)

# Markdown link-reference definitions: invisible in the rendered note, unlike HTML comments
# (which the dashboard shows as text).
NOTE_BEGIN = "[//]: # (optuna-nars:begin)"
NOTE_END = "[//]: # (optuna-nars:end)"
PLOT_IDS = {
    "predicted": "nars-predicted-vs-measured",
    "flops": "nars-accuracy-vs-flops",
    "params": "nars-accuracy-vs-params",
}
_STAGE_TEXT = {
    Stage.QMC.value: "1. QMC warm start",
    Stage.PREDICTOR.value: "2. predictor-guided rounds",
    Stage.EVOLUTION.value: "3. adaptive genetic search",
    Stage.RANDOM.value: "random (pool exhausted)",
    Stage.REPEAT.value: "repeat (space exhausted)",
}
_STAGE_COLORS = {Stage.QMC.value: "#636efa", Stage.PREDICTOR.value: "#ef553b",
                 Stage.EVOLUTION.value: "#00cc96", Stage.RANDOM.value: "#ab63fa",
                 Stage.REPEAT.value: "#7f7f7f"}


# ---- the objective side: attributes and a note on every trial ----------------------------------


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
                trial.set_user_attr(LABEL_STEP_ATTR, "pending" if step is None else step)
                if self.note:
                    import optuna_dashboard

                    optuna_dashboard.save_note(trial, _trial_note(trial, step, error))
            except Exception as err:  # never let bookkeeping hide the objective's outcome
                _logger.warning(f"Could not record the dashboard attributes of trial "
                                f"{trial.number}: {err}")


def _trial_note(trial: optuna.Trial, label_step: int | None, error: str | None) -> str:
    """A few Markdown lines summing a running trial up."""
    frozen = trial.study._storage.get_trial(trial._trial_id)
    attrs = frozen.user_attrs
    steps = frozen.intermediate_values
    parts = [f"**{_STAGE_TEXT.get(str(attrs.get(STAGE_KEY)), attrs.get(STAGE_KEY, 'no stage'))}**"]
    if error is not None:
        parts.append(f"failed: {error}")
    elif label_step is not None and label_step in steps:
        parts.append(f"label **{steps[label_step]:.4f}** (accuracy at epoch {label_step})")
    elif steps:
        last = max(steps)
        parts.append(f"accuracy {steps[last]:.4f} at epoch {last}"
                     + (" (label step not fixed yet)" if label_step is None else ""))
    predicted = _num(attrs.get(PREDICTED_KEY))
    if predicted is not None:
        spread = _num(attrs.get(PREDICTED_STD_KEY)) or 0.0
        parts.append(f"predicted {predicted:.4f} ± {spread:.4f}")
    lines = [" · ".join(parts)]
    flops, params = _num(attrs.get("flops")), _num(attrs.get("params"))
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


# ---- what the study holds --------------------------------------------------------------------


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _fmt(x: Any, spec: str = ".4f", missing: str = "–") -> str:
    v = _num(x)
    return missing if v is None else format(v, spec)


def _sampler_plan(study: optuna.Study) -> dict[str, int] | None:
    """Trials per stage planned by the study's sampler (None for one without a stage plan)."""
    plan = getattr(study.sampler, "plan", None)
    if plan is None:
        return None
    return {"qmc": plan.n_startup_trials, "predictor": plan.n_predictor_trials}


def _sampler_budget(study: optuna.Study) -> dict[str, float]:
    constraints = getattr(study.sampler, "constraints", None)
    if isinstance(constraints, Mapping):
        return {k: float(v) for k, v in constraints.items()}
    return {}


def _costs(trial: FrozenTrial, space: SearchSpace | None) -> dict[str, float | None]:
    """FLOPs and params of a trial: its user attributes, else the cost model of ``space``."""
    out = {m: _num(trial.user_attrs.get(m)) for m in ("flops", "params")}
    if space is not None and None in out.values():
        from optuna_nars.cost import count_flops, count_params

        try:
            arch = space.from_params(trial.params).architecture
        except (ValueError, KeyError):
            return out
        out["flops"] = out["flops"] or float(count_flops(arch, space.in_channels,
                                                         space.num_classes))
        out["params"] = out["params"] or float(count_params(arch, space.in_channels,
                                                            space.num_classes))
    return out


def _pareto(points: Sequence[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Points (cost, accuracy, trial) not dominated by a cheaper-or-equal, more accurate one."""
    front: list[tuple[float, float, int]] = []
    best = -math.inf
    for cost, acc, number in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((cost, acc, number))
            best = acc
    return front


def _kendall(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    import scipy.stats

    tau = float(scipy.stats.kendalltau(x, y).statistic)
    return None if math.isnan(tau) else tau


# ---- the note -----------------------------------------------------------------------------------


def render_note(
    study: optuna.Study,
    *,
    space: SearchSpace | None = None,
    constraints: Mapping[str, float] | None = None,
    top: int = 5,
    storage_url: str | None = None,
    trials: Sequence[FrozenTrial] | None = None,
) -> str:
    """The generated part of the study note (Markdown), from the storage alone."""
    trials = list(study.get_trials(deepcopy=False) if trials is None else trials)
    attrs = study._storage.get_study_system_attrs(study._study_id)
    labels = trial_labels(study, trials)
    budget = dict(constraints) if constraints is not None else _sampler_budget(study)
    states = Counter(t.state for t in trials)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    finished = sum(1 for t in trials if t.state.is_finished())

    lines = [
        f"## optuna-nars: {study.study_name}",
        "",
        f"*Updated {now}: {finished} finished trials "
        f"({states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} stopped early, "
        f"{states[TrialState.FAIL]} failed), {states[TrialState.RUNNING]} running.*",
        "",
        f"**Budget:** {format_budget(budget)}.",
    ]
    if space is not None:
        lines += [
            "",
            f"**Search space:** {len(space.names)} parameters, {space.n_architectures():.3g} "
            f"architectures x a continuous recipe space, {space.in_channels}-channel input, "
            f"{space.num_classes} classes.",
        ]

    # Stages.
    plan = _sampler_plan(study)
    by_stage: dict[str, Counter] = {}
    for t in trials:
        stage = str(t.user_attrs.get(STAGE_KEY, "other"))
        by_stage.setdefault(stage, Counter())[t.state] += 1
    lines += ["", "### Search stages", "",
              "| stage | planned | trials | complete | stopped early | failed | running |",
              "|---|---|---|---|---|---|---|"]
    planned = dict(plan or {})
    planned_text = {"qmc": str(planned.get("qmc", "–")),
                    "predictor": str(planned.get("predictor", "–")),
                    "evolution": "the rest" if plan else "–"}
    for stage in list(_STAGE_TEXT) + sorted(set(by_stage) - set(_STAGE_TEXT)):
        c = by_stage.get(stage)
        if c is None and stage not in planned_text:
            continue
        c = c or Counter()
        lines.append(
            f"| {_STAGE_TEXT.get(stage, stage)} | {planned_text.get(stage, '–')} | "
            f"{sum(c.values())} | {c[TrialState.COMPLETE]} | {c[TrialState.PRUNED]} | "
            f"{c[TrialState.FAIL]} | {c[TrialState.RUNNING]} |"
        )
    if plan:
        n = len(trials)
        current = ("qmc" if n <= plan["qmc"] else
                   "predictor" if n <= plan["qmc"] + plan["predictor"] else "evolution")
        lines += ["", f"Now in stage **{_STAGE_TEXT[current]}**."]

    # Predictor.
    quality = attrs.get(PREDICTOR_QUALITY_KEY)
    lines += ["", "### Accuracy predictor", ""]
    if isinstance(quality, Mapping) and quality.get("kendall_tau") is not None:
        lines.append(
            f"Refit on **{quality.get('n_labels')}** labelled trials; cross-validated Kendall tau "
            f"**{float(quality['kendall_tau']):.3f}** (1 = ranks pairs perfectly, 0 = chance)."
        )
    else:
        lines.append("Not cross-validated yet (needs 10 labelled trials past the warm start).")
    pred = [(float(t.user_attrs[PREDICTED_KEY]), labels[t.number]) for t in trials
            if t.number in labels and _num(t.user_attrs.get(PREDICTED_KEY)) is not None]
    if pred:
        tau = _kendall([p for p, _ in pred], [m for _, m in pred])
        mae = sum(abs(p - m) for p, m in pred) / len(pred)
        lines.append(
            f"On the {len(pred)} trials it proposed: mean absolute error {mae:.4f}, Kendall tau "
            f"between predicted and measured {_fmt(tau, '.3f')}."
        )

    # Early stopping.
    label_step = get_label_step(study)
    lines += ["", "### Early stopping", ""]
    info = attrs.get(CALIBRATION_INFO_KEY) if isinstance(attrs.get(CALIBRATION_INFO_KEY),
                                                         Mapping) else {}
    full_step = info.get("full_step")
    if label_step is None:
        n_cal = getattr(study.pruner, "_n_calibration_trials", None)
        done = sum(1 for t in trials if t.state == TrialState.COMPLETE and t.intermediate_values)
        if isinstance(n_cal, int) and done >= n_cal:
            # The pruner calibrates lazily, at the next trial's first report.
            lines.append(f"Calibrating: the {n_cal} full-length calibration trials have "
                         "finished; the label step is fixed when the next trial reports.")
        else:
            lines.append(
                "Calibrating: every trial trains to full length until "
                f"{n_cal if n_cal is not None else 'the calibration'} full-length trials have "
                f"finished ({done} so far)."
            )
    else:
        threshold = attrs.get(LABEL_THRESHOLD_KEY)
        method = str(info.get("correlation", "rank")).capitalize()
        if full_step is not None and label_step >= int(full_step):
            lines.append(
                f"Label step: **epoch {label_step}**, the full length: no earlier epoch's "
                f"{method} correlation with the final accuracy reached {_fmt(threshold, '.2f')} "
                "over the full-length trials, so no trial is stopped early."
            )
        else:
            lines.append(
                f"Label step: **epoch {label_step}**"
                + (f" of {full_step}" if full_step is not None else "")
                + f": the first epoch whose {method} correlation with the final accuracy reached "
                f"{_fmt(threshold, '.2f')} over the full-length trials; later trials stop there."
            )
        curve = attrs.get(LABEL_CORRELATION_KEY)
        if isinstance(curve, Mapping) and curve:
            steps = sorted(curve, key=lambda s: int(s))
            lines += ["", "| epoch | " + " | ".join(steps) + " |",
                      "|---" * (len(steps) + 1) + "|",
                      "| correlation | " + " | ".join(_fmt(curve[s], ".2f") for s in steps) + " |"]
        stopped = [t for t in trials if t.state == TrialState.PRUNED and t.last_step is not None]
        if full_step and stopped:
            saved = sum(max(0, int(full_step) - int(t.last_step)) for t in stopped)
            total = int(full_step) * sum(1 for t in trials if t.state.is_finished())
            lines.append("")
            lines.append(f"{len(stopped)} trials stopped early, saving {saved} of {total} "
                         f"epochs ({saved / max(total, 1):.0%}).")

    # Best pairs.
    at = "" if label_step is None else f", epoch {label_step}"
    lines += ["", f"### Best architecture-recipe pairs (accuracy at the label step{at})", ""]
    by_number = {t.number: t for t in trials}
    best = sorted(labels, key=lambda n: (-labels[n], n))[:top]
    if best:
        lines += ["| trial | accuracy | predicted | MFLOPs | k params | stage | arch | recipe |",
                  "|---|---|---|---|---|---|---|---|"]
        for n in best:
            t = by_number[n]
            costs = _costs(t, space)
            p, s = t.user_attrs.get(PREDICTED_KEY), t.user_attrs.get(PREDICTED_STD_KEY)
            predicted = f"{_fmt(p)} ± {_fmt(s, '.3f')}" if _num(p) is not None else "–"
            mflops = None if costs["flops"] is None else costs["flops"] / 1e6
            kparams = None if costs["params"] is None else costs["params"] / 1e3
            lines.append(
                f"| {n} | **{labels[n]:.4f}** | {predicted} | {_fmt(mflops, '.3f')} | "
                f"{_fmt(kparams, '.1f')} | "
                f"{t.user_attrs.get(STAGE_KEY, '–')} | `{t.user_attrs.get('arch', '–')}` | "
                f"{t.user_attrs.get('recipe', '–')} |"
            )
    else:
        lines.append("No labelled trials yet.")

    # What to do next.
    where = f" --storage {storage_url}" if storage_url else ""
    lines += [
        "",
        "### Next",
        "",
        f"* Re-target to a new budget, no training: `optuna-nars retarget{where} "
        f"--study-name {study.study_name} --max-flops <FLOPs> --top 5`",
        f"* Export the best pair: `optuna-nars export{where} --study-name {study.study_name} "
        "-o best.json`",
        "* Plots (predicted vs measured accuracy; accuracy vs FLOPs and vs parameters with the "
        "budget and the Pareto front) are on the study's main page, below Optuna's charts.",
    ]
    return "\n".join(lines)


def study_summary(
    study: optuna.Study,
    *,
    space: SearchSpace | None = None,
    constraints: Mapping[str, float] | None = None,
    trials: Sequence[FrozenTrial] | None = None,
) -> dict[str, str | int | float]:
    """The study user attributes :class:`DashboardCallback` keeps: best pair, budget, label
    step and the predictor's Kendall tau, in short text."""
    trials = list(study.get_trials(deepcopy=False) if trials is None else trials)
    labels = trial_labels(study, trials)
    budget = dict(constraints) if constraints is not None else _sampler_budget(study)
    label_step = get_label_step(study)
    quality = study._storage.get_study_system_attrs(study._study_id).get(PREDICTOR_QUALITY_KEY)
    tau = quality.get("kendall_tau") if isinstance(quality, Mapping) else None
    best = "no labelled trial yet"
    if labels:
        n = min(labels, key=lambda k: (-labels[k], k))
        trial = next(t for t in trials if t.number == n)
        costs = _costs(trial, space)
        best = f"trial {n}: {labels[n]:.4f}"
        if costs["flops"] is not None and costs["params"] is not None:
            best += f", {costs['flops'] / 1e6:.3f} MFLOPs, {costs['params'] / 1e3:.1f} k params"
    return {
        "nars:best": best,
        "nars:budget": format_budget(budget),
        "nars:label_step": "pending" if label_step is None else label_step,
        "nars:predictor_kendall_tau": "not yet" if tau is None else round(float(tau), 4),
    }


def _merge_note(generated: str, previous: str) -> str:
    """The generated block between the markers, with whatever else the note held kept."""
    block = f"{NOTE_BEGIN}\n\n{generated}\n\n{NOTE_END}"
    if NOTE_BEGIN in previous and NOTE_END in previous:
        head, rest = previous.split(NOTE_BEGIN, 1)
        tail = rest.split(NOTE_END, 1)[1]
        return head + block + tail
    if previous.strip():
        return block + "\n\n" + previous
    return block + "\n\n*(Notes written below this line are kept when the block above is " \
                   "updated.)*\n"


def name_objective(study: optuna.Study, name: str = "accuracy") -> None:
    """Call the objective ``name`` in the dashboard (unless the study names it already)."""
    if study.metric_names is None and len(study.directions) == 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental in some Optuna versions
            study.set_metric_names([name])


# ---- the plots ----------------------------------------------------------------------------------


def build_figures(
    study: optuna.Study,
    *,
    space: SearchSpace | None = None,
    constraints: Mapping[str, float] | None = None,
    trials: Sequence[FrozenTrial] | None = None,
) -> dict[str, go.Figure]:
    """The dashboard plots, keyed like :data:`PLOT_IDS`. Needs plotly."""
    import plotly.graph_objects as go

    trials = list(study.get_trials(deepcopy=False) if trials is None else trials)
    labels = trial_labels(study, trials)
    budget = dict(constraints) if constraints is not None else _sampler_budget(study)
    label_step = get_label_step(study)
    acc_title = "accuracy" + (f" at epoch {label_step}" if label_step is not None else "")
    layout = dict(template="plotly_white", height=460, margin=dict(l=60, r=20, t=60, b=50),
                  legend=dict(title="stage"))
    labelled = [t for t in trials if t.number in labels]

    def hover(t: FrozenTrial) -> str:
        return (f"trial {t.number}<br>{t.user_attrs.get('arch', '')}<br>"
                f"{t.user_attrs.get('recipe', '')}")

    figures: dict[str, go.Figure] = {}

    # Predicted vs measured.
    fig = go.Figure()
    points = [t for t in labelled if _num(t.user_attrs.get(PREDICTED_KEY)) is not None]
    for stage in sorted({str(t.user_attrs.get(STAGE_KEY)) for t in points}):
        ts = [t for t in points if str(t.user_attrs.get(STAGE_KEY)) == stage]
        fig.add_trace(go.Scatter(
            x=[t.user_attrs[PREDICTED_KEY] for t in ts], y=[labels[t.number] for t in ts],
            error_x=dict(type="data", array=[_num(t.user_attrs.get(PREDICTED_STD_KEY)) or 0.0
                                             for t in ts], thickness=1),
            mode="markers", name=stage, text=[hover(t) for t in ts], hoverinfo="text+x+y",
            marker=dict(size=9, color=_STAGE_COLORS.get(stage)),
        ))
    if points:
        values = [labels[t.number] for t in points] + [t.user_attrs[PREDICTED_KEY] for t in points]
        lo, hi = min(values), max(values)
        pad = 0.05 * (hi - lo or 1.0)
        fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines",
                                 name="predicted = measured",
                                 line=dict(color="#999", dash="dash")))
        tau = _kendall([t.user_attrs[PREDICTED_KEY] for t in points],
                       [labels[t.number] for t in points])
        title = (f"Predicted vs measured {acc_title} ({len(points)} trials, "
                 f"Kendall tau {_fmt(tau, '.2f')})")
    else:
        title = f"Predicted vs measured {acc_title}"
        fig.add_annotation(text="No predictor-guided trial has finished yet.", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="measured", **layout)
    figures["predicted"] = fig

    # Accuracy vs cost, one per metric.
    for metric in ("flops", "params"):
        scale, unit = UNITS[metric]
        fig = go.Figure()
        rows = []
        for t in labelled:
            cost = _costs(t, space)[metric]
            if cost is not None:
                rows.append((cost / scale, labels[t.number], t))
        for stage in sorted({str(t.user_attrs.get(STAGE_KEY)) for _, _, t in rows}):
            rs = [r for r in rows if str(r[2].user_attrs.get(STAGE_KEY)) == stage]
            fig.add_trace(go.Scatter(
                x=[r[0] for r in rs], y=[r[1] for r in rs], mode="markers", name=stage,
                text=[hover(r[2]) for r in rs], hoverinfo="text+x+y",
                marker=dict(size=9, color=_STAGE_COLORS.get(stage)),
            ))
        front = _pareto([(c, a, t.number) for c, a, t in rows])
        if front:
            xs = [c for c, _, _ in front]
            ys = [a for _, a, _ in front]
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines+markers", line=dict(shape="hv", color="#222", width=1.5),
                marker=dict(symbol="circle-open", size=13, color="#222"), name="Pareto front",
                text=[f"trial {n}" for _, _, n in front], hoverinfo="text+x+y",
            ))
        limit = budget.get(metric)
        if limit is not None:
            x_limit = limit / scale
            x_max = max([x_limit * 1.15] + [r[0] * 1.05 for r in rows])
            fig.add_vrect(x0=x_limit, x1=x_max, fillcolor="#d62728", opacity=0.08, line_width=0,
                          annotation_text="infeasible", annotation_position="top right")
            fig.add_vline(x=x_limit, line=dict(color="#d62728", dash="dash"),
                          annotation_text=f"budget {x_limit:.4g} {unit}",
                          annotation_position="top left")
        if not rows:
            fig.add_annotation(text="No labelled trial yet.", showarrow=False,
                               xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_layout(
            title=f"{acc_title.capitalize()} vs {unit} ({len(rows)} trials; feasible region "
                  f"left of the budget)" if limit is not None else
                  f"{acc_title.capitalize()} vs {unit} ({len(rows)} trials)",
            xaxis_title=unit, yaxis_title=acc_title, **layout)
        figures[metric] = fig
    return figures


# ---- the callback -------------------------------------------------------------------------------


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
        for name, value, minimum in (("every", every, 1), ("plot_every", plot_every, 0),
                                     ("top", top, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
        self.space = space
        self.constraints = None if constraints is None else dict(constraints)
        self.every = every
        self.plot_every = plot_every
        self.top = top
        self.storage_url = storage_url
        self._calls = 0
        self._lock = threading.Lock()
        self._prepared: set[tuple[int, int]] = set()
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
        optuna_dashboard.save_note(study, _merge_note(generated, previous))

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

