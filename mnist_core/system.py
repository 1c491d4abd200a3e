"""What the Home page and `models` show about this machine: data, device, versions, default model."""
from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

import torch

from . import __version__
from .config import DATA_ENV, data_dir
from .data import missing_files


def package_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def environment_status(folder: str | None = None) -> dict:
    """Plain facts for a status panel; never raises. `folder` defaults to the configured data dir."""
    from .checkpoints import CheckpointError, default_model_path, read_checkpoint
    from .train import pick_device

    folder = folder or data_dir()
    missing = missing_files(folder)
    default = default_model_path()
    default_info: dict = {"path": str(default), "present": default.is_file()}
    if default.is_file():
        try:
            meta = read_checkpoint(default)
            default_info.update(model=meta["model_key"], test_acc=meta.get("metrics", {}).get("test_acc"),
                                size_kb=default.stat().st_size / 1024)
        except CheckpointError as exc:
            default_info.update(error=str(exc))
    return dict(data_dir=str(folder), data_env=DATA_ENV, data_env_set=bool(os.environ.get(DATA_ENV)),
                data_missing=missing, device=str(pick_device("auto")), cpu_cores=os.cpu_count(),
                torch_threads=torch.get_num_threads(), versions=dict(
                    mnist_lab=__version__, python=platform.python_version(), torch=torch.__version__,
                    torchvision=package_version("torchvision")),
                default_model=default_info)
