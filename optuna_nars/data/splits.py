"""Carving the validation split from a training set, and the statistics to normalise it with.

Both the optional subsample (``max_train_samples``) and the validation split are stratified by
class with a fixed seed, so a search sees the same splits in every process.
"""

from __future__ import annotations

import numpy as np
import torch

from optuna_nars._validation import check_int, check_real

__all__ = ["channel_stats", "check_split_args", "split_indices"]


def check_split_args(val_fraction: float, max_train_samples: int | None) -> None:
    """Validate :func:`~optuna_nars.data.load_dataset`'s ``val_fraction`` and
    ``max_train_samples``."""
    check_real("val_fraction", val_fraction, low=0, high=1, low_open=True, high_open=True)
    check_int("max_train_samples", max_train_samples, minimum=2, allow_none=True)


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


def split_indices(
    labels: np.ndarray, val_fraction: float, seed: int, max_train_samples: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) indices into ``labels``, from a stratified subset of at most
    ``max_train_samples`` of them."""
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


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
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
