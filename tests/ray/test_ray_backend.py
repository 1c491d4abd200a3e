"""The job API on a real two-node Ray cluster: queue, Stop, Extend, Clone, Delete, live curves,
the node each run used, the cluster on Home, and MNIST reaching nodes that have no copy of it."""

import statistics
import time

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.executor import backend_status
from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.integrity import verify
from mnist_core.jobs.store import RunError
from support import ROOT
from support.helpers import wait_until
from support.snapshots import records_lost, snapshot


def cfg(**kw) -> dict:
    return {**dict(model="fast_cnn", epochs=2, limit=8000, batch_size=32, val_fraction=0.1), **kw}


def live_lags(jobs, run_id: str) -> list[float]:
    """While the run trains: how long each batch's loss had existed when a reader first saw it."""
    lags, seen = [], 0
    while jobs.store.get(run_id).status == "running":
        now = time.time()
        rows = jobs.store.batch_times(run_id, seen)
        lags += [now - t for _, t in rows]
        seen = rows[-1][0] if rows else seen
        time.sleep(0.05)
    return lags


def test_runs_on_the_cluster_keep_the_job_semantics(ray_jobs, ray_cluster):
    jobs = ray_jobs
    status = backend_status()
    assert status["backend"] == "ray" and status["error"] is None
    assert len(status["nodes"]) == 2 and status["cpus"] == 2 and status["gpus"] == 0
    assert jobs.max_concurrent == 2  # one run per node at 1 CPU each

    a, b, c = (jobs.submit(cfg(), actor=ADMIN) for _ in range(3))
    assert (a.status, b.status, c.status) == ("running", "running", "queued")
    assert c.queue_position == 1

    wait_until(lambda: jobs.store.get(b.id).progress.get("batch", 0) > 0, timeout_s=90)
    t0 = time.time()
    stopped = jobs.stop(b.id, actor=ADMIN)
    assert time.time() - t0 < 5, "Stop must answer within seconds"
    assert stopped.status == "stopped" and stopped.reason.startswith("Stopped by request"), stopped.reason
    wait_until(lambda: jobs.get(c.id).status == "running", timeout_s=15)  # the freed slot is taken

    lags = live_lags(jobs, a.id)
    done = jobs.wait(a.id, timeout_s=120)
    assert done.status == "completed", jobs.log_tail(a.id)
    assert len(lags) > 100
    print(f"live lag: median {statistics.median(lags):.3f} s, max {max(lags):.3f} s over {len(lags)} batches")
    assert statistics.median(lags) <= 1.0 and sorted(lags)[int(len(lags) * 0.9)] <= 1.0
    assert done.node.startswith("ray: 127.0.0.1") and "node " in done.node
    assert done.epochs_done == 2 and done.test_acc > 0.9
    assert [e["epoch"] for e in jobs.store.epochs(a.id)] == [1, 2]
    assert "training on 127.0.0.1" in jobs.log_tail(a.id)

    before = snapshot(jobs.store)
    extended = jobs.wait(jobs.extend(a.id, 1, actor=ADMIN).id, timeout_s=120)
    assert extended.status == "completed" and extended.epochs_done == 3, jobs.log_tail(a.id)
    assert records_lost(before, snapshot(jobs.store)) == []  # epochs 1-2 and their curves unchanged
    steps = [s for s, _, _ in jobs.store.batch_losses(a.id)]
    assert steps == list(range(1, len(steps) + 1))  # the curve continues where it stopped

    clone = jobs.clone(a.id, lr=0.002, epochs=1, actor=ADMIN)
    assert clone.parent == a.id and clone.config["lr"] == 0.002
    assert jobs.wait(clone.id, timeout_s=120).status == "completed", jobs.log_tail(clone.id)
    assert jobs.wait(c.id, timeout_s=120).status == "completed", jobs.log_tail(c.id)

    jobs.delete(b.id, actor=ADMIN)
    with pytest.raises(RunError, match="No run"):
        jobs.get(b.id)
    assert not jobs.store.layout.run_dir(b.id).exists()
    assert verify(jobs.store) == []
    # the nodes have no MNIST of their own ($MNIST_DATA_DIR is empty for them): it came through
    # the object store, and each node keeps its copy in its node-local folder
    assert not (ray_cluster.empty / "no-mnist-here").exists()
    assert len(list((ray_cluster.empty / "node-data").glob("*-ubyte.gz"))) == 4


def test_home_shows_the_cluster(ray_jobs):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    shown = " ".join(s.value for s in at.success)
    assert "Ray cluster at `127.0.0.1:6399`: 2 nodes, 2 CPUs, 0 GPUs" in shown, shown
