"""Stage 3 of NARS: an adaptive genetic algorithm over the accuracy predictor.

FBNetV3 (Dai et al., CVPR 2021) seeds a genetic search with stage 2's best architecture-recipe
pairs and evolves them against the predictor, within the resource constraints, until the best
predicted score stops improving. Crossover and mutation rates adapt per individual as in
Srinivas & Patnaik (IEEE T-SMC 24(4), 1994): good individuals are disrupted less, below-average
ones always, which keeps diversity without losing the best.

Everything works on the values matrix of a :class:`~optuna_nars.space.ParamSpace`; mutations go
through the unit cube (``to_unit`` / ``from_unit``), so children always lie inside the space.

Layout:

* :mod:`~optuna_nars.evolution.probabilities`: the adaptive rates
  (:func:`adaptive_probability`, :func:`crossover_probability`, :func:`mutation_probability`);
* :mod:`~optuna_nars.evolution.operators`: selection, crossover, mutation, and breeding pairs;
* :mod:`~optuna_nars.evolution.search`: :func:`adaptive_genetic_search`, the generations.
"""

from optuna_nars.evolution.probabilities import (
    adaptive_probability,
    crossover_probability,
    mutation_probability,
)
from optuna_nars.evolution.search import adaptive_genetic_search

__all__ = [
    "adaptive_genetic_search",
    "adaptive_probability",
    "crossover_probability",
    "mutation_probability",
]
