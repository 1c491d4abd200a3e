"""MNIST's image constants and the one normalise/denormalise every module and page uses."""

from __future__ import annotations

import numpy as np
import torch

# Training-set pixel statistics after /255 (checked by tests against the data itself).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
NUM_CLASSES = 10
IMAGE_SIZE = 28
BLACK = (0.0 - MNIST_MEAN) / MNIST_STD  # a black pixel after normalisation: background and baseline


def normalize(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Images -> the standardised float input (N, 1, 28, 28) the networks expect.

    uint8 images (N, 28, 28) in 0-255, as MNIST stores them, or float images in [0, 1]: one
    (28, 28) image or a batch (N, 28, 28)."""
    x = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images)
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float().clone()  # in place from here on
    if x.dim() == 2:
        x = x.unsqueeze(0)
    return x.sub_(MNIST_MEAN).div_(MNIST_STD).unsqueeze(1)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """The network's input back to pixels in [0, 1], same shape (for display)."""
    return (x * MNIST_STD + MNIST_MEAN).clamp(0, 1)
