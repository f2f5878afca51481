"""CIFAR-10 and CIFAR-100 from torchvision's pickled batches (``cifar-10-batches-py/``,
``cifar-100-python/``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from optuna_nars.data.catalog import PathLike, data_root, missing_dataset

__all__ = ["CIFAR_FOLDER", "cifar_root", "load_cifar", "missing_cifar"]

_CIFAR_CLASS = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}  # torchvision class names
CIFAR_FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def cifar_root(kind: str, data_dir: PathLike | None) -> Path:
    """The directory that holds (or will hold) the extracted CIFAR folder."""
    root = data_root(data_dir)
    # Accept data_dir pointing at the extracted folder itself.
    return root.parent if root.name == CIFAR_FOLDER[kind] else root


def missing_cifar(kind: str, data_dir: PathLike | None) -> FileNotFoundError:
    """The error for an absent CIFAR folder."""
    return missing_dataset(
        kind, data_dir, f"the torchvision {_CIFAR_CLASS[kind]} folder {CIFAR_FOLDER[kind]}/",
        str(data_root(data_dir) / CIFAR_FOLDER[kind]),
    )


def load_cifar(
    kind: str, data_dir: PathLike | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training set of ``kind`` as ``uint8`` N x 3 x 32 x 32 images and ``int64`` labels."""
    import torchvision.datasets

    root = cifar_root(kind, data_dir)
    if not download and not (root / CIFAR_FOLDER[kind]).is_dir():
        raise missing_cifar(kind, data_dir)
    cls = getattr(torchvision.datasets, _CIFAR_CLASS[kind])
    try:
        ds = cls(str(root), train=True, download=download)
    except RuntimeError as e:  # torchvision's "Dataset not found or corrupted"
        raise FileNotFoundError(f"{missing_cifar(kind, data_dir)} ({e})") from e
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return images, torch.as_tensor(ds.targets, dtype=torch.int64)
