"""The containers: images held in memory, what a dataset looks like, and the two splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

__all__ = ["DataSplits", "DatasetInfo", "ImageTensorDataset"]


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
