"""The study note: the search's state in Markdown, one function per section, from storage alone.

:func:`render_note` writes the generated block; :func:`merge_note` puts it between
:data:`NOTE_BEGIN` and :data:`NOTE_END` and keeps whatever users wrote around it.
:func:`study_summary` is the same state in a few short study user attributes.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_nars._keys import (
    CALIBRATION_INFO_KEY,
    LABEL_CORRELATION_KEY,
    LABEL_THRESHOLD_KEY,
    PREDICTED_KEY,
    PREDICTED_STD_KEY,
    PREDICTOR_QUALITY_KEY,
    STAGE_KEY,
    Stage,
)
from optuna_nars.cost import format_budget
from optuna_nars.dashboard.study_data import (
    STAGE_TEXT,
    StudySnapshot,
    finite_number,
    format_number,
    predicted_and_measured,
    trial_costs,
)

if TYPE_CHECKING:
    from optuna_nars.space import SearchSpace

__all__ = ["NOTE_BEGIN", "NOTE_END", "merge_note", "render_note", "study_summary"]

# Markdown link-reference definitions: invisible in the rendered note, unlike HTML comments
# (which the dashboard shows as text).
NOTE_BEGIN = "[//]: # (optuna-nars:begin)"
NOTE_END = "[//]: # (optuna-nars:end)"


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
    snap = StudySnapshot.read(study, constraints, trials)
    lines = _header(study, snap.trials, snap.budget, space)
    lines += _stages_section(study, snap.trials)
    lines += _predictor_section(snap)
    lines += _early_stopping_section(study, snap.system_attrs, snap.trials, snap.label_step)
    lines += _best_pairs_section(snap.trials, snap.labels, snap.label_step, space, top)
    lines += _next_section(study, storage_url)
    return "\n".join(lines)


def _header(
    study: optuna.Study,
    trials: list[FrozenTrial],
    budget: Mapping[str, float],
    space: SearchSpace | None,
) -> list[str]:
    """Title, trial counts by state, the budget and the search space."""
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
    return lines


def _stages_section(study: optuna.Study, trials: list[FrozenTrial]) -> list[str]:
    """Trials per sampler stage against the sampler's plan, and the current stage."""
    plan = getattr(study.sampler, "plan", None)  # None: not a sampler with a stage plan
    by_stage: dict[str, Counter] = {}
    for t in trials:
        stage = str(t.user_attrs.get(STAGE_KEY, "other"))
        by_stage.setdefault(stage, Counter())[t.state] += 1
    lines = ["", "### Search stages", "",
             "| stage | planned | trials | complete | stopped early | failed | running |",
             "|---|---|---|---|---|---|---|"]
    planned_text = {
        Stage.QMC.value: "–" if plan is None else str(plan.n_startup_trials),
        Stage.PREDICTOR.value: "–" if plan is None else str(plan.n_predictor_trials),
        Stage.EVOLUTION.value: "–" if plan is None else "the rest",
    }
    for stage in list(STAGE_TEXT) + sorted(set(by_stage) - set(STAGE_TEXT)):
        c = by_stage.get(stage)
        if c is None and stage not in planned_text:
            continue
        c = c or Counter()
        lines.append(
            f"| {STAGE_TEXT.get(stage, stage)} | {planned_text.get(stage, '–')} | "
            f"{sum(c.values())} | {c[TrialState.COMPLETE]} | {c[TrialState.PRUNED]} | "
            f"{c[TrialState.FAIL]} | {c[TrialState.RUNNING]} |"
        )
    if plan is not None:
        # The stage of the newest trial (numbers start at 0; with no trial yet, the first).
        current = plan.stage(len(trials) - 1)
        lines += ["", f"Now in stage **{STAGE_TEXT[current.value]}**."]
    return lines


# The model behind the latest fit (the sampler's gp_labels and model_choice).
_MODEL_NAMES = {"ensemble": " by the MLP ensemble", "gp": " by a Gaussian process"}


def _predictor_section(snap: StudySnapshot) -> list[str]:
    """The predictor's Kendall tau and its error on the trials it proposed."""
    quality = snap.system_attrs.get(PREDICTOR_QUALITY_KEY)
    labels = snap.labels
    lines = ["", "### Accuracy predictor", ""]
    if snap.predictor_tau != "not yet":
        model = _MODEL_NAMES.get(snap.predictor_model or "", "")
        lines.append(
            f"Refit on **{quality.get('n_labels')}** labelled trials{model}; "
            f"{snap.predictor_tau_method} Kendall tau **{snap.predictor_tau}** "
            "(1 = ranks pairs perfectly, 0 = chance)."
        )
    else:
        lines.append("Not cross-validated yet (needs 10 labelled trials past the warm start).")
    points, tau = predicted_and_measured(snap.trials, labels)
    pred = [(float(t.user_attrs[PREDICTED_KEY]), labels[t.number]) for t in points]
    if pred:
        mae = sum(abs(p - m) for p, m in pred) / len(pred)
        lines.append(
            f"On the {len(pred)} trials it proposed: mean absolute error {mae:.4f}, Kendall tau "
            f"between predicted and measured {format_number(tau, '.3f')}."
        )
    return lines


