"""Synthetic drawings made from MNIST digits, as a learner's canvas would give them (tests, benchmarks)."""

from __future__ import annotations

import numpy as np
import torch

from mnist_core.preprocess import resize


def render_like_canvas(
    digit28: torch.Tensor | np.ndarray,
    rng: np.random.Generator,
    side: int = 280,
    dark_on_light: bool | None = None,
) -> np.ndarray:
    """A 28x28 MNIST digit drawn big, off-centre, at a random size, maybe dark on light (for tests)."""
    img = np.asarray(digit28, dtype=np.float32) / (255.0 if np.asarray(digit28).max() > 1 else 1.0)
    size = int(rng.integers(side // 3, side))
    big = np.clip(resize(img, size, size), 0, 1)
    out = np.zeros((side, side), dtype=np.float32)
    top, left = rng.integers(0, side - size + 1, size=2)
    out[top : top + size, left : left + size] = big
    if dark_on_light if dark_on_light is not None else rng.random() < 0.5:
        out = 1.0 - out
    return out
