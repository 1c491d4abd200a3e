"""Evaluations cached per (checkpoint file, its mtime, split): going back to one is instant."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from .checkpoints import load_checkpoint
from .data import load_mnist, split_indices
from .evaluate import Analysis, analyse
from .pixels import normalize

_CACHE: OrderedDict[tuple, Analysis] = OrderedDict()
MAX_ENTRIES = 16


def evaluate_checkpoint(path: str | Path, split: str = "test", mnist=None) -> Analysis:
    """Analysis of a checkpoint on 'test' or 'val' (its own run's validation split)."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', not {split!r}")
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime if path.exists() else 0.0, split)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    ckpt = load_checkpoint(path)
    cfg = ckpt.config
    mnist = mnist or load_mnist()
    if split == "test":  # normalise only the split we need
        x, y = normalize(mnist.test_images), mnist.test_labels
    else:  # the run's own (seeded) validation split, in full
        _, val_idx = split_indices(len(mnist.train_labels), cfg.val_fraction, cfg.seed)
        x, y = normalize(mnist.train_images[val_idx]), mnist.train_labels[val_idx]
    result = analyse(ckpt.model, x, y)
    result.images = x  # normalised images, for galleries and saliency
    _CACHE[key] = result
    while len(_CACHE) > MAX_ENTRIES:
        _CACHE.popitem(last=False)
    return result


def clear_cache() -> None:
    """Forget every cached evaluation (the next one is computed from the checkpoint again)."""
    _CACHE.clear()