def _early_stopping_section(
    study: optuna.Study,
    attrs: Mapping[str, Any],
    trials: list[FrozenTrial],
    label_step: int | None,
) -> list[str]:
    """The calibration's progress, or the label step, its correlation curve and the savings."""
    lines = ["", "### Early stopping", ""]
    if label_step is None:
        return lines + [_calibrating_text(study, trials)]
    info = attrs.get(CALIBRATION_INFO_KEY) if isinstance(attrs.get(CALIBRATION_INFO_KEY),
                                                         Mapping) else {}
    full_step = info.get("full_step")
    threshold = format_number(attrs.get(LABEL_THRESHOLD_KEY), ".2f")
    method = str(info.get("correlation", "rank")).capitalize()
    if full_step is not None and label_step >= int(full_step):
        lines.append(
            f"Label step: **epoch {label_step}**, the full length: no earlier epoch's "
            f"{method} correlation with the final accuracy reached {threshold} "
            "over the full-length trials, so no trial is stopped early."
        )
    else:
        lines.append(
            f"Label step: **epoch {label_step}**"
            + (f" of {full_step}" if full_step is not None else "")
            + f": the first epoch whose {method} correlation with the final accuracy reached "
            f"{threshold} over the full-length trials; later trials stop there."
        )
    curve = attrs.get(LABEL_CORRELATION_KEY)
    if isinstance(curve, Mapping) and curve:
        steps = sorted(curve, key=lambda s: int(s))
        lines += ["", "| epoch | " + " | ".join(steps) + " |",
                  "|---" * (len(steps) + 1) + "|",
                  "| correlation | "
                  + " | ".join(format_number(curve[s], ".2f") for s in steps) + " |"]
    stopped = [t for t in trials if t.state == TrialState.PRUNED and t.last_step is not None]
    if full_step and stopped:
        saved = sum(max(0, int(full_step) - int(t.last_step)) for t in stopped)
        total = int(full_step) * sum(1 for t in trials if t.state.is_finished())
        lines.append("")
        lines.append(f"{len(stopped)} trials stopped early, saving {saved} of {total} "
                     f"epochs ({saved / max(total, 1):.0%}).")
    return lines


def _calibrating_text(study: optuna.Study, trials: list[FrozenTrial]) -> str:
    """What the early-stopping pruner waits for before it fixes the label step."""
    n_cal = getattr(study.pruner, "n_calibration_trials", None)
    done = sum(1 for t in trials if t.state == TrialState.COMPLETE and t.intermediate_values)
    if isinstance(n_cal, int) and done >= n_cal:
        # The pruner calibrates lazily, at the next trial's first report.
        return (f"Calibrating: the {n_cal} full-length calibration trials have "
                "finished; the label step is fixed when the next trial reports.")
    return (
        "Calibrating: every trial trains to full length until "
        f"{n_cal if n_cal is not None else 'the calibration'} full-length trials have "
        f"finished ({done} so far)."
    )


def _best_pairs_section(
    trials: list[FrozenTrial],
    labels: dict[int, float],
    label_step: int | None,
    space: SearchSpace | None,
    top: int,
) -> list[str]:
    """The ``top`` best labelled trials: accuracy, prediction, cost, stage, arch and recipe."""
    at = "" if label_step is None else f", epoch {label_step}"
    lines = ["", f"### Best architecture-recipe pairs (accuracy at the label step{at})", ""]
    by_number = {t.number: t for t in trials}
    best = sorted(labels, key=lambda n: (-labels[n], n))[:top]
    if not best:
        return lines + ["No labelled trials yet."]
    lines += ["| trial | accuracy | predicted | MFLOPs | k params | stage | arch | recipe |",
              "|---|---|---|---|---|---|---|---|"]
    for n in best:
        t = by_number[n]
        costs = trial_costs(t, space)
        p, s = t.user_attrs.get(PREDICTED_KEY), t.user_attrs.get(PREDICTED_STD_KEY)
        predicted = (f"{format_number(p)} ± {format_number(s, '.3f')}"
                     if finite_number(p) is not None else "–")
        mflops = None if costs["flops"] is None else costs["flops"] / 1e6
        kparams = None if costs["params"] is None else costs["params"] / 1e3
        lines.append(
            f"| {n} | **{labels[n]:.4f}** | {predicted} | {format_number(mflops, '.3f')} | "
            f"{format_number(kparams, '.1f')} | "
            f"{t.user_attrs.get(STAGE_KEY, '–')} | `{t.user_attrs.get('arch', '–')}` | "
            f"{t.user_attrs.get('recipe', '–')} |"
        )
    return lines


def _next_section(study: optuna.Study, storage_url: str | None) -> list[str]:
    """The commands that use the study next, and where the plots are."""
    where = f" --storage {storage_url}" if storage_url else ""
    return [
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


def study_summary(
    study: optuna.Study,
    *,
    space: SearchSpace | None = None,
    constraints: Mapping[str, float] | None = None,
    trials: Sequence[FrozenTrial] | None = None,
) -> dict[str, str | int | float]:
    """The study user attributes :class:`DashboardCallback` keeps: best pair, budget, label
    step and the predictor's Kendall tau, in short text."""
    snap = StudySnapshot.read(study, constraints, trials)
    labels = snap.labels
    best = "no labelled trial yet"
    if labels:
        n = min(labels, key=lambda k: (-labels[k], k))
        trial = next(t for t in snap.trials if t.number == n)
        costs = trial_costs(trial, space)
        best = f"trial {n}: {labels[n]:.4f}"
        if costs["flops"] is not None and costs["params"] is not None:
            best += f", {costs['flops'] / 1e6:.3f} MFLOPs, {costs['params'] / 1e3:.1f} k params"
    return {
        "nars:best": best,
        "nars:budget": format_budget(snap.budget),
        "nars:label_step": "pending" if snap.label_step is None else snap.label_step,
        # The same text as the note's and the predicted-vs-measured plot's title.
        "nars:predictor_kendall_tau": snap.predictor_tau,
    }


def merge_note(generated: str, previous: str) -> str:
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
