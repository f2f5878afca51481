"""Image-classification data for the search: a training split and a fixed validation split.

The validation split is carved from the dataset's *training* set with a fixed seed (stratified by
class), so a search never looks at the test set. Small datasets are held in memory as ``uint8``
tensors (:class:`ImageTensorDataset`) and normalised on access, which keeps an epoch cheap and
lets the trainer gather and normalise whole batches on the device.

Known datasets (``load_dataset(name)``):

* ``"digits"``: scikit-learn's bundled 8x8 greyscale digits (1797 images, 10 classes). It needs
  no files and no network: the default for tests and quick starts.
* ``"mnist"``, ``"fashion-mnist"``: 28x28 greyscale, 10 classes, from IDX files (``.gz`` or
  not) in ``data_dir`` or torchvision's layout ``data_dir/MNIST/raw`` (``FashionMNIST/raw``).
  Without ``data_dir``, Fashion-MNIST is also found in ``/usr/share/datasets/fashion-mnist``
  (Debian package ``dataset-fashion-mnist``).
* ``"cifar10"``, ``"cifar100"``: 32x32 RGB via torchvision's classes, from ``data_dir``.
* ``"folder:<path>"`` (or ``"imagefolder"`` with ``data_dir=<path>``): a torchvision
  ``ImageFolder`` (one sub-directory per class), resized to ``image_size`` x ``image_size``.

Files are downloaded only with ``download=True``. Without ``data_dir`` the files are looked up in
(and downloaded to) ``$OPTUNA_NARS_DATA``, by default ``~/.cache/optuna-nars/datasets``.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

__all__ = [
    "DATASETS",
    "DEBIAN_FASHION_MNIST",
    "DataSplits",
    "DatasetInfo",
    "ImageTensorDataset",
    "check_split_args",
    "dataset_info",
    "default_data_dir",
    "load_dataset",
]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100",
                             "imagefolder")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# (in_channels, num_classes, native image size) of the built-in datasets.
_NATIVE: dict[str, tuple[int, int, int]] = {
    "digits": (1, 10, 8),
    "mnist": (1, 10, 28),
    "fashion-mnist": (1, 10, 28),
    "cifar10": (3, 10, 32),
    "cifar100": (3, 100, 32),
}
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "cifar-100": "cifar100",
    "cifar_100": "cifar100",
    "image-folder": "imagefolder",
    "folder": "imagefolder",
}
_IDX_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}  # torchvision class names
_CIFAR_CLASS = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}
_CIFAR_FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
# Folder datasets are decoded lazily, so their statistics are not measured: ImageNet's.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

PathLike = str | os.PathLike[str]


def default_data_dir() -> Path:
    """Where datasets are looked up and downloaded without ``data_dir``: ``$OPTUNA_NARS_DATA``,
    by default ``~/.cache/optuna-nars/datasets``."""
    return Path(os.environ.get("OPTUNA_NARS_DATA", "~/.cache/optuna-nars/datasets")).expanduser()


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


class ImageTensorDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images held in memory as ``uint8`` (N x C x H x W) with ``int64`` labels.

    ``dataset[i]`` is ``(image, label)``: a normalised float32 C x H x W tensor and an ``int``.
    ``mean`` and ``std`` (one per channel) are in the units of the stored pixels (0..255, or
    0..16 for digits). Trainers use :attr:`images`, :attr:`labels` and :meth:`normalize` to
    gather and normalise whole batches at once; ``uint8`` storage takes a quarter of the memory
    and device transfer of float32.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: Sequence[float] | torch.Tensor,
        std: Sequence[float] | torch.Tensor,
    ) -> None:
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(
                f"images must be N x C x H x W with one label each, got {tuple(images.shape)} "
                f"and {len(labels)} labels."
            )
        self.images = images
        self.labels = labels.to(torch.int64)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device)
        # A constant channel would divide by zero.
        self.std = torch.as_tensor(std, dtype=torch.float32, device=images.device).clamp_min(1e-6)
        if self.mean.shape != (images.shape[1],) or self.std.shape != (images.shape[1],):
            raise ValueError(f"mean and std need one value per channel ({images.shape[1]}).")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.normalize(self.images[index]), int(self.labels[index])

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Float32 ``(images - mean) / std`` of a C x H x W image or a N x C x H x W batch on
        this dataset's device."""
        shape = (-1, 1, 1)
        return (images.float() - self.mean.view(shape)) / self.std.view(shape)

    def to(self, device: str | torch.device) -> ImageTensorDataset:
        """The same data on ``device`` (``self`` when already there)."""
        device = torch.device(device)
        if self.images.device == device:
            return self
        return ImageTensorDataset(
            self.images.to(device), self.labels.to(device), self.mean.to(device),
            self.std.to(device),
        )

    def __repr__(self) -> str:
        return f"ImageTensorDataset(n={len(self)}, image={tuple(self.images.shape[1:])})"


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset looks like, known without loading it."""

    name: str
    in_channels: int
    num_classes: int
    image_size: int


@dataclass(frozen=True)
class DataSplits:
    """A training split and a validation split carved from the dataset's training set.

    ``train`` and ``val`` yield ``(normalised float C x H x W image, int label)``;
    ``image_size`` is the native height (= width) of the images, before the trainer resizes them
    to a candidate's resolution.
    """

    train: Dataset
    val: Dataset
    num_classes: int
    in_channels: int
    name: str
    image_size: int


# --------------------------------------------------------------------------------------------
# Names and files
# --------------------------------------------------------------------------------------------


def _parse_name(name: str, data_dir: PathLike | None) -> tuple[str, Path | None]:
    """Canonical dataset kind and, for folder datasets, the folder."""
    if not isinstance(name, str):
        raise TypeError(f"dataset must be a name (str), got {type(name).__name__}.")
    if name.startswith("folder:"):
        path = name[len("folder:"):]
        if not path:
            raise ValueError("'folder:<path>' needs a path, e.g. 'folder:/data/flowers/train'.")
        return "imagefolder", Path(path).expanduser()
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key == "imagefolder":
        if data_dir is None:
            raise ValueError(
                "dataset 'imagefolder' needs data_dir=<folder with one sub-directory per class> "
                "(or pass dataset='folder:<path>')."
            )
        return key, Path(data_dir).expanduser()
    if key not in _NATIVE:
        raise ValueError(
            f"Unknown dataset {name!r}; known: {', '.join(repr(n) for n in DATASETS)} and "
            "'folder:<path>' (a torchvision ImageFolder: one sub-directory per class)."
        )
    return key, None


def _idx_files(kind: str, data_dir: PathLike | None) -> tuple[Path, Path] | None:
    """The training images and labels IDX files of MNIST / Fashion-MNIST, if present."""
    roots = [Path(data_dir).expanduser()] if data_dir is not None else [default_data_dir()]
    dirs = [d for root in roots for d in (root, root / _IDX_CLASS[kind] / "raw")]
    if data_dir is None and kind == "fashion-mnist":
        dirs.append(DEBIAN_FASHION_MNIST)
    for directory in dirs:
        for suffix in ("", ".gz"):
            images = directory / f"train-images-idx3-ubyte{suffix}"
            labels = directory / f"train-labels-idx1-ubyte{suffix}"
            if images.is_file() and labels.is_file():
                return images, labels
    return None


def _searched(kind: str, data_dir: PathLike | None) -> str:
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if kind in _IDX_CLASS:
        places = [str(root), str(root / _IDX_CLASS[kind] / "raw")]
        if data_dir is None and kind == "fashion-mnist":
            places.append(str(DEBIAN_FASHION_MNIST))
        return ", ".join(places)
    return str(root / _CIFAR_FOLDER[kind])


def _missing(kind: str, data_dir: PathLike | None) -> FileNotFoundError:
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if kind in _IDX_CLASS:
        what = "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]"
    else:
        what = f"the torchvision {_CIFAR_CLASS[kind]} folder {_CIFAR_FOLDER[kind]}/"
    debian = (
        " On Debian/Ubuntu, `apt-get install dataset-fashion-mnist` installs the files in "
        f"{DEBIAN_FASHION_MNIST}, found without data_dir."
        if kind == "fashion-mnist" else ""
    )
    return FileNotFoundError(
        f"Dataset {kind!r} not found: looked for {what} in {_searched(kind, data_dir)}. Pass "
        f"download=True to download it into {root} (needs a network), or point data_dir at the "
        f"directory that holds it.{debian}"
    )


def _cifar_root(kind: str, data_dir: PathLike | None) -> Path:
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    # Accept data_dir pointing at the extracted folder itself.
    return root.parent if root.name == _CIFAR_FOLDER[kind] else root


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
    kind, folder = _parse_name(name, data_dir)
    if kind == "imagefolder":
        assert folder is not None
        _check_image_size(image_size)
        return DatasetInfo(f"folder:{folder}", 3, len(_folder_classes(folder)), image_size)
    if not download:
        if kind in _IDX_CLASS and _idx_files(kind, data_dir) is None:
            raise _missing(kind, data_dir)
        if kind in _CIFAR_FOLDER and not (
            _cifar_root(kind, data_dir) / _CIFAR_FOLDER[kind]
        ).is_dir():
            raise _missing(kind, data_dir)
    in_channels, num_classes, size = _NATIVE[kind]
    return DatasetInfo(kind, in_channels, num_classes, size)


def _check_image_size(image_size: int) -> None:
    if not (isinstance(image_size, int) and image_size >= 1):
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}.")


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array (the MNIST file format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (MNIST format).")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are integers 0..16: uint8 holds them exactly.
    images = torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1)
    return images, torch.from_numpy(digits.target.astype(np.int64))


def _load_idx(
    kind: str, data_dir: PathLike | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    files = _idx_files(kind, data_dir)
    if files is not None:
        images, labels = (_read_idx(p) for p in files)
        if len(images) != len(labels):
            raise ValueError(f"{files[0]} and {files[1]} hold different numbers of items.")
        return (torch.from_numpy(images.copy()).unsqueeze(1),
                torch.from_numpy(labels.astype(np.int64)))
    if not download:
        raise _missing(kind, data_dir)
    import torchvision.datasets

    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    cls = getattr(torchvision.datasets, _IDX_CLASS[kind])
    ds = cls(str(root), train=True, download=True)
    return ds.data.to(torch.uint8).unsqueeze(1), torch.as_tensor(ds.targets, dtype=torch.int64)


def _load_cifar(
    kind: str, data_dir: PathLike | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets

    root = _cifar_root(kind, data_dir)
    if not download and not (root / _CIFAR_FOLDER[kind]).is_dir():
        raise _missing(kind, data_dir)
    cls = getattr(torchvision.datasets, _CIFAR_CLASS[kind])
    try:
        ds = cls(str(root), train=True, download=download)
    except RuntimeError as e:  # torchvision's "Dataset not found or corrupted"
        raise FileNotFoundError(f"{_missing(kind, data_dir)} ({e})") from e
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return images, torch.as_tensor(ds.targets, dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def _stratified(
    indices: np.ndarray, labels: np.ndarray, take: int | float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (rest, taken); ``take`` is a count or a fraction. Stratified by
    label when every class can be split, otherwise plain random."""
    from sklearn.model_selection import train_test_split

    try:
        rest, taken = train_test_split(
            indices, test_size=take, random_state=seed, stratify=labels
        )
    except ValueError:
        # Too few images of some class to stratify (tiny max_train_samples).
        rest, taken = train_test_split(indices, test_size=take, random_state=seed)
    return np.sort(rest), np.sort(taken)


