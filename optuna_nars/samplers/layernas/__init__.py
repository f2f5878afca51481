"""LayerNASSampler, LayerNAS's layer-wise search under a cost budget, one file per concern.

* ``sampler``: :class:`LayerNASSampler` itself: the constructor, the cost, the proposal.
* ``_layers``: how a space is cut into ordered layers, their options and the default (cheapest)
  root every layer not yet searched holds.
* ``_memo``: the cost buckets and the memo table (layer, bucket) -> best candidates, derived
  from the study's labelled trials.
"""

from optuna_nars._keys import LAYER_ATTR
from optuna_nars.samplers.layernas.sampler import LayerNASSampler

# LAYER_ATTR: the trial user attribute naming the layer a proposal expands, for reading back.
__all__ = ["LAYER_ATTR", "LayerNASSampler"]
