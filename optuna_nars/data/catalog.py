"""The known datasets: names, aliases, shapes, and where their files are looked up."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DATASETS",
    "DEBIAN_FASHION_MNIST",
    "PathLike",
    "data_root",
    "default_data_dir",
    "missing_dataset",
    "parse_name",
]

PathLike = str | os.PathLike[str]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100",
                             "imagefolder")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# (in_channels, num_classes, native image size) of the built-in datasets.
NATIVE: dict[str, tuple[int, int, int]] = {
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


def default_data_dir() -> Path:
    """Where datasets are looked up and downloaded without ``data_dir``: ``$OPTUNA_NARS_DATA``,
    by default ``~/.cache/optuna-nars/datasets``."""
    return Path(os.environ.get("OPTUNA_NARS_DATA", "~/.cache/optuna-nars/datasets")).expanduser()


def data_root(data_dir: PathLike | None) -> Path:
    """``data_dir`` (user-expanded), or :func:`default_data_dir` without one."""
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def parse_name(name: str, data_dir: PathLike | None) -> tuple[str, Path | None]:
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
    if key not in NATIVE:
        raise ValueError(
            f"Unknown dataset {name!r}; known: {', '.join(repr(n) for n in DATASETS)} and "
            "'folder:<path>' (a torchvision ImageFolder: one sub-directory per class)."
        )
    return key, None


def missing_dataset(
    kind: str, data_dir: PathLike | None, what: str, searched: str, advice: str = ""
) -> FileNotFoundError:
    """The error for a dataset whose files are absent: what was looked for, where, and how to
    get it (``advice`` is appended)."""
    return FileNotFoundError(
        f"Dataset {kind!r} not found: looked for {what} in {searched}. Pass "
        f"download=True to download it into {data_root(data_dir)} (needs a network), or point "
        f"data_dir at the directory that holds it.{advice}"
    )
