"""Background jobs and the run store, driven as the dashboard and CLI drive them."""

import os
import signal
import threading
import time

import pytest

from mnist_core.jobs.store import RunError, RunStore
from mnist_core.learn.checkpoints import load_checkpoint
from mnist_core.learn.config import TrainConfig
from support.helpers import wait_until as wait_for


def cfg(**kw):
    base = dict(model="mlp_128_64", epochs=1, limit=1500, batch_size=50, val_fraction=0.1)
    return TrainConfig.from_dict({**base, **kw})


def test_start_poll_complete(jobs):
    assert not jobs.trains_here()
    run = jobs.submit(cfg(epochs=2))
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
    run = jobs.submit(cfg(model="cnn_basic", epochs=3, limit=20000, batch_size=32))
    wait_for(lambda: len(jobs.store.batch_losses(run.id)) >= 5)
    t0 = time.time()
    stopped = jobs.stop(run.id)
    assert time.time() - t0 < 6
    assert stopped.status == "stopped" and stopped.epochs_done == 0
    assert "Stopped by request" in stopped.reason or "killed" in stopped.reason
    assert stopped.pid is None


def test_kill_9_marks_interrupted_and_keeps_checkpoints(jobs):
    run = jobs.submit(cfg(epochs=50, limit=1000))
    wait_for(lambda: jobs.store.get(run.id).epochs_done >= 1)
    os.kill(jobs.store.get(run.id).pid, signal.SIGKILL)
    t0 = time.time()
    lost = wait_for(lambda: (r := jobs.get(run.id)).status == "interrupted" and r, timeout_s=10)
    assert time.time() - t0 < 5
    assert "ended unexpectedly" in lost.reason
    for e in jobs.store.epochs(run.id):
        assert load_checkpoint(e["checkpoint"]).model is not None


def test_queue_of_three_with_one_cancelled(jobs):
    a, b, c = (jobs.submit(cfg(seed=i)) for i in range(3))
    assert a.status == "running"
    assert (b.status, b.queue_position) == ("queued", 1) and (c.status, c.queue_position) == ("queued", 2)
    cancelled = jobs.stop(b.id)
    assert cancelled.status == "stopped" and "Cancelled" in cancelled.reason
    assert jobs.get(c.id).queue_position in (1, None)  # next in line (or already started)
    done_a, done_c = jobs.wait(a.id), jobs.wait(c.id, timeout_s=180)
    assert done_a.status == done_c.status == "completed"
    assert done_c.started >= done_a.finished - 0.5  # never two at once with concurrency 1
    assert jobs.get(b.id).status == "stopped" and jobs.get(b.id).started is None


def test_extend_continues_the_curves(jobs):
    run = jobs.wait(jobs.submit(cfg(epochs=1)).id)
    first = jobs.store.epochs(run.id)
    steps_before = [s for s, _, _ in jobs.store.batch_losses(run.id)]
    assert run.status == "completed" and run.epochs_done == 1, (run, jobs.log_tail(run.id))
    extended = jobs.extend(run.id, 2)
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
    run = jobs.submit(cfg(model="cnn_1", epochs=2, limit=6000, batch_size=32))
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
    run = jobs.wait(jobs.submit(cfg(model="mlp_500_125", optimizer="sgd", lr=10.0, epochs=2)).id)
    assert run.status == "failed"
    assert "training diverged" in run.reason and "smaller learning rate" in run.reason


@pytest.mark.parametrize("bad", ["..", "../etc", "a/b", "/etc/passwd", "a\\b", "", "x" * 100, "ok..no"])
def test_path_like_run_ids_are_refused(jobs, bad):
    for action in (jobs.store.get, jobs.store.delete, jobs.store.layout.run_dir):
        with pytest.raises(RunError, match="Refused run id"):
            action(bad)


def test_clone_and_delete(jobs):
    run = jobs.wait(jobs.submit(cfg()).id)
    twin = jobs.clone(run.id, weight_decay=0.001)
    assert twin.parent == run.id and twin.config["weight_decay"] == 0.001
    assert twin.config["seed"] == run.config["seed"]
    jobs.wait(twin.id)
    folder = jobs.store.layout.run_dir(run.id)
    assert folder.is_dir()
    jobs.delete(run.id)
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
