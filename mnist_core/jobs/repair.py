"""Rebuild a damaged run store from its run folders: run.json mirrors and self-describing checkpoints."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..learn.checkpoints import CheckpointError, read_checkpoint
from ..paths import checkpoints_dir
from ..words import count, kept_epochs
from . import executor as ex
from .store import ACTIVE, DB_NAME, Run, RunError, RunStore, StoreDamaged, check_run_id

_ID_TIME = re.compile(r"(\d{8}-\d{6})-")
STOP_WAIT_S = 5.0  # a worker still training on a damaged store gets this long to stop


@dataclass
class RebuildReport:
    """What a rebuild restored. `moved_to` is where the damaged database went (None when the store
    was sound and only run folders it lacked were added back)."""

    damage: str | None = None
    runs: int = 0
    epochs: int = 0
    batches: int = 0
    moved_to: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (folder, why)
    notes: list[str] = field(default_factory=list)  # runs restored, but not whole

    def figures(self) -> dict:
        return dict(
            runs=self.runs,
            epochs=self.epochs,
            batches=self.batches,
            skipped=len(self.skipped),
            moved_to=self.moved_to or "none",
        )

    def text(self) -> str:
        """One plain sentence for the dashboard."""
        if self.damage is None and not self.runs:
            return "The run store was sound and knew every run folder: nothing to rebuild."
        done = (
            f"Restored {count(self.runs, 'run')} with {count(self.epochs, 'epoch record')} and "
            f"{self.batches:,} batch losses from the run folders."
        )
        if self.moved_to:
            done += f" The damaged database was kept as {self.moved_to.name}."
        return done


def store_damage(root: str | Path | None = None) -> str | None:
    """Why the store at `root` needs a rebuild (the full SQLite integrity check), None if it is sound."""
    try:
        store = RunStore(root)
    except StoreDamaged as exc:
        return exc.detail
    try:
        problems = store.database_problems()
    except Exception as exc:  # a damaged page can make the check itself fail
        return str(exc)
    finally:
        store.close()
    return "; ".join(problems[:3]) or None


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One rebuild at a time per store (two dashboard sessions may press the button at once)."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def rebuild(root: str | Path | None = None) -> RebuildReport:
    """Rebuild the store at `root` (default: $MNIST_LAB_CHECKPOINTS) from its run folders.

    A damaged (or lost) runs.db is rebuilt whole into a new file, which then replaces it in one
    rename; the damaged file (and its -wal, -shm) is kept as runs.db.damaged-<time>. On a sound
    store only the run folders it has no row for are added back. Every folder is restored from
    its run.json (the row mirrored on each status change) and its last readable epoch checkpoint,
    whose history holds every epoch record and batch loss so far. Runs that were queued or
    running become interrupted: their process is unknown. A folder that cannot be restored is
    skipped, with the reason, and left as it is."""
    root = Path(root) if root else checkpoints_dir()
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        report = RebuildReport(damage=store_damage(root))
        if report.damage is None:
            store = RunStore(root)
            known = {r.id for r in store.list()}
            _restore_folders(store, report, skip=known)
            return report
        tmp = root / f"{DB_NAME}.rebuilding"
        _remove_db(tmp)
        fresh = RunStore(root, db_name=tmp.name, new=True)
        try:
            _restore_folders(fresh, report, skip=set())
            fresh.restore_settings()  # the class's rules
            fresh.fold_wal()
        finally:
            fresh.close()
        report.moved_to = _swap_in(root, tmp)
        return report


def _remove_db(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)


def _swap_in(root: Path, tmp: Path) -> Path | None:
    """Put the rebuilt file in place of runs.db. The damaged file stays reachable under its new name
    the whole time (a hard link, then one rename over runs.db), so runs.db never goes missing."""
    db = root / DB_NAME
    Path(f"{tmp}-wal").unlink(missing_ok=True)  # empty after fold_wal; the file alone is the store
    Path(f"{tmp}-shm").unlink(missing_ok=True)
    moved = root / f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while any(Path(f"{moved}{s}").exists() for s in ("", "-wal", "-shm")):
        n += 1
        moved = moved.with_name(f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    # the old log must not meet the new file: SQLite would replay it into the rebuilt store
    for suffix in ("-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            os.replace(f"{db}{suffix}", f"{moved}{suffix}")
    kept: Path | None = None
    if db.exists():
        try:
            os.link(db, moved)
        except OSError:
            shutil.copy2(db, moved)
        kept = moved
    os.replace(tmp, db)
    return kept


def _restore_folders(store: RunStore, report: RebuildReport, skip: set[str]) -> None:
    for folder in store.layout.run_folders():
        if folder.name in skip:
            continue
        try:
            check_run_id(folder.name)
            row, epochs, batches, note, dynamics = _read_folder(store, folder.name)
        except RunError as exc:
            report.skipped.append((folder.name, str(exc)))
            continue
        if store.restore_run(row, epochs, batches, dynamics):
            report.runs += 1
            report.epochs += len(epochs)
            report.batches += len(batches)
            if note:
                report.notes.append(f"run {folder.name}: {note}")


def _last_readable_checkpoint(store: RunStore, run_id: str) -> tuple[int, Path, dict, list[str]] | None:
    """The newest epoch checkpoint that loads and describes its history; None when no epoch file
    exists. RunError when files exist but none can be read."""
    files = store.layout.epoch_files(run_id)
    refused: list[str] = []
    for epoch, path in reversed(files):
        try:
            obj = read_checkpoint(path)
            _check_history(obj, epoch, path)
        except CheckpointError as exc:
            refused.append(str(exc))
            continue
        return epoch, path, obj, refused
    if files:
        raise RunError(f"none of its {count(len(files), 'epoch checkpoint')} can be read: {refused[0]}")
    return None


def _check_history(obj: dict, epoch: int, path: Path) -> None:
    """An epoch checkpoint's config, history and step must fit together, or it cannot rebuild a run."""
    try:
        extra, history, config = obj["extra"], obj["history"], obj["config"]
        records, losses = history["epochs"], history["batch_loss"]
        ok = (
            isinstance(config, dict)
            and extra["epoch"] == epoch
            and [r["epoch"] for r in records] == list(range(1, epoch + 1))
            and extra["step"] == len(losses)
            and all(isinstance(x, (int, float)) for x in losses)
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise CheckpointError(f"Checkpoint {path} does not describe its training history.")


def _created_from_id(run_id: str) -> float | None:
    m = _ID_TIME.match(run_id)
    try:
        return time.mktime(time.strptime(m.group(1), "%Y%m%d-%H%M%S")) if m else None
    except ValueError:
        return None


def _stop_worker(row: dict) -> bool:
    """A worker may still train this run against the damaged file: stop it (then kill it), so two
    processes never train one run. True if one was found."""
    try:
        run = Run(**{**row, "progress": row.get("progress") or {}, "test_metrics": {}})
    except TypeError:
        return False
    executor = ex.LocalExecutor()
    if not executor.alive(run):
        return False
    executor.request_stop(run)
    deadline = time.time() + STOP_WAIT_S
    while time.time() < deadline and executor.alive(run):
        time.sleep(0.1)
    executor.kill(run)
    return True


def _read_folder(store: RunStore, run_id: str) -> tuple[dict, list, list, str, list]:
    """(row, epoch records, batch losses, note, training-dynamics records) rebuilt from one run
    folder; RunError to skip it."""
    note = ""
    try:
        mirror = store.read_mirror(run_id)
    except RunError as exc:
        mirror, note = None, f"{exc} The row was rebuilt from its checkpoints."
    if mirror and mirror["status"] == "running" and mirror.get("pid") and _stop_worker(mirror):
        note = "its training process was still alive and was stopped."
    found = _last_readable_checkpoint(store, run_id)
    if mirror is None and found is None:
        raise RunError("no run.json and no epoch checkpoint: nothing describes this run")
    epochs: list[tuple[dict, str | None]] = []
    batches: list[tuple[int, int, float, float]] = []
    done, cfg, step, records = 0, None, 0, []
    dynamics: list[dict] = []  # runs recorded before the meters existed have none
    obj: dict = {"extra": {}}
    if found is not None:
        done, path, obj, refused = found
        if refused:
            note = f"{count(len(refused), 'newer epoch checkpoint')} unreadable, restored up to epoch {done}."
        cfg, step, records = obj["config"], obj["extra"]["step"], obj["history"]["epochs"]
        fallback_t = path.stat().st_mtime
        times = {}  # a batch's own time is not in the checkpoint: its epoch's file time stands in
        for rec in records:
            ck = store.layout.epoch_checkpoint(run_id, rec["epoch"])
            kept = ck.is_file()  # pruned epochs have no file: their record keeps no path
            epochs.append((rec, str(ck) if kept else None))
            times[rec["epoch"]] = ck.stat().st_mtime if kept else fallback_t
        dynamics = [r for r in obj["history"].get("dynamics", []) if r.get("step", 0) <= step]
        per_epoch = step // done
        for s, loss in enumerate(obj["history"]["batch_loss"], 1):
            e = min(done, (s - 1) // per_epoch + 1) if per_epoch else done
            batches.append((s, e, float(loss), times[e]))
    last = records[-1] if records else {}
    best = _best(records)
    derived = dict(
        epochs_done=done,
        best_val_acc=best.get("val_acc"),
        images_per_s=last.get("images_per_s"),
        progress=(
            dict(
                epoch=done,
                epochs=(cfg or {}).get("epochs", done),
                batch=step // done if done else 0,
                batches=step // done if done else 0,
                step=step,
                elapsed_s=last.get("elapsed_s"),
            )
            if done
            else {}
        ),
    )
    now = time.time()
    resumable = (
        not done or store.layout.resume_checkpoint(run_id, done).is_file() or "optimizer" in obj["extra"]
    )
    go_on = (
        "Extend continues it." if resumable else f"Its optimizer state after epoch {done} is gone: Clone it."
    )
    if mirror is None:
        assert cfg is not None  # found is not None here
        created = _created_from_id(run_id) or fallback_t
        row = dict(
            id=run_id,
            model=cfg.get("model", "?"),
            config=cfg,
            status="interrupted",
            reason=(
                "Rebuilt from its checkpoints after the run store was damaged: "
                f"{count(done, 'finished epoch')} restored; its end state, test accuracy and timings "
                f"were not recoverable. {go_on}"
            ),
            created=created,
            started=created,
            finished=fallback_t,
            train_seconds=float(last.get("elapsed_s") or 0.0),
            **derived,
        )
        return row, epochs, batches, note, dynamics
    row = dict(mirror)
    stale = mirror.get("epochs_done") != done
    if stale:
        row.update(derived)
    else:
        row["epochs_done"] = done
    if mirror["status"] in ACTIVE:
        row.update(
            status="interrupted",
            finished=now,
            pid=None,
            heartbeat=None,
            stop_requested=0,
            reason=(
                f"It was {mirror['status']} when the run store was damaged; its process is unknown. "
                f"{kept_epochs(done)}. {go_on}"
            ),
        )
    elif (mirror.get("epochs_done") or 0) > done:
        row.update(
            status="interrupted",
            reason=(
                f"Rebuilt after the run store was damaged: only {done} of its "
                f"{count(mirror['epochs_done'], 'epoch')} could be read back from the checkpoints. {go_on}"
            ),
        )
    return row, epochs, batches, note, dynamics


def _best(records: list[dict]) -> dict:
    """The epoch fit() kept as best: the first with the lowest validation loss (else the last)."""
    with_val = [r for r in records if r.get("val_loss") is not None]
    if not with_val:
        return records[-1] if records else {}
    return min(with_val, key=lambda r: r["val_loss"])
