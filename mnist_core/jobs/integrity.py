"""Is the run store whole? A consistency check of the database against the files it points to."""

from __future__ import annotations

from pathlib import Path

from ..learn.checkpoints import CheckpointError, read_checkpoint
from .store import STATUSES, RunError, RunStore, check_run_id


def verify(store: RunStore, load_checkpoints: bool = True) -> list[str]:
    """Problems found in the store; an empty list means it is consistent.

    Checked: SQLite's own integrity check; every status is known; a run's finished epochs are
    numbered 1..epochs_done with a checkpoint file each that loads (weights_only), except epochs
    pruned on purpose (never the last); batch steps
    never run ahead of the epochs; no half-written temporary files beside finished runs; no run
    folder without its run (a runs.db lost or replaced by an older copy)."""
    problems = [f"database: {problem}" for problem in store.database_problems()]
    runs = store.list()
    for run in runs:
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
    problems += [
        f"run folder {run_id} has no record in the store: `mnist-lab check --repair` restores it "
        "(or says why it cannot)"
        for run_id in _folders_without_a_run(store, {run.id for run in runs})
    ]
    return problems


def _folders_without_a_run(store: RunStore, known: set[str]) -> list[str]:
    """Run folders (named like a run id) the store has no row for. A run created since `known`
    was read has its row before its folder, so it is asked for again rather than reported."""
    missing = []
    for folder in store.layout.run_folders():
        try:
            run_id = check_run_id(folder.name)
        except RunError:
            continue  # not a run's folder; the rebuild reports it as skipped
        if run_id in known:
            continue
        try:
            store.get(run_id)
        except RunError:
            missing.append(run_id)
    return missing


def summary(store: RunStore) -> dict:
    """Counts of what the store holds (no file is read: verify() already loads every checkpoint)."""
    runs = store.list()
    return dict(**store.counts(), checkpoints=sum(len(store.layout.epoch_files(r.id)) for r in runs))
