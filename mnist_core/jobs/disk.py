"""The disk budget: free space, what a run will write, a full disk told apart from other faults."""

from __future__ import annotations

import errno
import math
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..learn.config import TrainConfig
from ..learn.models import summary
from . import classroom
from .identity import User
from .store import RunStore

MB = 1024 * 1024
RESERVE_NAME = ".disk-reserve"  # a few MB kept aside so a run can still record why it failed
RESERVE_BYTES = 2 * MB
BATCH_ROW_BYTES = 64  # one batch loss in SQLite (row, index entry, WAL), measured about 50
CHECKPOINT_OVERHEAD = 64 * 1024  # config, history of epochs, versions, zip headers
FULL_MARKERS = (  # how a full disk reads once a library has turned ENOSPC into its own error
    "database or disk is full",  # SQLite (SQLITE_FULL)
    "unexpected pos",  # torch.save's zip writer when a write came up short
    "file write failed",  # torch.save's zip writer
    "no space left on device",
)


class DiskBudgetError(ValueError):
    """A run would not fit on the disk holding the checkpoints; the message gives the numbers."""


def free_bytes(path: str | Path) -> int:
    """Free space for an unprivileged writer on the filesystem holding `path` (or its nearest parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def tree_bytes(path: str | Path) -> int:
    """Bytes the files under `path` take on disk; hard links (best.pt) are counted once."""
    seen, total = set(), 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue  # removed while we walked
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return total


def batches_per_epoch(cfg: TrainConfig) -> int:
    return max(1, math.ceil(cfg.train_images / cfg.batch_size))


def checkpoint_bytes(cfg: TrainConfig, epoch: int) -> int:
    """One epoch file: fp32 weights, the history so far (every batch loss), metadata."""
    weights = 4 * summary(cfg.model, cfg.model_args or None).parameters
    return weights + CHECKPOINT_OVERHEAD + 12 * batches_per_epoch(cfg) * epoch


def optimizer_bytes(cfg: TrainConfig) -> int:
    """The resume file: Adam keeps two tensors per weight, SGD with momentum one."""
    weights = 4 * summary(cfg.model, cfg.model_args or None).parameters
    slots = 2 if cfg.optimizer in ("adam", "adamw") else (1 if cfg.momentum else 0)
    return weights * slots + CHECKPOINT_OVERHEAD


def run_need_bytes(cfg: TrainConfig, epochs_done: int = 0) -> int:
    """About what the rest of a run writes: an epoch file per epoch, two resume files at the
    moment one replaces the other, the batch losses and the log."""
    epochs = range(epochs_done + 1, cfg.epochs + 1)
    files = sum(checkpoint_bytes(cfg, e) for e in epochs)
    batches = BATCH_ROW_BYTES * batches_per_epoch(cfg) * len(epochs)
    return files + 2 * optimizer_bytes(cfg) + batches + 64 * 1024


def queued_need_bytes(store: RunStore, owner: str | None = None) -> int:
    """What the runs queued or training (of `owner`, or everyone's) will still write."""
    total = 0
    for run in store.list(("queued", "running")):
        if owner is None or run.owner == owner:
            try:
                total += run_need_bytes(TrainConfig.from_dict(run.config), run.epochs_done)
            except ValueError:
                continue  # a config this version cannot read: its run fails with the reason
    return total


def owner_bytes(store: RunStore, owner: str) -> int:
    """Bytes the run folders of `owner`'s runs take on disk."""
    return sum(tree_bytes(store.layout.run_dir(r.id)) for r in store.list() if r.owner == owner)


def check_fits(
    store: RunStore, cfg: TrainConfig, epochs_done: int = 0, owner: str | None = None, quota: int = 0
) -> None:
    """Refuse, before it starts, a run that would fill the disk holding the store once the runs
    already queued or training have written theirs, or that would take `owner` over `quota` bytes
    of run folders (0: no quota)."""
    root = store.root
    reserve_kept = (Path(root) / RESERVE_NAME).is_file()  # already out of the free space
    need, free = run_need_bytes(cfg, epochs_done), free_bytes(root) - (0 if reserve_kept else RESERVE_BYTES)
    queued = queued_need_bytes(store)
    if need + queued > free:
        waiting = f", of which the runs queued or training will write {queued / MB:,.1f} MB" if queued else ""
        raise DiskBudgetError(
            f"This run would not fit: it needs about {need / MB:,.1f} MB on the disk holding the "
            f"checkpoints ({root}), and {max(0, free) / MB:,.1f} MB are free{waiting}. Prune the epoch "
            "files of finished runs (Runs page, or `mnist-lab prune`), delete runs, or train fewer epochs."
        )
    if quota and owner is not None:
        used, pending = owner_bytes(store, owner), queued_need_bytes(store, owner)
        if used + pending + need > quota:
            raise DiskBudgetError(
                f"This run would take you over your class's disk quota of {quota / MB:,.0f} MB: your "
                f"runs take {used / MB:,.1f} MB, your runs queued or training will write about "
                f"{pending / MB:,.1f} MB more, and this one needs about {need / MB:,.1f} MB. Delete "
                "runs you no longer need or prune their epoch files (Runs page), or train fewer epochs."
            )


def is_disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an error it was raised from, is a full disk (or an exceeded quota)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, (OSError, RuntimeError, sqlite3.Error)) and any(
            m in str(exc).lower() for m in FULL_MARKERS
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def full_message(free: int, need: int) -> str:
    return (
        f"The disk holding the checkpoints is full: {free / MB:,.1f} MB free, this run needs about "
        f"{need / MB:,.1f} MB. The finished epochs and their checkpoints are kept. Free some space "
        "(prune or delete runs on the Runs page), then Extend the run to continue it."
    )


def ensure_reserve(root: str | Path) -> None:
    """Keep RESERVE_BYTES aside in the store (when there is room), for release_reserve."""
    path = Path(root) / RESERVE_NAME
    try:
        if path.is_file() and path.stat().st_size >= RESERVE_BYTES:
            return
        if free_bytes(root) < 4 * RESERVE_BYTES:
            return  # nearly full already: do not be the one that fills it
        with open(path, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)  # real blocks (a sparse file would free nothing)
    except OSError:
        Path(path).unlink(missing_ok=True)


def release_reserve(root: str | Path) -> int:
    """Free the reserve so that a run on a full disk can still write its reason; returns bytes freed."""
    path = Path(root) / RESERVE_NAME
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except OSError:
        return 0


@dataclass
class PruneReport:
    runs: int = 0
    files: int = 0
    freed_bytes: int = 0


def prune(store: RunStore, *, actor: User) -> PruneReport:
    """Remove the epoch files of the finished runs `actor` may control (classroom.can_act: their
    own; a teacher's or the administrator's, every run), keeping each run's best and last epoch
    (what Evaluate, Draw and Extend need); the epoch records stay, marked as pruned."""
    report = PruneReport()
    for run in store.list():
        if run.active or not classroom.can_act(run, actor):
            continue
        saved = store.checkpoints(run.id)
        if len(saved) <= 1:
            continue
        best = store.layout.best_checkpoint(run.id)
        gone = []
        for epoch, path in saved[:-1]:  # the last epoch is kept for Extend
            if best.is_file() and os.path.samefile(path, best):
                continue  # best.pt is this very file: removing the name frees nothing
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            report.files += 1
            report.freed_bytes += size
            gone.append(epoch)
        if gone:
            store.forget_checkpoints(run.id, gone)
            report.runs += 1
    return report


def usage(store: RunStore, owner: str | None = None) -> dict[str, int]:
    """What the store takes on disk and what is left: {'store_bytes', 'free_bytes', 'queued_bytes'
    (what the runs queued or training will still write)}, with 'owner_bytes' for an `owner`."""
    out = dict(
        store_bytes=tree_bytes(store.root),
        free_bytes=free_bytes(store.root),
        queued_bytes=queued_need_bytes(store),
    )
    if owner is not None:
        out["owner_bytes"] = owner_bytes(store, owner)
    return out
