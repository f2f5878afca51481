"""optuna-nars: FBNetV3's Neural Architecture-Recipe Search (NARS) for Optuna.

The public names are importable from here (``from optuna_nars import NARSSampler``) and are
loaded on first use, so that ``optuna-nars --help`` and a look at a search space do not pay for
importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna_nars._lazy import lazy_exports

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Architecture": "optuna_nars.candidate",
    "Candidate": "optuna_nars.candidate",
    "Recipe": "optuna_nars.candidate",
    "StageArch": "optuna_nars.candidate",
    "Choice": "optuna_nars.space",
    "FloatRange": "optuna_nars.space",
    "IntRange": "optuna_nars.space",
    "ParamSpace": "optuna_nars.space",
    "RecipeSpec": "optuna_nars.space",
    "SearchSpace": "optuna_nars.space",
    "StageSpec": "optuna_nars.space",
    "count_flops": "optuna_nars.cost",
    "count_params": "optuna_nars.cost",
    "space_costs": "optuna_nars.cost",
    "LatencyTable": "optuna_nars.cost",
    "family": "optuna_nars.model_family",
    "build_model": "optuna_nars.models",
    "NARSPredictor": "optuna_nars.predictor",
    "NARSSampler": "optuna_nars.samplers",
    "LayerNASSampler": "optuna_nars.samplers",
    "PARSECSampler": "optuna_nars.samplers",
    "Proposal": "optuna_nars.samplers",
    "StagePlan": "optuna_nars.samplers",
    "REINFORCESampler": "optuna_nars.samplers",
    "RegularizedEvolutionSampler": "optuna_nars.samplers",
    "EarlyStoppingPruner": "optuna_nars.pruner",
    "get_label_step": "optuna_nars.labels",
    "trial_labels": "optuna_nars.labels",
    "load_dataset": "optuna_nars.data",
    "ClassificationObjective": "optuna_nars.training",
    "TrainResult": "optuna_nars.training",
    "train_candidate": "optuna_nars.training",
    "DashboardCallback": "optuna_nars.dashboard",
    "build_from_export": "optuna_nars.export",
    "export_trial": "optuna_nars.export",
    "load_candidate": "optuna_nars.export",
    "retarget": "optuna_nars.retarget",
    "fail_stale_trials": "optuna_nars.stale",
    "release_stale_trial": "optuna_nars.stale",
}

__all__ = [
    "Architecture",
    "Candidate",
    "Choice",
    "ClassificationObjective",
    "DashboardCallback",
    "EarlyStoppingPruner",
    "FloatRange",
    "IntRange",
    "LatencyTable",
    "LayerNASSampler",
    "NARSPredictor",
    "NARSSampler",
    "PARSECSampler",
    "ParamSpace",
    "Proposal",
    "REINFORCESampler",
    "Recipe",
    "RecipeSpec",
    "RegularizedEvolutionSampler",
    "SearchSpace",
    "StageArch",
    "StagePlan",
    "StageSpec",
    "TrainResult",
    "build_from_export",
    "build_model",
    "count_flops",
    "count_params",
    "export_trial",
    "fail_stale_trials",
    "family",
    "get_label_step",
    "load_candidate",
    "load_dataset",
    "release_stale_trial",
    "retarget",
    "space_costs",
    "train_candidate",
    "trial_labels",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from optuna_nars.candidate import Architecture, Candidate, Recipe, StageArch
    from optuna_nars.cost import LatencyTable, count_flops, count_params, space_costs
    from optuna_nars.dashboard import DashboardCallback
    from optuna_nars.data import load_dataset
    from optuna_nars.export import build_from_export, export_trial, load_candidate
    from optuna_nars.labels import get_label_step, trial_labels
    from optuna_nars.model_family import family
    from optuna_nars.models import build_model
    from optuna_nars.predictor import NARSPredictor
    from optuna_nars.pruner import EarlyStoppingPruner
    from optuna_nars.retarget import retarget
    from optuna_nars.samplers import (
        LayerNASSampler,
        NARSSampler,
        PARSECSampler,
        Proposal,
        RegularizedEvolutionSampler,
        REINFORCESampler,
        StagePlan,
    )
    from optuna_nars.space import (
        Choice,
        FloatRange,
        IntRange,
        ParamSpace,
        RecipeSpec,
        SearchSpace,
        StageSpec,
    )
    from optuna_nars.stale import fail_stale_trials, release_stale_trial
    from optuna_nars.training import ClassificationObjective, TrainResult, train_candidate
