"""RegularizedEvolutionSampler, aging evolution (Real et al., AAAI 2019).

* ``sampler``: :class:`RegularizedEvolutionSampler`, the constructor and the proposal.
* ``_aging``: the population (the latest trials), tournaments and one-parameter mutations.
"""

from optuna_nars.samplers.evolution.sampler import RegularizedEvolutionSampler

__all__ = ["RegularizedEvolutionSampler"]
