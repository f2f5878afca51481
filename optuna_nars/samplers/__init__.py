"""optuna-nars's samplers, modelled on Optuna's ``optuna.samplers``: one ground, one package
per family.

* ``_base``: :class:`BaseNASSampler <optuna_nars.samplers._base.BaseNASSampler>`, what every
  sampler of ours stands on: the relative search space, the study read as rows of a values
  matrix (``_context``), claims written to the storage before a proposal is returned so that
  concurrent workers skip it (``_claims``), resource constraints enforced before a trial
  (``_constraints``), the independent-sampling fallback, pickling.
* ``nars``: :class:`NARSSampler`, FBNetV3's architecture-recipe search.
* ``layernas``: :class:`LayerNASSampler`, LayerNAS's layer-wise search under a cost budget.
* ``parsec``: :class:`PARSECSampler`, probabilistic architecture search (PARSEC, FP-NAS).
* ``evolution``: :class:`RegularizedEvolutionSampler`, aging evolution (Real et al. 2019).
* ``reinforce``: :class:`REINFORCESampler`, NAS-Bench-201's REINFORCE baseline.

Also here: the trial and study attribute names the samplers write (from
:mod:`optuna_nars._keys`), for reading them back.
"""

from optuna_nars._keys import (
    INTERVAL_95_KEY,
    PREDICTED_KEY,
    PREDICTED_STD_KEY,
    PREDICTOR_QUALITY_KEY,
    STAGE_KEY,
)
from optuna_nars._lazy import lazy_exports

# Each family is imported on first use: a worker running RegularizedEvolutionSampler should not
# pay for NARSSampler's torch.
_EXPORTS = {
    "RegularizedEvolutionSampler": "optuna_nars.samplers.evolution",
    "LayerNASSampler": "optuna_nars.samplers.layernas",
    "NARSSampler": "optuna_nars.samplers.nars",
    "Proposal": "optuna_nars.samplers.nars",
    "StagePlan": "optuna_nars.samplers.nars",
    "Timing": "optuna_nars.samplers.nars",
    "PARSECSampler": "optuna_nars.samplers.parsec",
    "REINFORCESampler": "optuna_nars.samplers.reinforce",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

__all__ = [
    "INTERVAL_95_KEY",
    "PREDICTED_KEY",
    "PREDICTED_STD_KEY",
    "PREDICTOR_QUALITY_KEY",
    "STAGE_KEY",
    "LayerNASSampler",
    "NARSSampler",
    "PARSECSampler",
    "Proposal",
    "REINFORCESampler",
    "RegularizedEvolutionSampler",
    "StagePlan",
    "Timing",
]
