"""Snapshots of a run store, to count the records a fault lost (the fault scenarios and their tests)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from mnist_core.jobs.store import RunStore


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
    c = store.conn  # read-only SQL from a test helper: the library's own code goes through RunStore
    snap = Snapshot(runs={r[0] for r in c.execute("SELECT id FROM runs")})
    snap.epochs = {(r, e): rec for r, e, rec in c.execute("SELECT run_id, epoch, record FROM epoch_metrics")}
    snap.batches = {
        (r, s): (e, loss)
        for r, s, e, loss in c.execute("SELECT run_id, step, epoch, loss FROM batch_metrics")
    }
    for run_id in snap.runs:
        for path in sorted(store.layout.run_dir(run_id).glob("epoch-*.pt")):
            snap.files[str(path)] = _digest(path)
    return snap


def records_lost(before: Snapshot, after: Snapshot) -> list[str]:
    """Records present in `before` that are missing or different in `after` (an empty list is good).

    Runs that kept training may add records; nothing saved earlier may vanish or change."""
    lost = [f"run {r} is gone" for r in sorted(before.runs - after.runs)]
    lost += [
        f"epoch {e} of run {r} is {'changed' if (r, e) in after.epochs else 'gone'}"
        for (r, e), rec in sorted(before.epochs.items())
        if after.epochs.get((r, e)) != rec
    ]
    lost += [
        f"batch {s} of run {r} is {'changed' if (r, s) in after.batches else 'gone'}"
        for (r, s), value in sorted(before.batches.items())
        if after.batches.get((r, s)) != value
    ]
    lost += [
        f"{p} is {'changed' if p in after.files else 'gone'}"
        for p, digest in sorted(before.files.items())
        if after.files.get(p) != digest
    ]
    return lost
