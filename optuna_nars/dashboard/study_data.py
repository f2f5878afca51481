"""What the note, the plots and the trial notes read from a study, and how they show it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from optuna_nars._keys import PREDICTED_KEY, PREDICTOR_QUALITY_KEY, Stage
from optuna_nars._validation import finite_number
from optuna_nars.cost import count_flops, count_params
from optuna_nars.labels import get_label_step, trial_labels
from optuna_nars.pruner.calibration import rank_correlation

if TYPE_CHECKING:
    from optuna_nars.space import SearchSpace

__all__ = [
    "STAGE_TEXT",
    "StudySnapshot",
    "finite_number",
    "format_number",
    "kendall_tau",
    "predicted_and_measured",
    "predictor_tau_text",
    "sampler_budget",
    "trial_costs",
]

# Keyed by the stage's string value: that is what the ``nars:stage`` user attribute holds.
STAGE_TEXT = {
    Stage.QMC.value: "1. QMC warm start",
    Stage.PREDICTOR.value: "2. predictor-guided rounds",
    Stage.EVOLUTION.value: "3. adaptive genetic search",
    Stage.LAYER.value: "layer-wise expansion (LayerNAS)",
    Stage.POLICY.value: "drawn from the learnt distribution",
    Stage.RANDOM.value: "random (pool exhausted)",
    Stage.REPEAT.value: "repeat (space exhausted)",
    Stage.REMEASURE.value: "measured again (noisy objective)",
}


@dataclass(frozen=True)
class StudySnapshot:
    """What the note, the summary and the plots all start from, read once."""

    trials: list[FrozenTrial]
    labels: dict[int, float]  # trial number -> label (see ``trial_labels``)
    budget: dict[str, float]
    label_step: int | None
    system_attrs: dict[str, Any]  # the study's

    @property
    def predictor_tau(self) -> str:
        """The predictor's Kendall tau, see :func:`predictor_tau_text`."""
        return predictor_tau_text(self.system_attrs)

    @property
    def predictor_tau_method(self) -> str:
        """How that tau was measured: ``"prequential"`` (each proposal's prediction against its
        measured value) or ``"cross-validated"`` (the first refits, and older studies)."""
        quality = self.system_attrs.get(PREDICTOR_QUALITY_KEY)
        method = quality.get("kendall_tau_method") if isinstance(quality, Mapping) else None
        return method if isinstance(method, str) else "cross-validated"

    @property
    def predictor_model(self) -> str | None:
        """What the latest fit predicted with: ``"ensemble"`` or ``"gp"`` (``None`` before
        the first fit, or in studies recorded before the sampler said)."""
        quality = self.system_attrs.get(PREDICTOR_QUALITY_KEY)
        model = quality.get("model") if isinstance(quality, Mapping) else None
        return model if model in ("ensemble", "gp") else None

    @classmethod
    def read(
        cls,
        study: optuna.Study,
        constraints: Mapping[str, float] | None = None,
        trials: Sequence[FrozenTrial] | None = None,
    ) -> StudySnapshot:
        """``trials`` (default: all the study's), their labels, the budget (default: the
        sampler's) and the label step."""
        trials = list(study.get_trials(deepcopy=False) if trials is None else trials)
        return cls(
            trials=trials,
            labels=trial_labels(study, trials),
            budget=dict(constraints) if constraints is not None else sampler_budget(study),
            label_step=get_label_step(study),
            system_attrs=study._storage.get_study_system_attrs(study._study_id),
        )


def format_number(x: Any, spec: str = ".4f", missing: str = "–") -> str:
    """``x`` formatted with ``spec``, or ``missing`` if it is not a finite number."""
    v = finite_number(x)
    return missing if v is None else format(v, spec)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau of paired values; :obj:`None` when undefined (see ``rank_correlation``)."""
    return rank_correlation(np.asarray(x, dtype=float), np.asarray(y, dtype=float), "kendall")


def predicted_and_measured(
    trials: Sequence[FrozenTrial], labels: Mapping[int, float]
) -> tuple[list[FrozenTrial], float | None]:
    """The labelled trials with a finite prediction (the predictor proposed them), and Kendall's
    tau between their predicted and measured values."""
    points = [t for t in trials
              if t.number in labels and finite_number(t.user_attrs.get(PREDICTED_KEY)) is not None]
    tau = kendall_tau([t.user_attrs[PREDICTED_KEY] for t in points],
                      [labels[t.number] for t in points])
    return points, tau


def predictor_tau_text(system_attrs: Mapping[str, Any]) -> str:
    """The Kendall tau of the sampler's latest predictor refit, as the note, the
    study summary and the predicted-vs-measured plot all show it: ``"0.412"``, ``"not yet"``
    (no refit on enough labels) or ``"undefined"`` (constant labels or predictions)."""
    quality = system_attrs.get(PREDICTOR_QUALITY_KEY)
    if not isinstance(quality, Mapping) or quality.get("kendall_tau") is None:
        return "not yet"
    return format_number(quality["kendall_tau"], ".3f", missing="undefined")


def sampler_budget(study: optuna.Study) -> dict[str, float]:
    """The budget the study's sampler enforces, if it is a mapping (else none)."""
    constraints = getattr(study.sampler, "constraints", None)
    if isinstance(constraints, Mapping):
        return {k: float(v) for k, v in constraints.items()}
    return {}


def trial_costs(trial: FrozenTrial, space: SearchSpace | None) -> dict[str, float | None]:
    """FLOPs and params of a trial: its user attributes, else the cost model of ``space``."""
    out = {m: finite_number(trial.user_attrs.get(m)) for m in ("flops", "params")}
    if space is not None and None in out.values():
        try:
            arch = space.from_params(trial.params).architecture
        except (ValueError, KeyError):
            return out
        out["flops"] = out["flops"] or float(count_flops(arch, space.in_channels,
                                                         space.num_classes))
        out["params"] = out["params"] or float(count_params(arch, space.in_channels,
                                                            space.num_classes))
    return out
