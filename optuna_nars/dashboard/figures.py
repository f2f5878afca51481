"""The dashboard plots: predicted vs measured accuracy, and accuracy vs FLOPs and vs parameters.

:func:`build_figures` returns plotly figures keyed like :data:`PLOT_IDS` (the ids they are saved
under in the study). Plotly is optional: it is imported only when a figure is built.
:func:`family_figure` (saved under :data:`FAMILY_PLOT_ID` by ``optuna-nars family``) and
:func:`save_family_png` (matplotlib) draw a model family's accuracy-vs-cost front against the
measured trials'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial

from optuna_nars._keys import PREDICTED_KEY, PREDICTED_STD_KEY, STAGE_KEY, Stage
from optuna_nars.cost import UNITS
from optuna_nars.dashboard import study_data

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from optuna_nars.space import SearchSpace

__all__ = ["FAMILY_PLOT_ID", "PLOT_IDS", "build_figures", "family_figure", "pareto_front",
           "save_family_png"]

PLOT_IDS = {
    "predicted": "nars-predicted-vs-measured",
    "flops": "nars-accuracy-vs-flops",
    "params": "nars-accuracy-vs-params",
}
FAMILY_PLOT_ID = "nars-family-front"
# Keyed by the stage's string value, as the ``nars:stage`` user attribute holds it.
_STAGE_COLORS = {
    Stage.QMC.value: "#636efa",
    Stage.PREDICTOR.value: "#ef553b",
    Stage.EVOLUTION.value: "#00cc96",
    Stage.LAYER.value: "#ffa15a",
    Stage.POLICY.value: "#19d3f3",
    Stage.RANDOM.value: "#ab63fa",
    Stage.REPEAT.value: "#7f7f7f",
}


def build_figures(
    study: optuna.Study,
    *,
    space: SearchSpace | None = None,
    constraints: Mapping[str, float] | None = None,
    trials: Sequence[FrozenTrial] | None = None,
) -> dict[str, go.Figure]:
    """The dashboard plots, keyed like :data:`PLOT_IDS`. Needs plotly."""
    snap = study_data.StudySnapshot.read(study, constraints, trials)
    labels = snap.labels
    acc_title = "accuracy" + ("" if snap.label_step is None else f" at epoch {snap.label_step}")
    labelled = [t for t in snap.trials if t.number in labels]
    figures = {"predicted": _predicted_vs_measured(labelled, labels, acc_title,
                                                   snap.predictor_tau, snap.predictor_tau_method,
                                                   snap.predictor_model)}
    for metric in ("flops", "params"):
        figures[metric] = _accuracy_vs_cost(metric, labelled, labels, space, snap.budget,
                                            acc_title)
    return figures


def pareto_front(points: Sequence[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Points (cost, accuracy, trial) not dominated by a cheaper-or-equal, more accurate one."""
    front: list[tuple[float, float, int]] = []
    best = -math.inf
    for cost, acc, number in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((cost, acc, number))
            best = acc
    return front


def _layout() -> dict[str, Any]:
    """The layout every plot shares."""
    return dict(template="plotly_white", height=460, margin=dict(l=60, r=20, t=60, b=50),
                legend=dict(title="stage"))


def _hover(t: FrozenTrial) -> str:
    return (f"trial {t.number}<br>{t.user_attrs.get('arch', '')}<br>"
            f"{t.user_attrs.get('recipe', '')}")


def _spread(t: FrozenTrial) -> float:
    """The predictor's standard deviation for ``t`` (0 when it has none)."""
    return study_data.finite_number(t.user_attrs.get(PREDICTED_STD_KEY)) or 0.0


def _stage(t: FrozenTrial) -> str:
    return str(t.user_attrs.get(STAGE_KEY))


_MODEL_NAMES = {"ensemble": "the MLP ensemble", "gp": "the Gaussian process"}


