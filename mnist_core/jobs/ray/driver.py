"""A run on the Ray cluster, driven from the dashboard machine: the run's one writer to the store.

    python -m mnist_core.jobs.ray.driver --root DIR --address HOST:PORT RUN_ID   (started by RayExecutor)
    python -m mnist_core.jobs.ray.driver --status HOST:PORT                      (the nodes, as JSON)

The bridge is a Ray driver in its own session, like a local worker: it puts MNIST into the object
store, submits the run as a generator task (ray_node.train_on_node) with the run's resources, and
writes every record the task yields into the store. SIGTERM or the store's stop flag cancels the
task (Stop); a node lost mid-run is retried once from the last epoch checkpoint, on another node;
a head node that stops answering marks the run interrupted with the reason."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback

os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # Ray's C++ logs stay out of the run's log
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402  (this module is only ever run as the bridge process)

from ...words import count, kept_epochs
from .. import executor, worker
from ..store import RunStore
from ..worker import log
from . import node as ray_node
from . import settings as ray_backend

ATTEMPTS = 2  # the first try and one retry after a lost node
WATCH_EVERY_S = 0.5
GONE_AFTER = 3  # failed checks of the head node's port in a row: the cluster is lost


class Bridge:
    def __init__(self, store: RunStore, run_id: str, address: str):
        self.store, self.run_id, self.address = store, run_id, address
        self.stop = threading.Event()
        self.ended = threading.Lock()  # one final status: the main loop's or the watchdog's
        self.node = ""  # "ADDRESS (HOST, node ID)" of the node training the run now
        self.node_id = "?"
        self.lost: list[str] = []  # "node ID: what Ray said", per node lost under the run

    # ---- final states ----
    def finish(self, **fields) -> bool:
        """Write the run's final status once; False when the other thread already did."""
        if not self.ended.acquire(blocking=False):
            return False
        if self.store.get(self.run_id).status == "running":
            self.store.update(self.run_id, finished=time.time(), pid=None, **fields)
        return True

    def watch_head(self) -> None:
        """The head node gone (its port closed) ends the run as interrupted within seconds: a Ray
        driver whose cluster is gone otherwise waits a minute and exits without a word. (One whose
        own raylet was the head's dies at once; then `reap` writes the same reason.)"""
        misses = 0
        while True:
            time.sleep(WATCH_EVERY_S)
            ray_backend._REACH.pop(self.address, None)
            misses = misses + 1 if ray_backend.unreachable(self.address) else 0
            if misses < GONE_AFTER:
                continue
            record = self.store.get(self.run_id)
            reason = ray_backend.head_lost(self.address, record.node, record.epochs_done)
            if self.finish(status="interrupted", reason=reason):
                log(f"run {self.run_id} interrupted: {reason}")
                os._exit(3)  # Ray's own threads would wait for the head; nothing is left to write
            return

    # ---- the run ----
    def run(self) -> int:
        record = self.store.get(self.run_id)
        epochs = record.config["epochs"]
        log(f"run {self.run_id}: {record.model}, {epochs} epochs, on the Ray cluster at {self.address}")
        connect(self.address)
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        threading.Thread(target=self.watch_head, name="watch-head", daemon=True).start()
        files = ray.put(ray_node.mnist_files())  # once per run, through the object store
        resources = ray_backend.run_resources(ray.cluster_resources().get("GPU", 0))
        task = ray.remote(ray_node.train_on_node)
        t0 = time.time()
        for attempt in range(1, ATTEMPTS + 1):
            outcome = self.attempt(task, files, resources)
            if outcome != "node lost":
                break
            done = self.store.get(self.run_id).epochs_done
            if attempt < ATTEMPTS:
                log(f"node lost ({self.lost[-1]}); retrying once from epoch {done} on another node")
            else:
                self.finish(
                    status="interrupted",
                    reason=(
                        f"The cluster node running it was lost {ATTEMPTS} times ({'; '.join(self.lost)}). "
                        f"{kept_epochs(done)}; Extend continues it."
                    ),
                )
        self.add_train_seconds(record.train_seconds, time.time() - t0)
        return 0

    def add_train_seconds(self, before: float, seconds: float) -> None:
        self.store.update(self.run_id, train_seconds=before + seconds)

    def attempt(self, task, files, resources: dict) -> str:
        """One try on the cluster: 'done', 'stopped', 'failed' or 'node lost'."""
        store, run_id = self.store, self.run_id
        record = store.get(run_id)
        resume, model, first_step = None, None, 0
        if record.epochs_done:
            resume, model, first_step = worker.resume_state(store, run_id, record.epochs_done)
            store.truncate_after(run_id, record.epochs_done, first_step)
            log(f"resuming after epoch {record.epochs_done}")
        gen = task.options(**resources, max_retries=0, name=f"mnist-lab-{run_id}").remote(
            record.config, files, resume, model, first_step
        )
        checked = 0.0
        while True:
            if time.time() - checked >= worker.FLUSH_EVERY_S:
                checked = time.time()
                if store.stop_requested(run_id):
                    self.stop.set()
            if self.stop.is_set():
                ray.cancel(gen)  # the node's training thread stops at its next batch
                done = store.get(run_id).epochs_done
                self.finish(
                    status="stopped", reason=f"Stopped by request after {count(done, 'finished epoch')}."
                )
                log(f"run {run_id} ended (stopped)")
                return "stopped"
            ready, _ = ray.wait([gen], timeout=0.2)
            if not ready:
                continue
            try:
                msg = ray.get(next(gen))
            except StopIteration:
                self.lost.append(f"node {self.node_id}: the task ended without a result")
                return "node lost"
            except ray.exceptions.RayTaskError as exc:  # the task's own code failed on the node
                self.finish(status="failed", reason=f"The run failed on node {self.node}: {exc}")
                return "failed"
            except ray.exceptions.OutOfMemoryError:
                reason = f"Node {self.node} ran out of memory and Ray ended the run; try a smaller batch."
                self.finish(status="failed", reason=reason)
                return "failed"
            except ray.exceptions.RayError as exc:  # the node or its worker process died
                self.lost.append(f"node {self.node_id}: {type(exc).__name__}")
                return "node lost"
            outcome = self.apply(msg)
            if outcome:
                return outcome

    def apply(self, msg: dict) -> str | None:
        """Write one record the task sent; returns the outcome once the task is done."""
        store, run_id, kind = self.store, self.run_id, msg["kind"]
        if kind == "batches":
            store.append_batches(run_id, msg["rows"], progress=msg["progress"], heartbeat=time.time())
        elif kind == "epoch":
            worker.save_epoch(store, run_id, msg["record"], msg["resume"], msg["checkpoint"], msg["best"])
            log(msg["line"])
        elif kind == "node":
            self.node_id = msg["node_id"][:8]
            self.node = f"{msg['address']} ({msg['host']}, node {self.node_id})"
            lost = "; ".join(self.lost)
            store.update(
                run_id,
                node=f"ray: {self.node}" + (f", retried after {lost}" if lost else ""),
                precision=msg.get("precision"),
            )
            log(f"training on {self.node}" + (f", GPU {msg['gpus']}" if msg.get("gpus") else ""))
        elif kind == "failed":
            sys.stdout.write(msg["trace"])
            self.finish(status="failed", reason=msg["reason"])
            log(f"run {run_id} failed: {msg['reason']}")
            return "failed"
        elif kind == "done":
            if msg["stopped"]:
                reason = f"Stopped by request after {count(msg['epochs_run'], 'finished epoch')}."
                self.finish(status="stopped", reason=reason)
            else:
                self.finish(status="completed", test_acc=msg["test_acc"], test_metrics=msg["test_metrics"])
            log(f"run {run_id} ended ({'stopped' if msg['stopped'] else 'completed'})")
            return "done"
        return None


