"""FBNetV3's accuracy predictor: an MLP whose architecture encoder is pretrained on free labels.

The predictor (Dai et al., CVPR 2021, section 3) has three parts:

* an *architecture encoder*, the architecture's encoding (one-hot choices, min-max ranges) ->
  an embedding;
* a *proxy head*, embedding -> architecture statistics that cost nothing to compute (log FLOPs,
  log parameters); it exists only to pretrain the encoder;
* an *accuracy head* on ``concat(embedding, recipe encoding)`` -> accuracy.

:class:`NARSPredictor` fits an ensemble of such networks: :meth:`~NARSPredictor.pretrain` fits
one encoder + proxy head on a few thousand architectures labelled by the cost model (done once,
memoised in a module-level cache), and :meth:`~NARSPredictor.fit` fine-tunes every member on the
measured results with a Huber loss, first with the encoder frozen, then all layers.
:meth:`~NARSPredictor.predict` returns the ensemble mean and standard deviation.

Layout:

* :mod:`~optuna_nars.predictor.network`: the torch modules (:class:`AccuracyPredictor`, built
  of :class:`EnsembleLinear` layers);
* :mod:`~optuna_nars.predictor.pretraining`: stage 1, its free labels (:func:`proxy_targets`,
  :func:`pretraining_data`, :func:`encode_split`), the :class:`PretrainedEncoder` record and the
  process-wide cache (:func:`pretrained_state`, :func:`clear_pretrain_cache`);
* :mod:`~optuna_nars.predictor.estimator`: :class:`NARSPredictor` (pretrain, fit, predict);
* :mod:`~optuna_nars.predictor.metrics`: :func:`kendall_tau_cv`, :func:`prequential_kendall_tau`.
"""

from optuna_nars.predictor.estimator import NARSPredictor
from optuna_nars.predictor.metrics import kendall_tau_cv, prequential_kendall_tau
from optuna_nars.predictor.network import AccuracyPredictor, EnsembleLinear
from optuna_nars.predictor.pretraining import (
    PretrainedEncoder,
    clear_pretrain_cache,
    encode_split,
    pretrained_state,
    pretraining_data,
    proxy_targets,
)

__all__ = [
    "AccuracyPredictor",
    "EnsembleLinear",
    "NARSPredictor",
    "PretrainedEncoder",
    "clear_pretrain_cache",
    "encode_split",
    "kendall_tau_cv",
    "prequential_kendall_tau",
    "pretrained_state",
    "pretraining_data",
    "proxy_targets",
]
