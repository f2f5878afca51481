"""LayerNASSampler, LayerNAS's layer-wise search under a cost budget, one file per concern.

* ``sampler``: :class:`LayerNASSampler` itself: the constructor, the cost, the proposal.
* ``_layers``: how a space is cut into ordered layers, their options and the default (cheapest)
  root every layer not yet searched holds.
* ``_memo``: the cost buckets and the memo table (layer, bucket) -> best candidates, derived
  from the study's labelled trials.
"""

from optuna_nars.samplers.layernas.sampler import LayerNASSampler

__all__ = ["LayerNASSampler"]
