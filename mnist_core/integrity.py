"""Is the run store whole? A consistency check, and snapshots that count records lost across a fault."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoints import CheckpointError, read_checkpoint
from .runs import STATUSES, RunStore


@dataclass
class Snapshot:
    """Every record a store holds: run ids, epoch records, batch losses and epoch checkpoint digests."""

    runs: set[str] = field(default_factory=set)
    epochs: dict[tuple[str, int], str] = field(default_factory=dict)
    batches: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict)  # -> (epoch, loss)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return len(self.runs) + len(self.epochs) + len(self.batches) + len(self.files)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot(store: RunStore) -> Snapshot:
    c = store.conn
    snap = Snapshot(runs={r[0] for r in c.execute("SELECT id FROM runs")})
    snap.epochs = {(r, e): rec for r, e, rec in c.execute("SELECT run_id, epoch, record FROM epoch_metrics")}
    snap.batches = {(r, s): (e, loss) for r, s, e, loss in
                    c.execute("SELECT run_id, step, epoch, loss FROM batch_metrics")}
    for run_id in snap.runs:
        for path in sorted(store.run_dir(run_id).glob("epoch-*.pt")):
            snap.files[str(path)] = _digest(path)
    return snap


def records_lost(before: Snapshot, after: Snapshot) -> list[str]:
    """Records present in `before` that are missing or different in `after` (an empty list is good).

    Runs that kept training may add records; nothing saved earlier may vanish or change."""
    lost = [f"run {r} is gone" for r in sorted(before.runs - after.runs)]
    lost += [f"epoch {e} of run {r} is {'changed' if (r, e) in after.epochs else 'gone'}"
             for (r, e), rec in sorted(before.epochs.items()) if after.epochs.get((r, e)) != rec]
    lost += [f"batch {s} of run {r} is {'changed' if (r, s) in after.batches else 'gone'}"
             for (r, s), value in sorted(before.batches.items()) if after.batches.get((r, s)) != value]
    lost += [f"{p} is {'changed' if p in after.files else 'gone'}"
             for p, digest in sorted(before.files.items()) if after.files.get(p) != digest]
    return lost


def verify(store: RunStore, load_checkpoints: bool = True) -> list[str]:
    """Problems found in the store; an empty list means it is consistent.

    Checked: SQLite's own integrity check; every status is known; a run's finished epochs are
    numbered 1..epochs_done with a checkpoint file each that loads (weights_only); batch steps
    never run ahead of the epochs; no half-written temporary files beside finished runs."""
    c = store.conn
    problems = [f"database: {row[0]}" for row in c.execute("PRAGMA integrity_check") if row[0] != "ok"]
    for run in store.list():
        where = f"run {run.id}"
        if run.status not in STATUSES:
            problems.append(f"{where}: unknown status {run.status!r}")
        epochs = [e for (e,) in c.execute("SELECT epoch FROM epoch_metrics WHERE run_id = ? ORDER BY epoch",
                                          (run.id,))]
        if epochs != list(range(1, run.epochs_done + 1)):
            problems.append(f"{where}: epochs_done={run.epochs_done} but epoch records {epochs}")
        for e in store.epochs(run.id):
            path = e.get("checkpoint")
            if not path or not Path(path).is_file():
                problems.append(f"{where}: checkpoint of epoch {e['epoch']} is missing")
            elif load_checkpoints:
                try:
                    read_checkpoint(path)
                except CheckpointError as exc:
                    problems.append(f"{where}: {exc}")
        top = c.execute("SELECT MAX(epoch) FROM batch_metrics WHERE run_id = ?", (run.id,)).fetchone()[0]
        if top is not None and top > run.epochs_done + 1:
            problems.append(f"{where}: batch records of epoch {top} but only {run.epochs_done} finished")
        if not run.active:
            problems += [f"{where}: leftover temporary file {p.name}"
                         for p in store.run_dir(run.id).glob(".*.tmp")]
    for row in c.execute("SELECT DISTINCT run_id FROM batch_metrics WHERE run_id NOT IN (SELECT id FROM runs) "
                         "UNION SELECT DISTINCT run_id FROM epoch_metrics WHERE run_id NOT IN (SELECT id FROM runs)"):
        problems.append(f"records of run {row[0]} without the run")
    return problems


def summary(store: RunStore) -> dict:
    """Counts of what the store holds (no file is read: verify() already loads every checkpoint)."""
    c = store.conn
    count = lambda table: c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: E731
    return dict(runs=count("runs"), epochs=count("epoch_metrics"), batches=count("batch_metrics"),
                checkpoints=sum(len(list(store.run_dir(r).glob("epoch-*.pt")))
                                for (r,) in c.execute("SELECT id FROM runs")))
