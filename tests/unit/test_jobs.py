"""Background jobs and the run store, driven as the dashboard and CLI drive them."""

import os
import signal
import threading
import time

import pytest

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.store import RunError, RunStore
from mnist_core.learn.checkpoints import load_checkpoint
from mnist_core.learn.config import TrainConfig
from support.helpers import wait_until as wait_for


def cfg(**kw):
    base = dict(model="mlp_128_64", epochs=1, limit=1500, batch_size=50, val_fraction=0.1)
    return TrainConfig.from_dict({**base, **kw})


def test_start_poll_complete(jobs):
    assert not jobs.trains_here()
    run = jobs.submit(cfg(epochs=2), actor=ADMIN)
    assert run.status == "running" and run.pid
    assert jobs.trains_here()  # the dashboard computes on one thread meanwhile (pages/ui/resources.py)
    done = jobs.wait(run.id, timeout_s=120)
    assert done.status == "completed", jobs.log_tail(run.id)
    assert not jobs.trains_here()
    assert done.epochs_done == 2 and done.test_acc > 0.5 and done.best_val_acc > 0.5
    epochs = jobs.store.epochs(run.id)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"train_loss", "val_loss", "train_acc", "val_acc", "lr", "images_per_s"} <= set(epochs[0])
    assert len(jobs.store.batch_losses(run.id)) == 2 * 30  # 1500 images / 50 per batch
    assert load_checkpoint(epochs[1]["checkpoint"]).model is not None
    assert load_checkpoint(jobs.store.layout.best_checkpoint(run.id)).meta["model_key"] == "mlp_128_64"
    assert "ended (completed)" in jobs.log_tail(run.id)


def test_stop_mid_epoch(jobs):
    run = jobs.submit(cfg(model="cnn_basic", epochs=3, limit=20000, batch_size=32), actor=ADMIN)
    wait_for(lambda: len(jobs.store.batch_losses(run.id)) >= 5)
    t0 = time.time()
    stopped = jobs.stop(run.id, actor=ADMIN)
    assert time.time() - t0 < 6
    assert stopped.status == "stopped" and stopped.epochs_done == 0
    assert "Stopped by request" in stopped.reason or "killed" in stopped.reason
    assert stopped.pid is None


def test_kill_9_marks_interrupted_and_keeps_checkpoints(jobs):
    run = jobs.submit(cfg(epochs=50, limit=1000), actor=ADMIN)
    wait_for(lambda: jobs.store.get(run.id).epochs_done >= 1)
    os.kill(jobs.store.get(run.id).pid, signal.SIGKILL)
    t0 = time.time()
    lost = wait_for(lambda: (r := jobs.get(run.id)).status == "interrupted" and r, timeout_s=10)
    assert time.time() - t0 < 5
    assert "ended unexpectedly" in lost.reason
    for e in jobs.store.epochs(run.id):
        assert load_checkpoint(e["checkpoint"]).model is not None


def test_queue_of_three_with_one_cancelled(jobs):
    a, b, c = (jobs.submit(cfg(seed=i), actor=ADMIN) for i in range(3))
    assert a.status == "running"
    assert (b.status, b.queue_position) == ("queued", 1) and (c.status, c.queue_position) == ("queued", 2)
    cancelled = jobs.stop(b.id, actor=ADMIN)
    assert cancelled.status == "stopped" and "Cancelled" in cancelled.reason
    assert jobs.get(c.id).queue_position in (1, None)  # next in line (or already started)
    done_a, done_c = jobs.wait(a.id), jobs.wait(c.id, timeout_s=180)
    assert done_a.status == done_c.status == "completed"
    assert done_c.started >= done_a.finished - 0.5  # never two at once with concurrency 1
    assert jobs.get(b.id).status == "stopped" and jobs.get(b.id).started is None


