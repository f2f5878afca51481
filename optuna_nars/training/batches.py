"""Batches of a dataset on the training device, normalised and resized to the candidate's
resolution."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from optuna_nars.data import ImageTensorDataset

__all__ = ["DeviceBatches"]


class DeviceBatches:
    """Batches of a dataset on the device, normalised and resized to the candidate resolution.

    In-memory datasets (:class:`~optuna_nars.data.ImageTensorDataset`, ``TensorDataset``) are
    moved to the device once and gathered batch-wise from a seeded permutation: no per-image
    Python work. Other datasets go through a seeded ``DataLoader``.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        resolution: int,
        *,
        train: bool,
        generator: torch.Generator | None,
        num_workers: int,
        channels_last: bool,
    ) -> None:
        self.device, self.resolution, self.train = device, resolution, train
        self.batch_size, self.generator = batch_size, generator
        self.channels_last = channels_last
        self.n = len(dataset)
        self.tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        self.normalize: Callable[[torch.Tensor], torch.Tensor] | None = None
        if isinstance(dataset, ImageTensorDataset):
            dataset = dataset.to(device)
            self.tensors, self.normalize = (dataset.images, dataset.labels), dataset.normalize
        elif isinstance(dataset, TensorDataset):
            images, labels = dataset.tensors[:2]
            self.tensors = (images.to(device), labels.to(device, torch.int64))
        else:
            self.loader = DataLoader(
                dataset, batch_size=batch_size, shuffle=train, drop_last=self._drop_last,
                generator=generator, num_workers=num_workers, pin_memory=device.type == "cuda",
            )

    @property
    def _drop_last(self) -> bool:
        # A ragged last training batch adds a noisy BN step; keep it when it is the only batch.
        return self.train and self.n >= self.batch_size

    def __len__(self) -> int:
        return self.n // self.batch_size if self._drop_last else math.ceil(self.n / self.batch_size)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        x = self.normalize(x) if self.normalize is not None else x.float()
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(
                x, size=(self.resolution, self.resolution), mode="bilinear",
                align_corners=False, antialias=x.shape[-1] > self.resolution,
            )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is None:
            for x, y in self.loader:
                yield self._prepare(x), y.to(self.device, non_blocking=True)
            return
        images, labels = self.tensors
        if self.train:
            order = torch.randperm(self.n, generator=self.generator).to(self.device)
            for i in range(len(self)):
                idx = order[i * self.batch_size:(i + 1) * self.batch_size]
                yield self._prepare(images[idx]), labels[idx]
        else:
            for i in range(0, self.n, self.batch_size):  # slices are views: no copy
                yield (self._prepare(images[i:i + self.batch_size]),
                       labels[i:i + self.batch_size])
