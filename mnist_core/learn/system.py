"""What the Home page shows about this machine: data, device, versions, default model."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..data.mnist import missing_files
from ..paths import DATA_ENV, data_dir, default_model_path
from ..versions import versions
from .checkpoints import CheckpointError, read_checkpoint
from .device import choose_precision, pick_device


def environment_status(folder: str | Path | None = None) -> dict:
    """Plain facts for a status panel; never raises. `folder` defaults to the configured data dir."""
    folder = Path(folder) if folder else data_dir()
    missing = missing_files(folder)
    default = default_model_path()
    default_info: dict = {"path": str(default), "present": default.is_file()}
    if default.is_file():
        try:
            meta = read_checkpoint(default)
            default_info.update(
                model=meta["model_key"],
                test_acc=meta.get("metrics", {}).get("test_acc"),
                size_kb=default.stat().st_size / 1024,
            )
        except CheckpointError as exc:
            default_info.update(error=str(exc))
    return dict(
        data_dir=str(folder),
        data_env=DATA_ENV,
        data_env_set=bool(os.environ.get(DATA_ENV)),
        data_missing=missing,
        device=str(pick_device("auto")),
        precision=choose_precision("auto", pick_device("auto")),  # (name, reason) for precision="auto"
        cpu_cores=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        versions=versions(),
        default_model=default_info,
    )
