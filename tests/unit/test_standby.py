"""Warm workers (standby.py): a run handed to an idle, warmed-up process behaves as a cold one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_core.jobs import standby
from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from support import ROOT
from support.helpers import wait_until


def cfg(**kw):
    base = dict(model="mlp_128_64", epochs=1, limit=1500, batch_size=50, val_fraction=0.1)
    return TrainConfig.from_dict({**base, **kw})


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


@pytest.fixture()
def warm(tmp_path, monkeypatch):
    """A JobManager with one warm worker kept ready; every standby it started is gone afterwards."""
    monkeypatch.setenv(standby.WARM_ENV, "1")
    monkeypatch.setenv(standby.IDLE_ENV, "60")
    manager = JobManager(RunStore(tmp_path / "store"), max_concurrent=1)
    manager.key = standby.key_for(manager.executor.run_environment(1))
    manager.prepare()
    yield manager
    for run in manager.store.list(("running", "queued")):
        manager.stop(run.id, grace_s=2, actor=ADMIN)
    for pid in standby_pids(manager.store.root):  # any key: ready or warming
        os.kill(pid, signal.SIGTERM)


def standby_pids(root: Path) -> list[int]:
    """Pids of the live standby processes of this store, found by their command lines (any key,
    ready, warming or claimed): what `ps` would show, not what the standby folder says."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--standby" in args and str(root).encode() in args and not gone(int(proc.name)):
            found.append(int(proc.name))
    return sorted(found)


def ready_pid(jobs) -> int:
    """The one ready standby, polling the job list as the dashboard's sidebar does."""

    def polled():
        jobs.list()
        return standby.ready(jobs.store.root, jobs.key)

    [(pid, _)] = wait_until(polled, timeout_s=90, poll_s=0.1)
    return pid


def test_a_run_goes_to_the_warm_worker_and_a_fresh_one_is_warmed(warm):
    pid = ready_pid(warm)
    assert b"--standby" in cmdline(pid)
    run = warm.submit(cfg(epochs=2, limit=20000), actor=ADMIN)
    assert run.status == "running" and run.pid == pid  # handed over, no new process
    # the only slot is taken: nothing warms up beside the run, however often the dashboard polls
    for _ in range(5):
        assert [r.status for r in warm.list()] == ["running"]
        assert standby.ready(warm.store.root, warm.key) == standby.warming(warm.store.root, warm.key) == []
        time.sleep(0.1)
    done = warm.wait(run.id, timeout_s=120)
    assert done.status == "completed" and done.epochs_done == 2 and done.test_acc > 0.5
    log = warm.log_tail(run.id)
    assert "ended (completed)" in log and "epoch 2/2" in log  # its output went to the run's log
    assert done.precision and done.precision.split(" · ")[0] in ("bf16", "fp32")
    wait_until(lambda: gone(pid), timeout_s=20)  # one run per process: it ended with the run
    assert ready_pid(warm) != pid  # the slot is free: the next run has a warm worker too
    second = warm.submit(cfg(seed=1), actor=ADMIN)
    assert warm.wait(second.id, timeout_s=120).status == "completed"


def test_stop_and_kill_9_of_a_warm_run(warm):
    ready_pid(warm)
    run = warm.submit(cfg(model="cnn_basic", epochs=3, limit=20000, batch_size=32), actor=ADMIN)
    wait_until(lambda: len(warm.store.batch_losses(run.id)) >= 5)
    t0 = time.time()
    stopped = warm.stop(run.id, actor=ADMIN)
    assert time.time() - t0 < 6
    assert stopped.status == "stopped" and "Stopped by request" in stopped.reason

    ready_pid(warm)
    run = warm.submit(cfg(epochs=50, limit=1000), actor=ADMIN)
    wait_until(lambda: warm.store.get(run.id).epochs_done >= 1)
    # a dashboard restarting meanwhile (a new JobManager) sees the warm run as alive
    restarted = JobManager(RunStore(warm.store.root), max_concurrent=1)
    assert restarted.reap() == [] and restarted.get(run.id).status == "running"
    os.kill(warm.store.get(run.id).pid, signal.SIGKILL)
    lost = wait_until(lambda: (r := restarted.get(run.id)).status == "interrupted" and r, timeout_s=10)
    assert "ended unexpectedly" in lost.reason


def test_a_stop_before_the_warm_worker_reads_its_run_ends_stopped(warm):
    pid = ready_pid(warm)

    def stop_at_once(claimed_pid):  # SIGTERM lands between the claim and the run id arriving
        warm.store.update(run.id, pid=claimed_pid)
        os.kill(claimed_pid, signal.SIGTERM)

    run = warm.store.create(cfg(epochs=5).to_dict())
    warm.store.claim_queued(1)
    assert standby.hand_off(warm.store.root, warm.key, run.id, stop_at_once) == pid
    done = warm.wait(run.id, timeout_s=60)
    assert done.status == "stopped", (done.status, done.reason, warm.log_tail(run.id))


