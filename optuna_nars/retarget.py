"""Re-targeting: a trained predictor answers a new budget in CPU seconds, with no training."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from optuna_nars._keys import PREDICTOR_QUALITY_KEY
from optuna_nars.cost import LatencyTable
from optuna_nars.labels import get_label_step, trial_labels
from optuna_nars.samplers import NARSSampler
from optuna_nars.space import SearchSpace

__all__ = ["retarget"]


def _params_key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, round(v, 10) if isinstance(v, float) else v)
                        for k, v in params.items()))


def retarget(
    study: optuna.Study,
    space: SearchSpace,
    budget: Mapping[str, float] | None,
    *,
    top: int = 5,
    distinct: str = "arch",
    seed: int = 0,
    latency_table: LatencyTable | None = None,
    sampler: NARSSampler | None = None,
) -> dict[str, Any]:
    """The top predicted pairs for ``budget`` as a JSON-ready report, with no training.

    A :class:`~optuna_nars.samplers.NARSSampler` over ``space`` learns from the study's labelled
    trials and searches the new budget (``optuna-nars retarget --json`` writes this report).
    ``distinct="arch"`` keeps the best recipe of each architecture; ``"pair"`` lists every pair.
    Each proposal says whether (and with which label) it was already trained. A
    ``latency_table`` of ``space`` adds ``latency_ms`` to the costs (and allows it in
    ``budget``); ``sampler`` reuses one such sampler (and its pretrained encoder) across calls.

    Raises:
        ValueError: If the study has too few labelled trials or no candidate meets ``budget``.
    """
    if sampler is None:
        sampler = NARSSampler(space, seed=seed, latency_table=latency_table)
    # Ask for more than ``top`` so that enough distinct architectures remain.
    proposals = sampler.search(study, constraints=dict(budget) if budget else None,
                               n=top if distinct == "pair" else top * 200)
    labels = trial_labels(study)
    measured = {}
    for t in study.get_trials(deepcopy=False):
        if t.number in labels:
            measured.setdefault(_params_key(t.params), (t.number, labels[t.number]))
    rows, seen = [], set()
    for p in proposals:
        assert p.candidate is not None
        arch = str(p.candidate.architecture)
        if distinct == "arch" and arch in seen:
            continue
        seen.add(arch)
        trial, value = measured.get(_params_key(p.params), (None, None))
        rows.append({
            "rank": len(rows) + 1,
            "predicted": p.predicted,
            "predicted_std": p.predicted_std,
            "interval_95": None if p.interval_95 is None else list(p.interval_95),
            "flops": p.costs.get("flops"),
            "params": p.costs.get("params"),
            "latency_ms": p.costs.get("latency_ms"),
            "arch": arch,
            "recipe": str(p.candidate.recipe),
            "trial": trial,
            "measured": value,
            "candidate": p.candidate.to_dict(),
            "optuna_params": p.params,
        })
        if len(rows) == top:
            break
    quality = study._storage.get_study_system_attrs(study._study_id).get(PREDICTOR_QUALITY_KEY)
    return {
        "study": study.study_name,
        "constraints": dict(budget or {}),
        "label_step": get_label_step(study),
        "n_labels": len(labels),
        "predictor": quality if isinstance(quality, Mapping) else None,
        "in_channels": space.in_channels,
        "num_classes": space.num_classes,
        "proposals": rows,
    }