def test_extend_continues_the_curves(jobs):
    run = jobs.wait(jobs.submit(cfg(epochs=1), actor=ADMIN).id)
    first = jobs.store.epochs(run.id)
    steps_before = [s for s, _, _ in jobs.store.batch_losses(run.id)]
    assert run.status == "completed" and run.epochs_done == 1, (run, jobs.log_tail(run.id))
    extended = jobs.extend(run.id, 2, actor=ADMIN)
    assert extended.config["epochs"] == 3
    done = jobs.wait(run.id)
    assert done.status == "completed" and done.epochs_done == 3
    epochs = jobs.store.epochs(run.id)
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and epochs[0] == first[0]
    assert epochs[2]["elapsed_s"] > epochs[0]["elapsed_s"]
    steps = [s for s, _, _ in jobs.store.batch_losses(run.id)]
    assert steps[: len(steps_before)] == steps_before and steps == list(range(1, 3 * len(steps_before) + 1))
    assert "resuming after epoch 1" in jobs.log_tail(run.id)


def test_reader_polls_while_writer_writes(jobs):
    run = jobs.submit(cfg(model="cnn_1", epochs=2, limit=6000, batch_size=32), actor=ADMIN)
    errors, latencies, counts = [], [], []
    store = RunStore(jobs.store.root)  # a second connection, as another page would have

    def reader():
        seen = 0
        while True:
            try:
                rows = store.batch_times(run.id, seen)
                now = time.time()
                latencies.extend(now - t for _, t in rows)
                if rows:
                    seen = rows[-1][0]
                counts.append(seen)
                status = store.get(run.id).status
                store.list()
            except Exception as exc:  # "database is locked" would land here
                errors.append(exc)
                return
            if status not in ("queued", "running"):
                return
            time.sleep(0.02)

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join(timeout=180)
    assert not errors
    assert jobs.store.get(run.id).status == "completed"
    assert counts == sorted(counts) and counts[-1] == len(jobs.store.batch_losses(run.id))
    latencies.sort()
    assert latencies[len(latencies) // 2] < 1.0 and latencies[-1] < 1.5


def test_nan_loss_fails_with_a_message(jobs):
    run = jobs.wait(jobs.submit(cfg(model="mlp_500_125", optimizer="sgd", lr=10.0, epochs=2), actor=ADMIN).id)
    assert run.status == "failed"
    assert "training diverged" in run.reason and "smaller learning rate" in run.reason


@pytest.mark.parametrize("bad", ["..", "../etc", "a/b", "/etc/passwd", "a\\b", "", "x" * 100, "ok..no"])
def test_path_like_run_ids_are_refused(jobs, bad):
    for action in (jobs.store.get, jobs.store.delete, jobs.store.layout.run_dir):
        with pytest.raises(RunError, match="Refused run id"):
            action(bad)


def test_clone_and_delete(jobs):
    run = jobs.wait(jobs.submit(cfg(), actor=ADMIN).id)
    twin = jobs.clone(run.id, weight_decay=0.001, actor=ADMIN)
    assert twin.parent == run.id and twin.config["weight_decay"] == 0.001
    assert twin.config["seed"] == run.config["seed"]
    jobs.wait(twin.id)
    folder = jobs.store.layout.run_dir(run.id)
    assert folder.is_dir()
    jobs.delete(run.id, actor=ADMIN)
    assert not folder.exists() and jobs.store.batch_losses(run.id) == []
    with pytest.raises(RunError, match="No run"):
        jobs.store.get(run.id)


def test_cli_background_runs_stop(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "MNIST_LAB_CHECKPOINTS": str(tmp_path / "cli"), "MNIST_LAB_MAX_RUNS": "1"}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "mnist_core", *args], capture_output=True, text=True, env=env, timeout=120
        )

    out = cli("train", "--model", "cnn_basic", "--epochs", "5", "--limit", "20000", "--background")
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().split("=")[1].split()[0]
    listing = cli("runs").stdout
    assert run_id in listing and ("running" in listing or "queued" in listing)
    stopped = cli("stop", run_id)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert f"{run_id} stopped" in cli("runs").stdout
    refused = cli("stop", "../evil")
    assert refused.returncode == 2 and "Refused run id" in refused.stderr


