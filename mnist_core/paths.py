"""Where MNIST Lab reads and writes: every location is an environment variable with a default.

The defaults are relative to the directory the dashboard or the command line is started from
(the project folder, as the README's commands run), never to where the package is installed."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MNIST_DATA_DIR"  # the four MNIST files (default ./data/mnist; downloaded there if absent)
CHECKPOINTS_ENV = "MNIST_LAB_CHECKPOINTS"  # the run store and saved models (default ./checkpoints)
DEFAULT_MODEL_ENV = "MNIST_LAB_DEFAULT_MODEL"  # the pretrained model (default ./checkpoints/default.pt)
CACHE_ENV = "MNIST_LAB_CACHE"  # decoded MNIST, ready to memory-map (default ~/.cache/mnist-lab)


def data_dir() -> Path:
    """Where MNIST is looked for: $MNIST_DATA_DIR, else ./data/mnist."""
    return Path(os.environ.get(DATA_ENV) or Path("data") / "mnist").absolute()


def checkpoints_dir() -> Path:
    """Where runs and checkpoints are written: $MNIST_LAB_CHECKPOINTS, else ./checkpoints."""
    return Path(os.environ.get(CHECKPOINTS_ENV) or "checkpoints").absolute()


def default_model_path() -> Path:
    """The small pretrained model used before any training: $MNIST_LAB_DEFAULT_MODEL, else the one
    shipped in the repository (./checkpoints/default.pt)."""
    return Path(os.environ.get(DEFAULT_MODEL_ENV) or Path("checkpoints") / "default.pt").absolute()


def cache_dir() -> Path:
    """Where derived files that can always be rebuilt live (the decoded MNIST arrays):
    $MNIST_LAB_CACHE, else $XDG_CACHE_HOME/mnist-lab, else ~/.cache/mnist-lab. Shared by every
    project folder on the machine, since it only holds copies keyed by what they were made from."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).absolute()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base, "mnist-lab").absolute()
