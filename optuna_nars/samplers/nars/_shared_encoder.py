"""NARSSampler's pretrained encoder as an artefact of the study: pretrained once, read by all.

Every worker of a study needs the same encoder (stage 1: pretrained on the free metrics of a
fixed sample of architectures), and pretraining it costs seconds of CPU. The first worker to need
it takes a lease (:data:`SHARED_ENCODER_LEASE_KEY`), pretrains, and publishes it; the others
wait for it (polling, at most until the lease expires) and read it.

**The key.** The slot is :data:`SHARED_ENCODER_PREFIX` + a digest of what the encoder was
pretrained on (:func:`encoder_digest`): the sample's encoded architectures and their proxy values
(so the space, the metrics and the seed), the predictor's settings that shape pretraining, and
the library's version. One slot per such digest, written once: a few per study at most.

**The format.** ``torch.save`` bytes of plain tensors
(:func:`~optuna_nars.predictor.pretraining.encoder_to_bytes`), base64 text behind a checksum,
chunked (:mod:`optuna_nars._storage`). They are read with ``torch.load(weights_only=True)`` and
checked against the network's names and shapes: never a pickle, so nothing in the study can run
code. A torn, foreign or malformed slot is ignored (debug log): the worker pretrains and
publishes over it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable

import numpy as np
import optuna
from optuna.study import Study

import optuna_nars
from optuna_nars._keys import SHARED_ENCODER_LEASE_KEY, SHARED_ENCODER_PREFIX
from optuna_nars._storage import get_chunked, set_study_chunked
from optuna_nars.predictor import NARSPredictor
from optuna_nars.predictor.pretraining import (
    PretrainedEncoder,
    encoder_from_bytes,
    encoder_to_bytes,
    fingerprint,
)
from optuna_nars.samplers.nars._lease import end_lease, held_by_other, read_lease, take_lease

__all__ = ["LEASE_SECONDS", "encoder_digest", "obtain_encoder"]

_logger = optuna.logging.get_logger("optuna." + __name__)

LEASE_SECONDS = 60.0  # how long others wait for a worker pretraining (seconds), or dead
_POLL_SECONDS = 0.25


def encoder_digest(predictor: NARSPredictor, arch_x: np.ndarray, proxy_y: np.ndarray) -> str:
    """The name of the encoder ``predictor`` pretrains on ``(arch_x, proxy_y)``."""
    params = predictor.get_params()
    shaping = {k: params[k] for k in ("hidden", "embedding_dim", "pretrain_epochs", "lr",
                                      "weight_decay", "pretrain_batch_size", "seed")}
    text = json.dumps([optuna_nars.__version__, shaping, fingerprint(arch_x, proxy_y)],
                      sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _checksum(payload: str) -> str:
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def _encode(encoder: PretrainedEncoder) -> str:
    payload = base64.b64encode(encoder_to_bytes(encoder)).decode("ascii")
    return f"{_checksum(payload)} {payload}"


def _decode(text: str, dims: dict[str, int]) -> PretrainedEncoder:
    """The encoder in ``text``, of dimensions ``dims`` (raises ``ValueError``)."""
    check, _, payload = text.partition(" ")
    if check != _checksum(payload):
        raise ValueError("checksum mismatch (a torn or altered write)")
    try:
        data = base64.b64decode(payload.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ValueError(f"not base64 ({e})") from None
    return encoder_from_bytes(data, **dims)


def _published(study: Study, key: str, dims: dict[str, int]
               ) -> tuple[PretrainedEncoder | None, dict | None]:
    """The encoder in slot ``key`` when readable, and the encoder lease."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    lease = read_lease(attrs, SHARED_ENCODER_LEASE_KEY)
    text = get_chunked(attrs, key)
    if text is None:
        return None, lease
    try:
        return _decode(text, dims), lease
    except ValueError as e:
        _logger.debug(f"Ignoring the study's shared encoder ({e}); pretraining here.")
        return None, lease


def obtain_encoder(
    study: Study, owner: str, digest: str, dims: dict[str, int],
    compute: Callable[[], PretrainedEncoder],
) -> tuple[PretrainedEncoder, bool]:
    """``(encoder, pretrained_here)``: the encoder ``digest`` of dimensions ``dims``
    (``arch_dim``, ``n_proxy``, ``hidden``, ``embedding_dim``), read from the study, or
    ``compute``d here and published. While another worker pretrains it, wait (at most until its
    lease expires). ``owner`` names this worker in the lease."""
    key = SHARED_ENCODER_PREFIX + digest
    while True:
        encoder, lease = _published(study, key, dims)
        if encoder is not None:
            return encoder, False
        if held_by_other(lease, digest, owner):
            time.sleep(_POLL_SECONDS)
            continue
        lease = take_lease(study, SHARED_ENCODER_LEASE_KEY, owner, digest, LEASE_SECONDS)
        if not held_by_other(lease, digest, owner):
            break
    try:
        encoder, _ = _published(study, key, dims)  # published since it was read above
        if encoder is not None:
            return encoder, False
        encoder = compute()
        set_study_chunked(study._storage, study._study_id, key, _encode(encoder))
    finally:
        end_lease(study, SHARED_ENCODER_LEASE_KEY, owner)
    return encoder, True
