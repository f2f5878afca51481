"""Loading a dataset by name: :func:`load_dataset` and, without loading, :func:`dataset_info`."""

from __future__ import annotations

import torch

from optuna_nars.data.catalog import NATIVE, PathLike, parse_name
from optuna_nars.data.cifar import CIFAR_FOLDER, cifar_root, load_cifar, missing_cifar
from optuna_nars.data.dataset import DatasetInfo, DataSplits, ImageTensorDataset
from optuna_nars.data.digits import load_digits
from optuna_nars.data.folder import folder_info, load_folder
from optuna_nars.data.idx import IDX_CLASS, find_idx_files, load_idx, missing_idx
from optuna_nars.data.splits import channel_stats, check_split_args, split_indices

__all__ = ["dataset_info", "load_dataset"]


def dataset_info(
    name: str,
    *,
    data_dir: PathLike | None = None,
    download: bool = False,
    image_size: int = 32,
) -> DatasetInfo:
    """Channels, classes and image size of a dataset without loading it.

    Raises the errors :func:`load_dataset` would for an unknown name or missing files (unless
    ``download=True``), so an objective can fail fast, before a study starts.
    """
    kind, folder = parse_name(name, data_dir)
    if kind == "imagefolder":
        assert folder is not None
        return folder_info(folder, image_size)
    if not download:
        if kind in IDX_CLASS and find_idx_files(kind, data_dir) is None:
            raise missing_idx(kind, data_dir)
        if kind in CIFAR_FOLDER and not (cifar_root(kind, data_dir) / CIFAR_FOLDER[kind]).is_dir():
            raise missing_cifar(kind, data_dir)
    in_channels, num_classes, size = NATIVE[kind]
    return DatasetInfo(kind, in_channels, num_classes, size)


def load_dataset(
    name: str,
    *,
    data_dir: PathLike | None = None,
    download: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_train_samples: int | None = None,
    image_size: int = 32,
) -> DataSplits:
    """Load a dataset's training set and split it into training and validation splits.

    Args:
        name: ``"digits"``, ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"cifar100"``,
            ``"folder:<path>"``, or ``"imagefolder"`` with ``data_dir`` (see
            :mod:`optuna_nars.data`).
        data_dir: Where the files are (default:
            :func:`~optuna_nars.data.default_data_dir`, and for Fashion-MNIST also the Debian
            package's directory).
        download: Download missing torchvision datasets into ``data_dir`` (needs a network).
            Without it a missing dataset raises :class:`FileNotFoundError` saying where it was
            looked for.
        val_fraction: Share of the (possibly capped) training set held out for validation.
        seed: Seeds the subsampling and the validation split, which are stratified by class.
        max_train_samples: Use a stratified subset of at most this many images of the training
            set, *before* the validation split is carved from it: the train split then holds
            about ``(1 - val_fraction) * max_train_samples`` images.
        image_size: Folder datasets only: images are resized to ``image_size`` x
            ``image_size`` (the built-in sets keep their native size; the trainer resizes
            batches to each candidate's resolution).

    The in-memory datasets (all but folders) are :class:`ImageTensorDataset` normalised with
    per-channel statistics of the train split; folder datasets are lazily decoded
    ``torch.utils.data.Subset`` of one ``ImageFolder`` normalised with ImageNet's statistics.
    The test set is never loaded.
    """
    kind, folder = parse_name(name, data_dir)
    check_split_args(val_fraction, max_train_samples)
    if kind == "imagefolder":
        assert folder is not None
        return load_folder(folder, val_fraction, seed, max_train_samples, image_size)
    if kind == "digits":
        images, labels = load_digits()
    elif kind in IDX_CLASS:
        images, labels = load_idx(kind, data_dir, download)
    else:
        images, labels = load_cifar(kind, data_dir, download)
    train_idx, val_idx = split_indices(labels.numpy(), val_fraction, seed, max_train_samples)
    train_idx, val_idx = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    mean, std = channel_stats(images[train_idx])
    in_channels, num_classes, size = NATIVE[kind]
    return DataSplits(
        train=ImageTensorDataset(images[train_idx], labels[train_idx], mean, std),
        val=ImageTensorDataset(images[val_idx], labels[val_idx], mean, std),
        num_classes=num_classes,
        in_channels=in_channels,
        name=kind,
        image_size=size,
    )
