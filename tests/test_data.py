from __future__ import annotations

import gzip
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from optuna_nars.data import (
    DEBIAN_FASHION_MNIST,
    DataSplits,
    ImageTensorDataset,
    dataset_info,
    load_dataset,
)

_DEBIAN_FILES = [
    DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz",
    DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz",
]
needs_debian_fashion_mnist = pytest.mark.skipif(
    not all(p.is_file() for p in _DEBIAN_FILES),
    reason=f"Fashion-MNIST files absent from {DEBIAN_FASHION_MNIST} "
    "(apt-get install dataset-fashion-mnist)",
)


def _items(ds: ImageTensorDataset) -> Counter:
    return Counter(
        (img.numpy().tobytes(), int(label)) for img, label in zip(ds.images, ds.labels, strict=True)
    )


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_dataset("digits")


def test_digits_splits(digits: DataSplits) -> None:
    assert (digits.name, digits.num_classes, digits.in_channels, digits.image_size) == (
        "digits", 10, 1, 8)
    assert len(digits.train) + len(digits.val) == 1797
    assert len(digits.val) == 360  # ceil(0.2 * 1797)
    image, label = digits.train[0]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < 10
    # Normalised with the train split's own statistics.
    train = digits.train.normalize(digits.train.images)
    assert abs(float(train.mean())) < 1e-4 and abs(float(train.std()) - 1) < 1e-3
    assert torch.equal(image, digits.train.normalize(digits.train.images[0]))


def test_split_is_a_stratified_partition_of_the_training_set(digits: DataSplits) -> None:
    from sklearn.datasets import load_digits

    full = load_digits()
    pairs = zip(full.images.astype(np.uint8), full.target, strict=True)
    everything = Counter((img.tobytes(), int(y)) for img, y in pairs)
    # Train and val together are exactly the dataset, each image once: disjoint and complete.
    assert _items(digits.train) + _items(digits.val) == everything
    val_share = np.bincount(digits.val.labels.numpy()) / np.bincount(full.target)
    assert np.all(np.abs(val_share - 0.2) < 0.03)


def test_split_is_reproducible_and_seeded(digits: DataSplits) -> None:
    again = load_dataset("digits", seed=0)
    assert torch.equal(again.val.images, digits.val.images)
    assert torch.equal(again.train.labels, digits.train.labels)
    other = load_dataset("digits", seed=1)
    assert not torch.equal(other.val.images, digits.val.images)


def test_max_train_samples_and_val_fraction() -> None:
    data = load_dataset("digits", max_train_samples=200, val_fraction=0.25)
    assert (len(data.train), len(data.val)) == (150, 50)
    assert set(data.train.labels.tolist()) == set(range(10))  # stratified subsample
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("digits", val_fraction=1.0)
    with pytest.raises(ValueError, match="max_train_samples"):
        load_dataset("digits", max_train_samples=1)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"Unknown dataset 'imagenet'.*'digits'.*folder:<path>"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="needs data_dir"):
        load_dataset("imagefolder")
    assert dataset_info("CIFAR-10", download=True).num_classes == 10  # aliases, no files read


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion-mnist"])
def test_missing_files_say_where_and_how_to_fix(name: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download=True") as info:
        load_dataset(name, data_dir=tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="download=True"):
        dataset_info(name, data_dir=tmp_path)


def test_default_data_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTUNA_NARS_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_dataset("cifar10")


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_idx_files_in_torchvision_layout(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 28, 28))
    labels = np.repeat(np.arange(10), 4)
    _write_idx(raw / "train-images-idx3-ubyte.gz", images)
    _write_idx(raw / "train-labels-idx1-ubyte.gz", labels)
    data = load_dataset("mnist", data_dir=tmp_path, val_fraction=0.25)
    assert (len(data.train), len(data.val), data.image_size) == (30, 10, 28)
    assert data.train[0][0].shape == (1, 28, 28)
    assert sorted(data.val.labels.tolist()) == list(range(10))


@needs_debian_fashion_mnist
def test_fashion_mnist_loads_from_the_debian_package() -> None:
    data = load_dataset("fashion-mnist", max_train_samples=1000)
    assert (data.num_classes, data.in_channels, data.image_size) == (10, 1, 28)
    assert (len(data.train), len(data.val)) == (800, 200)
    assert data.train[0][0].shape == (1, 28, 28)
    # Fashion-MNIST's pixel mean is about 0.286 * 255.
    assert 65 < float(data.train.mean[0]) < 80


@needs_debian_fashion_mnist
def test_fashion_mnist_data_dir_with_torchvision_layout(tmp_path: Path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for path in _DEBIAN_FILES:
        (raw / path.name).symlink_to(path)
    a = load_dataset("fashion-mnist", data_dir=tmp_path, max_train_samples=500)
    b = load_dataset("fashion-mnist", max_train_samples=500)
    assert torch.equal(a.train.images, b.train.images)


def test_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            size = (10 + i, 14)
            pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    data = load_dataset(f"folder:{tmp_path}", image_size=12)
    assert (data.num_classes, data.in_channels, data.image_size) == (2, 3, 12)
    assert len(data.train) + len(data.val) == 10
    image, label = data.val[0]
    assert image.shape == (3, 12, 12) and label in (0, 1)
    same = load_dataset("imagefolder", data_dir=tmp_path, image_size=12)
    assert same.num_classes == 2
    assert dataset_info(f"folder:{tmp_path}").num_classes == 2


def test_bad_folder_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(FileNotFoundError, match="class sub-directories"):
        load_dataset(f"folder:{tmp_path}")
