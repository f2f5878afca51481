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

Layout of the package:

* ``loading``: :func:`load_dataset` and :func:`dataset_info`, which dispatch on the name;
* ``catalog``: the known names, their aliases and shapes, where files are looked up, and the
  error for absent files;
* ``digits``, ``idx`` (MNIST, Fashion-MNIST), ``cifar``, ``folder``: one reader per source;
* ``dataset``: the containers (:class:`ImageTensorDataset`, :class:`DatasetInfo`,
  :class:`DataSplits`);
* ``splits``: the stratified validation split, argument checks, channel statistics.
"""

from __future__ import annotations

from optuna_nars._lazy import lazy_exports

# Loaded on first use: the names in ``catalog`` need no torch (the CLI's --help lists them).
_EXPORTS = {
    "DATASETS": "optuna_nars.data.catalog",
    "DEBIAN_FASHION_MNIST": "optuna_nars.data.catalog",
    "PathLike": "optuna_nars.data.catalog",
    "default_data_dir": "optuna_nars.data.catalog",
    "DataSplits": "optuna_nars.data.dataset",
    "DatasetInfo": "optuna_nars.data.dataset",
    "ImageTensorDataset": "optuna_nars.data.dataset",
    "dataset_info": "optuna_nars.data.loading",
    "load_dataset": "optuna_nars.data.loading",
    "check_split_args": "optuna_nars.data.splits",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

__all__ = [
    "DATASETS",
    "DEBIAN_FASHION_MNIST",
    "DataSplits",
    "DatasetInfo",
    "ImageTensorDataset",
    "PathLike",
    "check_split_args",
    "dataset_info",
    "default_data_dir",
    "load_dataset",
]
