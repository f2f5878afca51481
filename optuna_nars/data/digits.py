"""scikit-learn's bundled 8x8 digits: no files, no network."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["load_digits"]


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1797 digits as ``uint8`` N x 1 x 8 x 8 images (values 0..16) and ``int64`` labels."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    # Pixel values are integers 0..16: uint8 holds them exactly.
    images = torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1)
    return images, torch.from_numpy(digits.target.astype(np.int64))
