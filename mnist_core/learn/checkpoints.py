"""Self-describing checkpoints: atomic writes, safe loads, clear errors."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.pixels import MNIST_MEAN, MNIST_STD
from ..paths import checkpoints_dir
from ..versions import versions
from .config import TrainConfig
from .models import REGISTRY, build_model, check_model_args, identity

FORMAT = "mnist-lab-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the file and the cause."""


def _plain(value):
    """Tuples -> lists, recursively, so a checkpoint holds only JSON-like data besides tensors."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def describe(
    model: nn.Module,
    config: TrainConfig,
    history: dict | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """Everything needed to rebuild and understand the model, as one plain dict."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return dict(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        model_key=identity(model)[0],
        model_args=_plain(identity(model)[1]),
        state_dict=state,
        config=config.to_dict(),
        dataset=dict(
            name="MNIST",
            mean=MNIST_MEAN,
            std=MNIST_STD,
            val_fraction=config.val_fraction,
            seed=config.seed,
            limit=config.limit,
        ),
        history=_plain(history or {}),
        metrics=dict(metrics or {}),
        versions=versions(),
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        extra=extra or {},
    )


def default_name(model_key: str, accuracy: float | None) -> str:
    acc = f"-acc{accuracy * 100:.2f}" if accuracy is not None else ""
    return f"{model_key}-{time.strftime('%Y%m%d-%H%M%S')}{acc}.pt"


def atomic_save(obj, path: str | Path) -> Path:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`.
    `obj` may also be bytes that torch.save made elsewhere (a run on a cluster node): written as is."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            if isinstance(obj, bytes):
                fh.write(obj)
            else:
                torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)):  # a full disk reaches torch.save's zip writer as
            # RuntimeError ("unexpected pos ..."), not OSError
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
            raise CheckpointError(
                f"Could not write checkpoint {path}: {detail}. The previous file, if any, is unchanged."
            ) from exc
        raise
    return path


def atomic_link(source: str | Path, path: str | Path) -> Path:
    """Make `path` another name of the finished file `source` (a hard link: no second copy on
    disk), replacing `path` atomically; a filesystem without hard links gets a copy."""
    source, path = Path(source), Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            shutil.copyfile(source, tmp)  # FAT, some network filesystems
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(
    model: nn.Module,
    config: TrainConfig,
    path: str | Path | None = None,
    history: dict | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint; without a path it goes to checkpoints/<model>-<time>-acc<NN.NN>.pt."""
    metrics = metrics or {}
    if path is None:
        acc = metrics.get("test_acc", metrics.get("val_acc"))
        path = checkpoints_dir() / default_name(identity(model)[0], acc)
    return atomic_save(describe(model, config, history, metrics, extra), path)


@dataclass
class Checkpoint:
    path: Path
    model: nn.Module
    meta: dict  # everything in the file except the state_dict

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.meta["config"])


def describe_resume(optimizer, scheduler, epoch: int, step: int) -> dict:
    """What continuing a run needs besides its epoch file: optimizer and schedule state."""
    return dict(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        kind="resume",
        epoch=epoch,
        step=step,
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict() if scheduler is not None else None,
    )


REQUIRED = {
    "model": ("model_key", "model_args", "state_dict", "config"),
    "resume": ("optimizer", "epoch", "step"),
}


def read_checkpoint(path: str | Path, kind: str = "model") -> dict:
    """The raw dict, loaded with weights_only=True; any failure becomes a CheckpointError.
    `kind` is "model" (an epoch file, best.pt, a saved model) or "resume" (optimizer state)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty (0 bytes); it was never fully written.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for damaged files
        found = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if isinstance(exc, pickle.UnpicklingError) and found:
            raise CheckpointError(
                f"Checkpoint {path} was refused: it holds Python objects other than "
                f"tensors and plain data, which could run code ({found[0]})."
            ) from None
        raise CheckpointError(
            f"Checkpoint {path} is truncated or not a PyTorch file "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})."
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an MNIST Lab checkpoint (no '{FORMAT}' header); "
            "it may be a bare state_dict from another project."
        )
    missing = [k for k in REQUIRED[kind] if k not in obj]
    if missing:
        raise CheckpointError(f"Checkpoint {path} lacks {', '.join(missing)}.")
    return obj


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from the file alone, in eval mode."""
    obj = read_checkpoint(path)
    key = obj["model_key"]
    if not isinstance(key, str) or key not in REGISTRY:
        raise CheckpointError(f"Checkpoint {path} is for model {key!r}, which this version does not know.")
    # the file's arguments get the bound a config's get, checked on the meta device, before a
    # single weight is allocated: a crafted file cannot ask for a billion-unit layer
    args = obj["model_args"]
    problems = (
        check_model_args(key, args)
        if isinstance(args, dict)
        else [f"its model arguments are a {type(args).__name__}, not a mapping"]
    )
    if problems:
        raise CheckpointError(f"Checkpoint {path} was refused: {problems[0]}.")
    try:
        model = build_model(key, obj["model_args"])
        model.load_state_dict(obj["state_dict"])
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"Checkpoint {path}: its weights do not fit a {key!r} model "
            f"with arguments {obj['model_args']} ({first})."
        ) from None
    model.to(device).eval()
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    return Checkpoint(Path(path), model, meta)