def _predicted_vs_measured(
    labelled: list[FrozenTrial], labels: dict[int, float], acc_title: str, predictor_tau: str,
    tau_method: str, model: str | None = None,
) -> go.Figure:
    """The predictor's predictions (with error bars) against the labels, and the diagonal.

    The title gives the predictor's Kendall tau (``predictor_tau``, ``tau_method``), the number
    the study note and the ``nars:predictor_kendall_tau`` study attribute show, and which
    ``model`` predicted (when the study says).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    points, _ = study_data.predicted_and_measured(labelled, labels)
    for stage in sorted({_stage(t) for t in points}):
        ts = [t for t in points if _stage(t) == stage]
        fig.add_trace(go.Scatter(
            x=[t.user_attrs[PREDICTED_KEY] for t in ts], y=[labels[t.number] for t in ts],
            error_x=dict(type="data", array=[_spread(t) for t in ts], thickness=1),
            mode="markers", name=stage, text=[_hover(t) for t in ts], hoverinfo="text+x+y",
            marker=dict(size=9, color=_STAGE_COLORS.get(stage)),
        ))
    if points:
        values = [labels[t.number] for t in points] + [t.user_attrs[PREDICTED_KEY] for t in points]
        lo, hi = min(values), max(values)
        pad = 0.05 * (hi - lo or 1.0)
        fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines",
                                 name="predicted = measured",
                                 line=dict(color="#999", dash="dash")))
    who = _MODEL_NAMES.get(model or "", "predictor")
    title = (f"Predicted vs measured {acc_title} ({len(points)} trials; {who}'s "
             f"{tau_method} Kendall tau {predictor_tau})")
    if not points:
        fig.add_annotation(text="No predictor-guided trial has finished yet.", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="measured", **_layout())
    return fig


def _accuracy_vs_cost(
    metric: str,
    labelled: list[FrozenTrial],
    labels: dict[int, float],
    space: SearchSpace | None,
    budget: Mapping[str, float],
    acc_title: str,
) -> go.Figure:
    """Labels against one cost metric, by stage, with the Pareto front and the budget."""
    import plotly.graph_objects as go

    scale, unit = UNITS[metric]
    fig = go.Figure()
    rows = []
    for t in labelled:
        cost = study_data.trial_costs(t, space)[metric]
        if cost is not None:
            rows.append((cost / scale, labels[t.number], t))
    for stage in sorted({_stage(t) for _, _, t in rows}):
        rs = [r for r in rows if _stage(r[2]) == stage]
        fig.add_trace(go.Scatter(
            x=[r[0] for r in rs], y=[r[1] for r in rs], mode="markers", name=stage,
            text=[_hover(r[2]) for r in rs], hoverinfo="text+x+y",
            marker=dict(size=9, color=_STAGE_COLORS.get(stage)),
        ))
    front = pareto_front([(c, a, t.number) for c, a, t in rows])
    if front:
        fig.add_trace(go.Scatter(
            x=[c for c, _, _ in front], y=[a for _, a, _ in front], mode="lines+markers",
            line=dict(shape="hv", color="#222", width=1.5),
            marker=dict(symbol="circle-open", size=13, color="#222"), name="Pareto front",
            text=[f"trial {n}" for _, _, n in front], hoverinfo="text+x+y",
        ))
    limit = budget.get(metric)
    if limit is not None:
        _shade_infeasible(fig, limit / scale, unit, [r[0] for r in rows])
    if not rows:
        fig.add_annotation(text="No labelled trial yet.", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
    title = f"{acc_title.capitalize()} vs {unit} ({len(rows)} trials"
    title += "; feasible region left of the budget)" if limit is not None else ")"
    fig.update_layout(title=title, xaxis_title=unit, yaxis_title=acc_title, **_layout())
    return fig


def _shade_infeasible(fig: go.Figure, x_limit: float, unit: str, xs: list[float]) -> None:
    """The budget as a dashed line, and the region past it (up to the points) shaded."""
    x_max = max([x_limit * 1.15] + [x * 1.05 for x in xs])
    fig.add_vrect(x0=x_limit, x1=x_max, fillcolor="#d62728", opacity=0.08, line_width=0,
                  annotation_text="infeasible", annotation_position="top right")
    fig.add_vline(x=x_limit, line=dict(color="#d62728", dash="dash"),
                  annotation_text=f"budget {x_limit:.4g} {unit}",
                  annotation_position="top left")


# ---- a model family against the measured trials --------------------------------------------

FamilyPoints = Mapping[str, Sequence[tuple[float, float, Any]]]


def _family_title(metric: str, points: FamilyPoints) -> tuple[str, float, str]:
    scale, unit = UNITS[metric]
    title = (f"Model family ({len(points['family'])} budgets, predicted) and measured trials "
             f"({len(points['trials'])}): accuracy vs {unit}")
    return title, scale, unit


def family_figure(points: FamilyPoints, metric: str) -> go.Figure:
    """Plotly: the measured trials and their Pareto front, and the family's members
    (predicted accuracy) and front; ``points`` as :func:`optuna_nars.model_family.pareto_points`
    gives them."""
    import plotly.graph_objects as go

    title, scale, unit = _family_title(metric, points)
    fig = go.Figure()
    trials, members = points["trials"], points["family"]
    fig.add_trace(go.Scatter(x=[c / scale for c, _, _ in trials], y=[a for _, a, _ in trials],
                             mode="markers", name="measured trials",
                             text=[f"trial {n}" for _, _, n in trials], hoverinfo="text+x+y",
                             marker=dict(size=7, color="#9aa5b1")))
    for name, front, color in (("measured front", pareto_front(trials), "#222"),
                               ("family (predicted)", pareto_front(members), "#d62728")):
        fig.add_trace(go.Scatter(x=[c / scale for c, _, _ in front], y=[a for _, a, _ in front],
                                 mode="lines+markers", name=name,
                                 line=dict(shape="hv", color=color, width=1.5),
                                 text=[str(n) for _, _, n in front], hoverinfo="text+x+y"))
    fig.add_trace(go.Scatter(x=[c / scale for c, _, _ in members], y=[a for _, a, _ in members],
                             mode="markers", name="family members",
                             text=[f"budget {b:g}" for _, _, b in members], hoverinfo="text+x+y",
                             marker=dict(size=12, symbol="star", color="#d62728")))
    fig.update_layout(title=title, xaxis_title=unit, yaxis_title="accuracy",
                      **{**_layout(), "legend": dict(title="")})
    return fig


def save_family_png(points: FamilyPoints, metric: str, path: str) -> None:
    """:func:`family_figure` as a PNG, drawn with matplotlib (no browser needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title, scale, unit = _family_title(metric, points)
    fig, ax = plt.subplots(figsize=(8, 5))
    try:
        trials, members = points["trials"], points["family"]
        ax.scatter([c / scale for c, _, _ in trials], [a for _, a, _ in trials], s=14,
                   color="#9aa5b1", label="measured trials")
        for name, front, color in (("measured front", pareto_front(trials), "#222"),
                                   ("family (predicted)", pareto_front(members), "#d62728")):
            if front:
                ax.step([c / scale for c, _, _ in front], [a for _, a, _ in front],
                        where="post", color=color, label=name)
        ax.scatter([c / scale for c, _, _ in members], [a for _, a, _ in members], s=90,
                   marker="*", color="#d62728", label="family members", zorder=3)
        ax.set(xlabel=unit, ylabel="accuracy", title=title)
        ax.title.set_fontsize(9)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
