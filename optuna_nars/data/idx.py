"""MNIST and Fashion-MNIST from IDX files (``.gz`` or not).

The files are looked up in ``data_dir``, in torchvision's layout ``data_dir/MNIST/raw``
(``FashionMNIST/raw``) and, for Fashion-MNIST without ``data_dir``, in the directory of the
Debian package ``dataset-fashion-mnist``. Only ``download=True`` reaches for torchvision's
downloader.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from optuna_nars.data.catalog import DEBIAN_FASHION_MNIST, PathLike, data_root, missing_dataset

__all__ = ["IDX_CLASS", "find_idx_files", "load_idx", "missing_idx", "read_idx"]

IDX_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}  # torchvision class names


def _directories(kind: str, data_dir: PathLike | None) -> list[Path]:
    """Where the IDX files of ``kind`` may be, in the order they are looked up."""
    root = data_root(data_dir)
    directories = [root, root / IDX_CLASS[kind] / "raw"]
    if data_dir is None and kind == "fashion-mnist":
        directories.append(DEBIAN_FASHION_MNIST)
    return directories


def find_idx_files(kind: str, data_dir: PathLike | None) -> tuple[Path, Path] | None:
    """The training images and labels IDX files of MNIST / Fashion-MNIST, if present."""
    for directory in _directories(kind, data_dir):
        for suffix in ("", ".gz"):
            images = directory / f"train-images-idx3-ubyte{suffix}"
            labels = directory / f"train-labels-idx1-ubyte{suffix}"
            if images.is_file() and labels.is_file():
                return images, labels
    return None


def missing_idx(kind: str, data_dir: PathLike | None) -> FileNotFoundError:
    """The error for absent IDX files, naming every directory looked in."""
    debian = (
        " On Debian/Ubuntu, `apt-get install dataset-fashion-mnist` installs the files in "
        f"{DEBIAN_FASHION_MNIST}, found without data_dir."
        if kind == "fashion-mnist" else ""
    )
    return missing_dataset(
        kind, data_dir, "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]",
        ", ".join(str(d) for d in _directories(kind, data_dir)), debian,
    )


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array (the MNIST file format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (MNIST format).")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_idx(
    kind: str, data_dir: PathLike | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training set of ``kind`` as ``uint8`` N x 1 x 28 x 28 images and ``int64`` labels."""
    files = find_idx_files(kind, data_dir)
    if files is not None:
        images, labels = (read_idx(p) for p in files)
        if len(images) != len(labels):
            raise ValueError(f"{files[0]} and {files[1]} hold different numbers of items.")
        return (torch.from_numpy(images.copy()).unsqueeze(1),
                torch.from_numpy(labels.astype(np.int64)))
    if not download:
        raise missing_idx(kind, data_dir)
    import torchvision.datasets

    cls = getattr(torchvision.datasets, IDX_CLASS[kind])
    ds = cls(str(data_root(data_dir)), train=True, download=True)
    return ds.data.to(torch.uint8).unsqueeze(1), torch.as_tensor(ds.targets, dtype=torch.int64)
