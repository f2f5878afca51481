"""Image folders (torchvision's ``ImageFolder`` layout: one sub-directory per class).

Folder images are decoded lazily, on access, and resized to ``image_size``; their statistics
are not measured, so they are normalised with ImageNet's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from optuna_nars._validation import check_int
from optuna_nars.data.dataset import DatasetInfo, DataSplits
from optuna_nars.data.splits import split_indices

__all__ = ["folder_info", "load_folder"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _folder_classes(path: Path) -> list[str]:
    from torchvision.datasets.folder import find_classes

    if not path.is_dir():
        raise FileNotFoundError(
            f"Image folder {str(path)!r} does not exist or is not a directory; point "
            "'folder:<path>' (or data_dir with 'imagefolder') at a directory with one "
            "sub-directory of images per class."
        )
    try:
        classes, _ = find_classes(str(path))
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"Image folder {str(path)!r} has no class sub-directories: it needs one "
            "sub-directory of images per class (torchvision ImageFolder layout)."
        ) from e
    return classes


def folder_info(folder: Path, image_size: int) -> DatasetInfo:
    """What the folder dataset looks like once resized: RGB, one class per sub-directory."""
    check_int("image_size", image_size, minimum=1)
    return DatasetInfo(f"folder:{folder}", 3, len(_folder_classes(folder)), image_size)


def load_folder(
    folder: Path, val_fraction: float, seed: int, max_train_samples: int | None, image_size: int
) -> DataSplits:
    """Split one lazily decoded ``ImageFolder`` into ``Subset`` splits."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    check_int("image_size", image_size, minimum=1)
    classes = _folder_classes(folder)
    transform = v2.Compose([
        v2.ToImage(),
        v2.Resize((image_size, image_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(_IMAGENET_MEAN, _IMAGENET_STD),
    ])
    # ImageFolder opens images with PIL and converts them to RGB: always 3 channels.
    ds = ImageFolder(str(folder), transform=transform)
    train_idx, val_idx = split_indices(np.asarray(ds.targets), val_fraction, seed,
                                       max_train_samples)
    return DataSplits(
        train=Subset(ds, train_idx.tolist()),
        val=Subset(ds, val_idx.tolist()),
        num_classes=len(classes),
        in_channels=3,
        name=f"folder:{folder}",
        image_size=image_size,
    )
