"""Workers of one study share the pretrained encoder: pretrained once, read by the others, and
read as tensors only (a tampered slot is rejected, never executed)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import optuna
import torch

from optuna_nars import SearchSpace
from optuna_nars.samplers import NARSSampler

sys.path.insert(0, str(Path(__file__).parent))
from test_sampler import fast_sampler, synthetic_objective  # noqa: E402
from test_shared_fit import worker_script  # noqa: E402

# Appended to test_distributed's worker script: the steps this process timed.
REPORT = "import json\nprint(json.dumps([t.step for t in study.sampler.timings]))\n"
SLOT = "nars:encoder:"


def _steps(sampler: NARSSampler, step: str) -> int:
    return sum(t.step == step for t in sampler.timings)


def _slots(study: optuna.Study) -> dict[str, object]:
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {k: v for k, v in attrs.items() if k.startswith(SLOT)}


def test_worker_processes_pretrain_the_encoder_once(tmp_path: Path) -> None:
    script, name, storage = worker_script(tmp_path, 6, REPORT)
    steps = []
    for _ in range(2):  # one after the other: the second finds the first one's encoder
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        steps.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = steps
    assert first.count("pretrain") == 1 and "shared_encoder" not in first
    assert second.count("shared_encoder") == 1 and "pretrain" not in second
    assert "refit" in second  # it fitted with the encoder it read
    study = optuna.load_study(study_name=name, storage=storage)
    assert len(study.trials) == 12
    chunks = [k for k in _slots(study) if k.count(":") == 3]
    assert 0 < len(chunks) <= 80  # about 110 kB of text, written once


class _Payload:
    """What a malicious slot would carry: an object whose unpickling runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _text(payload: bytes) -> str:
    """``payload`` as a slot's text, behind a valid checksum (as a deliberate writer would)."""
    body = base64.b64encode(payload).decode()
    return f"{hashlib.blake2b(body.encode(), digest_size=16).hexdigest()} {body}"


def test_a_tampered_or_garbage_encoder_slot_is_rejected(tmp_path: Path) -> None:
    space = SearchSpace.tiny()
    objective = synthetic_objective(space)
    settings = dict(search_space=space, n_startup_trials=4, batch_size=3, n_rounds=2)
    storage = optuna.storages.InMemoryStorage()
    first = fast_sampler(**settings)
    study = optuna.create_study(storage=storage, direction="maximize", sampler=first)
    study.optimize(objective, n_trials=5)
    assert _steps(first, "pretrain") == 1
    (key,) = [k for k in _slots(study) if k.count(":") == 2]  # the slot's chunk count

    marker = tmp_path / "executed"
    buffer = io.BytesIO()
    torch.save({"format": _Payload(marker)}, buffer)
    tampered = [
        "0123 not even base64",  # torn
        _text(b"\x00garbage"),  # not a weights file
        _text(buffer.getvalue()),  # a pickle that would run code if it were unpickled
    ]
    for text in tampered:
        storage.set_study_system_attr(study._study_id, f"{key}:0", text)
        storage.set_study_system_attr(study._study_id, key, 1)
        fresh = fast_sampler(**settings)  # knows nothing but the storage
        fresh.search(optuna.load_study(study_name=study.study_name, storage=storage), n=1)
        assert _steps(fresh, "pretrain") == 1, text[:40]  # it pretrained for itself ...
        assert not marker.exists()
    # ... and published over the bad slot: the next worker reads it again.
    reader = fast_sampler(**settings)
    reader.search(optuna.load_study(study_name=study.study_name, storage=storage), n=1)
    assert _steps(reader, "shared_encoder") == 1 and _steps(reader, "pretrain") == 0
