"""Is the run store whole? A consistency check of the database against the files it points to."""

from __future__ import annotations

from pathlib import Path

from ..learn.checkpoints import CheckpointError, read_checkpoint
from .store import STATUSES, RunStore


def verify(store: RunStore, load_checkpoints: bool = True) -> list[str]:
    """Problems found in the store; an empty list means it is consistent.

    Checked: SQLite's own integrity check; every status is known; a run's finished epochs are
    numbered 1..epochs_done with a checkpoint file each that loads (weights_only), except epochs
    pruned on purpose (never the last); batch steps
    never run ahead of the epochs; no half-written temporary files beside finished runs."""
    problems = [f"database: {problem}" for problem in store.database_problems()]
    for run in store.list():
        where = f"run {run.id}"
        if run.status not in STATUSES:
            problems.append(f"{where}: unknown status {run.status!r}")
        epochs = store.epoch_numbers(run.id)
        if epochs != list(range(1, run.epochs_done + 1)):
            problems.append(f"{where}: epochs_done={run.epochs_done} but epoch records {epochs}")
        for e in store.epochs(run.id):
            path = e.get("checkpoint")
            if not path and e["epoch"] != run.epochs_done:
                continue  # pruned on purpose; the last epoch's file is always kept (Extend)
            if not path or not Path(path).is_file():
                problems.append(f"{where}: checkpoint of epoch {e['epoch']} is missing")
            elif load_checkpoints:
                try:
                    read_checkpoint(path)
                except CheckpointError as exc:
                    problems.append(f"{where}: {exc}")
        top = store.last_batch_epoch(run.id)
        if top is not None and top > run.epochs_done + 1:
            problems.append(f"{where}: batch records of epoch {top} but only {run.epochs_done} finished")
        if not run.active:
            problems += [
                f"{where}: leftover temporary file {p.name}"
                for p in store.layout.run_dir(run.id).glob(".*.tmp")
            ]
    problems += [f"records of run {run_id} without the run" for run_id in store.orphaned_run_ids()]
    return problems


def summary(store: RunStore) -> dict:
    """Counts of what the store holds (no file is read: verify() already loads every checkpoint)."""
    runs = store.list()
    return dict(**store.counts(), checkpoints=sum(len(store.layout.epoch_files(r.id)) for r in runs))
