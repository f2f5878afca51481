"""REINFORCESampler, NAS-Bench-201's REINFORCE baseline.

* ``sampler``: :class:`REINFORCESampler`, the constructor, the replay and the proposal.
* ``_policy``: the factorised categorical policy, its discretisation of numeric parameters and
  the REINFORCE update.
"""

from optuna_nars.samplers.reinforce.sampler import REINFORCESampler

__all__ = ["REINFORCESampler"]