def _split(
    labels: np.ndarray, val_fraction: float, seed: int, max_train_samples: int | None
) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(len(labels))
    if max_train_samples is not None and max_train_samples < len(indices):
        _, indices = _stratified(indices, labels, max_train_samples, seed)
    n_val = int(np.ceil(val_fraction * len(indices)))
    if n_val < 1 or n_val >= len(indices):
        raise ValueError(
            f"val_fraction={val_fraction} of {len(indices)} images leaves an empty split; "
            "raise max_train_samples or choose val_fraction so that both splits are non-empty."
        )
    return _stratified(indices, labels[indices], n_val, seed)


def _channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, exactly, from one histogram per channel (no
    float copy of the whole set)."""
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = counts.sum()
        mean = (counts * values).sum() / n
        var = (counts * (values - mean) ** 2).sum() / n
        means.append(float(mean))
        stds.append(float(var.sqrt()))
    return means, stds


def check_split_args(val_fraction: float, max_train_samples: int | None) -> None:
    """Validate :func:`load_dataset`'s ``val_fraction`` and ``max_train_samples``."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}.")
    if max_train_samples is not None and not (
        isinstance(max_train_samples, int) and max_train_samples >= 2
    ):
        raise ValueError(
            f"max_train_samples must be None or an integer >= 2, got {max_train_samples!r}."
        )


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
            ``"folder:<path>"``, or ``"imagefolder"`` with ``data_dir`` (see the module doc).
        data_dir: Where the files are (default: :func:`default_data_dir`, and for Fashion-MNIST
            also the Debian package's directory).
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
    kind, folder = _parse_name(name, data_dir)
    check_split_args(val_fraction, max_train_samples)
    if kind == "imagefolder":
        assert folder is not None
        return _load_folder(folder, val_fraction, seed, max_train_samples, image_size)
    if kind == "digits":
        images, labels = _load_digits()
    elif kind in _IDX_CLASS:
        images, labels = _load_idx(kind, data_dir, download)
    else:
        images, labels = _load_cifar(kind, data_dir, download)
    train_idx, val_idx = _split(labels.numpy(), val_fraction, seed, max_train_samples)
    train_idx, val_idx = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    mean, std = _channel_stats(images[train_idx])
    in_channels, num_classes, size = _NATIVE[kind]
    return DataSplits(
        train=ImageTensorDataset(images[train_idx], labels[train_idx], mean, std),
        val=ImageTensorDataset(images[val_idx], labels[val_idx], mean, std),
        num_classes=num_classes,
        in_channels=in_channels,
        name=kind,
        image_size=size,
    )


def _load_folder(
    folder: Path, val_fraction: float, seed: int, max_train_samples: int | None, image_size: int
) -> DataSplits:
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    _check_image_size(image_size)
    classes = _folder_classes(folder)
    transform = v2.Compose([
        v2.ToImage(),
        v2.Resize((image_size, image_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(_IMAGENET_MEAN, _IMAGENET_STD),
    ])
    # ImageFolder opens images with PIL and converts them to RGB: always 3 channels.
    ds = ImageFolder(str(folder), transform=transform)
    train_idx, val_idx = _split(np.asarray(ds.targets), val_fraction, seed, max_train_samples)
    return DataSplits(
        train=Subset(ds, train_idx.tolist()),
        val=Subset(ds, val_idx.tolist()),
        num_classes=len(classes),
        in_channels=3,
        name=f"folder:{folder}",
        image_size=image_size,
    )