def test_a_warm_worker_is_only_used_for_the_same_environment(warm, monkeypatch):
    pid = ready_pid(warm)
    monkeypatch.setenv("MNIST_LAB_RUN_MEMORY_MB", "4000")  # what a fresh worker would see differs
    run = warm.submit(cfg(), actor=ADMIN)
    assert run.pid != pid and run.id.encode() in cmdline(run.pid)  # a cold start, as before
    assert warm.wait(run.id, timeout_s=120).status == "completed"
    assert not gone(pid)  # the other one still waits for a run of its own environment


def test_an_idle_warm_worker_retires(tmp_path, monkeypatch):
    monkeypatch.setenv(standby.WARM_ENV, "1")
    monkeypatch.setenv(standby.IDLE_ENV, "1")
    jobs = JobManager(RunStore(tmp_path / "store"), max_concurrent=1)
    jobs.key = standby.key_for(jobs.executor.run_environment(1))
    jobs.prepare()
    jobs.prepare()  # a second call while it warms up starts no second one
    assert len(standby.warming(jobs.store.root, jobs.key)) == 1
    [pid] = standby.warming(jobs.store.root, jobs.key)
    wait_until(lambda: gone(pid), timeout_s=90)  # warmed up, waited a second, left
    assert standby.ready(jobs.store.root, jobs.key) == []
    assert list((jobs.store.root / "standby").glob("*.fifo")) == []
    run = jobs.submit(cfg(), actor=ADMIN)  # with no warm worker, runs start cold exactly as before
    assert run.id.encode() in cmdline(run.pid)
    assert jobs.wait(run.id, timeout_s=120).status == "completed"


def test_libraries_the_dashboard_imports_do_not_change_the_key():
    from mnist_core.jobs.executor import LocalExecutor

    before = standby.key_for(LocalExecutor().run_environment(1))
    import captum.attr  # noqa: F401  (the Draw and Evaluate pages import these; they set KMP_*)
    import sklearn.metrics  # noqa: F401

    import mnist_core.learn.engine  # noqa: F401

    assert standby.key_for(LocalExecutor().run_environment(1)) == before


DASHBOARD = """
import sys, time
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
JobManager(RunStore(sys.argv[1]), max_concurrent=1).prepare()  # as pages/ui/resources.py does
print("prepared", flush=True)
time.sleep(600)
"""


def test_a_standby_is_adopted_by_the_next_dashboard_and_ends_with_the_last(tmp_path):
    """Two real dashboard processes of one store, one after the other, as a restart does: the second
    adopts the first one's warm worker, and it ends once neither is alive."""
    root = tmp_path / "store"
    orphan_s = 3.0
    env = {
        **os.environ,
        standby.WARM_ENV: "1",
        standby.IDLE_ENV: "120",
        standby.ORPHAN_ENV: str(orphan_s),
    }
    dashboards: list[subprocess.Popen] = []

    def dashboard() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", DASHBOARD, str(root)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        dashboards.append(proc)
        assert proc.stdout.readline().strip() == "prepared"
        return proc

    try:
        first = dashboard()
        [pid] = wait_until(lambda: standby_pids(root), timeout_s=60)
        [record] = (root / "standby").glob(f"*.{first.pid}.dashboard")  # it names the key
        key = record.name.split(".")[0]
        wait_until(lambda: standby.ready(root, key), timeout_s=120, poll_s=0.2)  # warmed up, waiting
        second = dashboard()
        assert standby.dashboards(root, key) == sorted([first.pid, second.pid])
        time.sleep(1.0)
        assert standby_pids(root) == [pid]  # adopted: no second warm worker
        first.kill()
        first.wait()
        time.sleep(orphan_s + 2 * standby.DASHBOARD_CHECK_S)
        assert standby_pids(root) == [pid]  # the second dashboard still keeps it
        assert standby.dashboards(root, key) == [second.pid]  # the first one's record is gone
        second.kill()
        second.wait()
        t0 = time.time()
        wait_until(lambda: gone(pid), timeout_s=orphan_s + 10, poll_s=0.1)
        assert time.time() - t0 <= orphan_s + 3 * standby.DASHBOARD_CHECK_S
        assert list((root / "standby").glob("*.fifo")) == []  # it retired cleanly
    finally:
        for proc in dashboards:  # only what this test started, by pid
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for left in standby_pids(root):
            os.kill(left, signal.SIGTERM)
