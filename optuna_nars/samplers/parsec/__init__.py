"""PARSECSampler, probabilistic architecture search (PARSEC) with FP-NAS's speed-ups.

* ``sampler``: :class:`PARSECSampler` itself: the constructor, the replay of the study and the
  draws.
* ``_distribution``: the categorical per discrete parameter, its coarse groups, priors.
* ``_update``: PARSEC's empirical-Bayes update from a batch of rewarded samples.
* ``_schedule``: the batches (fixed, or FP-NAS's entropy-adaptive size), the coarse-to-fine
  schedule, the replay of the finished trials.
"""

from optuna_nars.samplers.parsec._schedule import Schedule, Update
from optuna_nars.samplers.parsec.sampler import PARSECSampler

__all__ = ["PARSECSampler", "Schedule", "Update"]