# ---- the store's file lost under a live store, and the races of finding 10 ----
def _completed_run(store: RunStore, **fields):
    run = store.create(cfg().to_dict(), **fields)
    store.update(run.id, status="completed", finished=time.time(), test_acc=0.9)
    return run


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_runs_db_deleted_or_replaced_under_a_live_store_is_refused_on_every_access(tmp_path, how):
    from mnist_core.jobs.identity import ADMIN
    from mnist_core.jobs.manager import JobManager
    from mnist_core.jobs.store import DB_NAME, StoreDamaged, StoreLost

    root = tmp_path / "store"
    jobs = JobManager(RunStore(root), max_concurrent=1)
    run = _completed_run(jobs.store)
    jobs.store.fold_wal()
    db = root / DB_NAME
    if how == "deleted":
        db.unlink()  # a careless `rm`, a cleanup script
    else:
        copy = root / "copy.db"
        copy.write_bytes(db.read_bytes())
        os.replace(copy, db)  # an old copy put in its place
    actions = {
        "list": lambda: jobs.list(),
        "get": lambda: jobs.get(run.id),
        "submit": lambda: jobs.submit(cfg(), actor=ADMIN),
        "create": lambda: jobs.store.create(cfg().to_dict()),
        "update": lambda: jobs.store.update(run.id, reason="x"),
        "setting": lambda: jobs.store.set_setting("k", 1),
    }
    for name, action in actions.items():
        with pytest.raises(StoreLost) as caught:
            action()
        message = str(caught.value)
        assert "records went missing" in message and "mnist-lab check --repair" in message, name
        assert str(db) in message and how in message
    errors = []  # another thread: a new connection is refused too, it never creates a file
    thread = threading.Thread(target=lambda: errors.append(pytest.raises(StoreLost, jobs.store.list)))
    thread.start()
    thread.join()
    assert errors and db.exists() == (how == "replaced")
    if how == "deleted":
        with pytest.raises(StoreDamaged, match="missing but 1 run folder"):
            RunStore(root)  # a restarted dashboard: refused on open, as before
        assert not db.exists()


def test_a_write_whose_file_is_deleted_before_it_commits_is_rolled_back(tmp_path):
    import sqlite3

    from mnist_core.jobs.store import DB_NAME, StoreLost

    store = RunStore(tmp_path / "store")
    run = store.create(cfg().to_dict())
    other = RunStore(store.root)  # a second process's store, its connection open on the same file
    store.fold_wal()
    kept = store.root / "kept.db"
    os.link(store.root / DB_NAME, kept)  # a second name, to look inside the file once it is unlinked
    with pytest.raises(StoreLost, match="was deleted"):
        with store.tx() as c:
            c.execute("UPDATE runs SET reason = 'written' WHERE id = ?", (run.id,))
            (store.root / DB_NAME).unlink()  # deleted while the write is under way
    with pytest.raises(StoreLost):
        other.get(run.id)  # its open connection is not used on a file that is gone
    assert sqlite3.connect(kept).execute("SELECT reason FROM runs").fetchall() == [(None,)]
    assert not (store.root / DB_NAME).exists()


