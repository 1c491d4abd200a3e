"""Real faults on a real Ray cluster, each counted with the store snapshots: a worker node's
raylet killed mid-run, the dashboard's process killed while runs train, the head node lost."""

import os
import re
import signal
import subprocess
import sys

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.executor import BackendUnavailable
from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.integrity import verify
from mnist_core.jobs.manager import JobManager
from mnist_core.words import kept_epochs
from support import PAGES_DIR
from support.helpers import wait_until
from support.snapshots import records_lost, snapshot


def cfg(**kw) -> dict:
    """Epochs of 675 batches: a few seconds each on two shared cores, long enough to be caught
    mid-epoch twice and to outlast a dashboard restart, now that fast_cnn's strided stem is fast."""
    return {**dict(model="fast_cnn", epochs=3, limit=24000, batch_size=32, val_fraction=0.1), **kw}


def mid_epoch(jobs: JobManager, run_id: str) -> bool:
    """At least one epoch saved, and the next one partly trained."""
    r = jobs.store.get(run_id)
    p = r.progress
    return r.epochs_done >= 1 and p.get("epoch") == r.epochs_done + 1 and 0 < p.get("batch", 0) < p["batches"]


def test_a_killed_worker_node_is_retried_from_its_last_epoch(ray_jobs, ray_cluster):
    jobs = ray_jobs
    runs = [jobs.submit(cfg(), actor=ADMIN) for _ in range(2)]  # one per node
    worker = next(n for n in ray_cluster.alive_nodes() if not n["head"])
    victim = wait_until(
        lambda: next((r for r in runs if worker["id"] in (jobs.store.get(r.id).node or "")), None), 90
    )
    wait_until(lambda: mid_epoch(jobs, victim.id), timeout_s=90, poll_s=0.02)
    before = snapshot(jobs.store)
    ray_cluster.kill_node(worker["id"])

    log = wait_until(lambda: "retrying once" in (t := jobs.log_tail(victim.id)) and t, timeout_s=90)
    resumed_from = int(re.search(r"retrying once from epoch (\d+)", log).group(1))
    done = [jobs.wait(r.id, timeout_s=240) for r in runs]
    assert [r.status for r in done] == ["completed", "completed"], [jobs.log_tail(r.id) for r in runs]
    retried = jobs.store.get(victim.id)
    assert retried.epochs_done == 3 and f"retried after node {worker['id']}: NodeDiedError" in retried.node, (
        retried.node
    )
    # the unfinished epoch of the lost node is trained again; everything finished before is kept
    before.batches = {k: v for k, v in before.batches.items() if k[0] != victim.id or v[0] <= resumed_from}
    assert records_lost(before, snapshot(jobs.store)) == []
    assert verify(jobs.store) == []


def test_a_run_whose_retry_node_is_lost_too_is_interrupted_with_the_reason(ray_jobs, ray_cluster):
    jobs = ray_jobs
    # one on the head, one on the other node
    runs = [jobs.submit(cfg(epochs=8), actor=ADMIN) for _ in range(2)]
    first = next(n for n in ray_cluster.alive_nodes() if not n["head"])
    victim = wait_until(
        lambda: next((r for r in runs if first["id"] in (jobs.store.get(r.id).node or "")), None), 90
    )
    wait_until(lambda: mid_epoch(jobs, victim.id), timeout_s=90, poll_s=0.02)
    ray_cluster.add_node()  # a free node for the retry
    second = next(n for n in ray_cluster.alive_nodes() if not n["head"] and n["id"] != first["id"])
    ray_cluster.kill_node(first["id"])
    wait_until(lambda: second["id"] in (jobs.store.get(victim.id).node or ""), timeout_s=90)
    wait_until(lambda: mid_epoch(jobs, victim.id), timeout_s=90, poll_s=0.02)
    before = snapshot(jobs.store)
    ray_cluster.kill_node(second["id"])
    lost = wait_until(lambda: (r := jobs.get(victim.id)).status != "running" and r, timeout_s=90)
    assert lost.status == "interrupted", (lost.status, lost.reason)
    both = f"node {first['id']}: NodeDiedError; node {second['id']}: NodeDiedError"
    assert f"lost 2 times ({both})" in lost.reason, lost.reason
    assert kept_epochs(lost.epochs_done) in lost.reason, lost.reason
    jobs.stop(next(r.id for r in runs if r.id != victim.id), actor=ADMIN)
    assert records_lost(before, snapshot(jobs.store)) == []
    assert verify(jobs.store) == []


def test_the_dashboard_restarting_leaves_cluster_runs_training(ray_jobs, ray_cluster, monkeypatch):
    jobs = ray_jobs
    code = (
        "from mnist_core.jobs.manager import JobManager; from mnist_core.jobs.identity import ADMIN; "
        "import sys, time; "
        # five epochs: on a fast machine three could end before the fresh page's first view
        f"run = JobManager().submit({cfg(epochs=5)!r}, actor=ADMIN); print(run.id, flush=True); "
        "time.sleep(600)"
    )
    dashboard = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        run_id = dashboard.stdout.readline().strip()
        wait_until(lambda: mid_epoch(jobs, run_id), timeout_s=90, poll_s=0.02)
        before = snapshot(jobs.store)
        os.kill(dashboard.pid, signal.SIGKILL)  # the dashboard's process dies mid-run
        dashboard.wait()
    finally:
        dashboard.kill()
    bridge = jobs.store.get(run_id).pid
    assert bridge and bridge != dashboard.pid
    step = jobs.store.get(run_id).progress["step"]
    wait_until(lambda: jobs.get(run_id).progress.get("step", 0) > step + 20, timeout_s=30)  # still training

    st.cache_resource.clear()  # a fresh dashboard process: the Train page reattaches
    page = AppTest.from_file(str(PAGES_DIR / "train.py"), default_timeout=60).run()
    assert not page.exception
    assert page.session_state["train_run_id"] == run_id
    headings = [s.value for s in page.subheader]
    assert any(run_id in h and "running" in h for h in headings), (headings, jobs.get(run_id).progress)

    done = jobs.wait(run_id, timeout_s=180)
    assert done.status == "completed" and done.epochs_done == 5, jobs.log_tail(run_id)
    assert records_lost(before, snapshot(jobs.store)) == []
    assert verify(jobs.store) == []


def test_the_head_node_lost_interrupts_runs_with_the_reason(ray_jobs, ray_cluster):
    """Last: it ends the session's cluster (the fixture's finalizer stops what is left)."""
    jobs = ray_jobs
    run = jobs.submit(cfg(epochs=6), actor=ADMIN)
    wait_until(lambda: mid_epoch(jobs, run.id), timeout_s=90, poll_s=0.02)
    before = snapshot(jobs.store)
    ray_cluster.broken = True
    ray_cluster.kill_head()
    lost = wait_until(lambda: (r := jobs.get(run.id)).status != "running" and r, timeout_s=60)
    assert lost.status == "interrupted", (lost.status, lost.reason)
    assert "head node at 127.0.0.1:6399 stopped answering" in lost.reason, lost.reason
    assert kept_epochs(lost.epochs_done) in lost.reason and "Extend continues it" in lost.reason
    assert records_lost(before, snapshot(jobs.store)) == []
    assert verify(jobs.store) == []
    # and while the cluster is gone, a new run is refused with the reason instead of queued
    with pytest.raises(BackendUnavailable, match="does not answer") as refused:
        jobs.submit(cfg(), actor=ADMIN)
    assert "MNIST_LAB_RAY_ADDRESS" in str(refused.value)