def connect(address: str) -> None:
    """Join the cluster as a driver; the nodes' output stays in Ray's logs, not the run's."""
    ray.init(address=address, namespace="mnist-lab", logging_level=logging.ERROR, log_to_driver=False)


def print_status(address: str) -> int:
    """The cluster's nodes, CPUs and GPUs as one JSON line (ray_backend.cluster_status reads it)."""
    connect(address)
    print(json.dumps(ray_backend.describe_nodes(ray.nodes())))
    ray.shutdown()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Drive one queued run on a Ray cluster (started by RayExecutor).")
    p.add_argument("--status", metavar="HOST:PORT", help="print the cluster's nodes as JSON and exit")
    p.add_argument("--root", help="run store folder")
    p.add_argument("--address", help="the Ray head node, HOST:PORT")
    p.add_argument("run_id", nargs="?")
    args = p.parse_args(argv)
    if args.status:
        return print_status(args.status)
    if not (args.root and args.address and args.run_id):
        p.error("--root, --address and RUN_ID are needed")
    store = RunStore(args.root)
    bridge = Bridge(store, args.run_id, args.address)
    try:
        return bridge.run()
    except Exception as exc:
        trace = traceback.format_exc()
        reason = worker.failure_reason(exc, store, args.run_id)
        if isinstance(exc, ConnectionError):
            reason = f"The Ray cluster at {args.address} could not be reached: {exc}"
    store.remove_temp_files(args.run_id)
    try:
        sys.stdout.write(trace)
        log(f"run {args.run_id} failed: {reason}")
    except OSError:
        pass
    bridge.finish(status="failed", reason=reason)
    return 1


if __name__ == "__main__":
    try:
        code = main()
    finally:
        try:  # hand the freed slot to the next queued run
            if "--root" in sys.argv:
                root = sys.argv[sys.argv.index("--root") + 1]
                backend = executor.from_environment()
                executor.schedule(RunStore(root), backend, executor.default_max_concurrent())
        except Exception:
            traceback.print_exc()
    sys.exit(code)
