"""Faults of the run store's database file: truncated, zeroed or replaced by garbage, then rebuilt.

The scenario follows tests/support/reliability.py: snapshot the store before the fault, damage the
file, check the damage is detected with a clear message, rebuild from the run folders, and count
the records saved before the fault that are missing or changed.
"""

from __future__ import annotations

import random
from pathlib import Path

from mnist_core.jobs import executor
from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.repair import rebuild
from mnist_core.jobs.store import DB_NAME, RunStore, StoreDamaged, StoreLost
from support.helpers import wait_until
from support.reliability import FaultResult, _cfg, _result
from support.snapshots import records_lost, snapshot

DAMAGES = ("truncated", "zeroed", "garbage")


def workers_exited(timeout_s: float = 60) -> None:
    """Wait until every worker this process started has exited (its last connection closed), so
    the database file alone holds the store and nothing writes to it while a test damages it."""
    wait_until(lambda: all(p.poll() is not None for p in list(executor._CHILDREN.values())), timeout_s)


def damage_db(root: Path, kind: str, seed: int = 0) -> bytes:
    """Damage runs.db as a failing disk or a stray write would: the first half only ("truncated"),
    the same length of zero bytes ("zeroed"), or random bytes ("garbage"). Returns what the file
    then holds. The write-ahead log is folded in first, so the file alone was the whole store."""
    store = RunStore(root)
    store.fold_wal()
    store.close()
    db = root / DB_NAME
    data = db.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "zeroed": bytes(len(data)),
        "garbage": random.Random(seed).randbytes(len(data)),
    }[kind]
    db.write_bytes(damaged)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return damaged


def fault_damaged_db(root: Path) -> FaultResult:
    """runs.db truncated, then zeroed, then garbage: each detected on open with a message naming the
    file and the repair, each rebuilt from the run folders with nothing saved lost."""
    jobs = JobManager(RunStore(root), max_concurrent=1)
    runs = [
        jobs.submit(_cfg(model="mlp_128_64", epochs=2, limit=1500, batch_size=50, seed=s), actor=ADMIN)
        for s in (1, 2)
    ]
    completed = all(jobs.wait(run.id, timeout_s=180).status == "completed" for run in runs)
    workers_exited()
    before = snapshot(jobs.store)
    rows = {r.id: r for r in jobs.store.list()}
    jobs.store.close()
    lost: list[str] = []
    notes, ok = [], completed
    for i, kind in enumerate(DAMAGES):
        damaged = damage_db(root, kind, seed=i)
        try:
            RunStore(root)
            detected = ""
        except StoreDamaged as exc:
            detected = str(exc)
        clear = str(root / DB_NAME) in detected and "mnist-lab check --repair" in detected
        report = rebuild(root)
        kept = report.moved_to is not None and report.moved_to.read_bytes() == damaged
        store = RunStore(root)
        same = all(
            (r.status, r.test_acc, r.epochs_done)
            == (rows[r.id].status, rows[r.id].test_acc, rows[r.id].epochs_done)
            for r in store.list()
        )
        lost += [f"after {kind}: {line}" for line in records_lost(before, snapshot(store))]
        ok = ok and clear and kept and same and report.runs == len(rows) and not report.skipped
        notes.append(
            f"{kind}: {'detected' if clear else 'NOT detected clearly'}, rebuilt {report.runs} runs, "
            f"{report.epochs} epochs, {report.batches} batches{'' if kept else ', damaged file NOT kept'}"
        )
        store.close()
    result = _result(
        "damaged runs.db (truncated, zeroed, garbage)", RunStore(root), before, ok, "; ".join(notes)
    )
    result.lost = lost + result.lost
    result.survived = result.survived and not lost
    return result


def fault_deleted_db(root: Path) -> FaultResult:
    """runs.db deleted while a run trains and the dashboard has the store open: the dashboard's
    next read and the worker's next write both fail with the store's message (the worker exits
    instead of training on into the unlinked file), nothing recreates an empty runs.db, and the
    rebuild brings the run back from its folder with every finished epoch."""
    jobs = JobManager(RunStore(root), max_concurrent=1)
    run = jobs.submit(_cfg(model="mlp_128_64", epochs=40, limit=1000, batch_size=50), actor=ADMIN)
    wait_until(lambda: jobs.store.get(run.id).epochs_done >= 2, timeout_s=120)
    before = snapshot(jobs.store)
    training = jobs.store.get(run.id)
    db = root / DB_NAME
    db.unlink()
    try:
        jobs.list()
        page = ""
    except StoreLost as exc:
        page = str(exc)
    clear = "records went missing" in page and "mnist-lab check --repair" in page
    exited = True
    try:
        wait_until(lambda: not jobs.executor.alive(training), timeout_s=30)
    except AssertionError:
        exited = False
    log = jobs.log_tail(run.id, lines=400)
    worker_told = "records went missing" in log
    recreated = db.exists()
    report = rebuild(root)
    store = RunStore(root)
    back = store.get(run.id)
    before.batches = {k: v for k, v in before.batches.items() if v[0] <= back.epochs_done}
    ok = (
        clear
        and exited
        and worker_told
        and not recreated
        and report.runs == 1
        and back.status == "interrupted"
        and back.epochs_done >= training.epochs_done
    )
    detail = (
        f"dashboard {'told' if clear else 'NOT told'}, worker {'exited' if exited else 'still training'}"
        f" and {'logged' if worker_told else 'did NOT log'} the store's message, runs.db "
        f"{'RECREATED' if recreated else 'not recreated'}; rebuilt {report.runs} run, "
        f"{back.epochs_done} epochs ({training.epochs_done} when deleted), {back.status}"
    )
    return _result("runs.db deleted while a run trains", store, before, ok, detail)
