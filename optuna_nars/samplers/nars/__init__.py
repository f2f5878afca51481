"""NARSSampler, FBNetV3's Neural Architecture-Recipe Search, in one file per concern.

* ``sampler``: :class:`NARSSampler` itself: the constructor, and the proposal wiring the pieces.
* ``_schedule``: :class:`StagePlan` (the stages by trial number), the refit schedule, the
  trust-region alternation.
* ``_fitting``: this process's fitting for one sampler (:class:`Fitter`): the pretrained
  predictor, the fits on labelled trials cached by what they were fitted on, their rankings
  at every trust weight, shared through the study.
* ``_model``: the predictor: pretraining on free labels, fitting on the labels' normal scores,
  the fit record (predictions back on the objective's scale, distance to measured pairs).
* ``_scale``: predicted normal scores back on the objective's scale, monotone beyond the labels.
* ``_acquisition``: scoring the pool (expected improvement, or mean + w * std), the genetic
  search over the predictor, and the neighbourhoods of the best measured pairs
  (``_neighbours``).
* ``_pareto``: multi-objective studies: free objectives computed, the learned one predicted,
  proposals by predicted hypervolume improvement.
* ``_state``: the per-process state of a space (pool, predictors, fits, the multi-objective
  cache) and the timings.
* ``_search``: re-targeting a study to a new budget (:class:`Proposal` s, no training).
* ``_shared_fit``, ``_ranked``, ``_shared_encoder``, ``_lease``: what workers of one study share
  through it (each fit's rankings, the pretrained encoder) and the leases that make one worker
  compute each.
"""

from optuna_nars.samplers.nars._schedule import StagePlan
from optuna_nars.samplers.nars._search import Proposal
from optuna_nars.samplers.nars.sampler import NARSSampler, Timing

__all__ = ["NARSSampler", "Proposal", "StagePlan", "Timing"]