class _KillMeetsTheEnd:
    """A real process that ignores SIGTERM, named after its run, as a worker that does not stop."""

    def __init__(self, run_id: str):
        import subprocess
        import sys

        code = (
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print(1, flush=True); time.sleep(60)"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code, run_id], stdout=subprocess.PIPE)
        assert self.proc.stdout.readline()  # its handler is set: SIGTERM alone will not end it

    def end(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def test_stop_leaves_a_run_that_completed_as_it_was_killed_completed(tmp_path):
    from mnist_core.jobs.executor import LocalExecutor
    from mnist_core.jobs.identity import ADMIN
    from mnist_core.jobs.manager import JobManager

    store = RunStore(tmp_path / "store")

    class CompletesAsItIsKilled(LocalExecutor):
        def kill(self, run):  # the worker's last write lands between stop's read and its write
            store.update(run.id, status="completed", finished=time.time(), pid=None, test_acc=0.9)
            super().kill(run)

    jobs = JobManager(store, max_concurrent=1, executor=CompletesAsItIsKilled())
    run = store.create(cfg().to_dict())
    assert store.claim_queued(1) == [run.id]
    worker = _KillMeetsTheEnd(run.id)
    try:
        store.update(run.id, pid=worker.proc.pid)
        after = jobs.stop(run.id, grace_s=0.3, actor=ADMIN)
        assert worker.proc.wait(timeout=10) == -signal.SIGKILL  # it was killed
    finally:
        worker.end()
    assert (after.status, after.test_acc, after.reason) == ("completed", 0.9, None)
    assert store.read_mirror(run.id)["status"] == "completed"


@pytest.mark.parametrize("meanwhile", ["completed", "restarted"])
def test_reap_marks_a_run_interrupted_only_while_it_runs_under_the_dead_process(tmp_path, meanwhile):
    import subprocess
    import sys

    from mnist_core.jobs.executor import LocalExecutor, reap

    store = RunStore(tmp_path / "store")
    run = store.create(cfg().to_dict())
    store.claim_queued(1)
    dead = subprocess.Popen([sys.executable, "-c", "pass", run.id])
    dead.wait()
    store.update(run.id, pid=dead.pid)
    new_worker = _KillMeetsTheEnd(run.id)

    class SomethingHappensBetween(LocalExecutor):
        def lost_reason(self, r, epochs_done):  # called between reap's last read and its write
            if meanwhile == "completed":
                store.update(r.id, status="completed", finished=time.time(), pid=None)
            else:  # handed to another worker process since reap listed it
                store.update(r.id, pid=new_worker.proc.pid)
            return super().lost_reason(r, epochs_done)

    try:
        assert reap(store, SomethingHappensBetween()) == []
        after = store.get(run.id)
    finally:
        new_worker.end()
    if meanwhile == "completed":
        assert after.status == "completed" and after.reason is None
    else:
        assert after.status == "running" and after.pid == new_worker.proc.pid
    assert reap(store, LocalExecutor()) == ([] if meanwhile == "completed" else [run.id])


def test_the_class_queue_limit_is_checked_in_the_transaction_that_queues_the_run(tmp_path, monkeypatch):
    from mnist_core.jobs import disk
    from mnist_core.jobs.classroom import ClassPolicy
    from mnist_core.jobs.identity import ADMIN, User
    from mnist_core.jobs.manager import JobManager

    ada = User("ada@school.example", "Ada", "learner")
    jobs = JobManager(RunStore(tmp_path / "store"), max_concurrent=1)
    jobs.set_policy(ClassPolicy(max_queued=1), actor=ADMIN)
    other_tab = RunStore(jobs.store.root)
    real_check = disk.check_fits

    def second_tab_submits_meanwhile(*args, **kwargs):  # after submit's own count, before the insert
        other_tab.create(cfg().to_dict(), owner=ada.id)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(disk, "check_fits", second_tab_submits_meanwhile)
    with pytest.raises(RunError, match="already have 1 run queued or training; the class limit is 1"):
        jobs.submit(cfg(), actor=ada)
    assert jobs.store.active_count(ada.id) == 1

    # and many processes' stores at once, straight at the store: exactly the limit gets in
    from mnist_core.jobs.store import ActiveLimitReached

    barrier, results = threading.Barrier(6), []

    def submit():
        store = RunStore(jobs.store.root)
        barrier.wait()
        try:
            results.append(store.create(cfg().to_dict(), owner="ben", max_active_for_owner=2).id)
        except ActiveLimitReached:
            results.append(None)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 2 == jobs.store.active_count("ben")


def test_one_request_key_makes_one_run_however_many_submit_it_at_once(tmp_path):
    root = tmp_path / "store"
    RunStore(root)
    barrier, ids = threading.Barrier(5), []

    def submit():
        store = RunStore(root)
        barrier.wait()
        ids.append(store.create(cfg().to_dict(), owner="ada", request_key="lesson:ada:line:1:hidden:0").id)

    threads = [threading.Thread(target=submit) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids) == 5 and len(RunStore(root).list()) == 1
