"""A run on the Ray cluster, driven from the dashboard machine: the run's one writer to the store.

    python -m mnist_core.jobs.ray.driver --root DIR --address HOST:PORT RUN_ID   (started by RayExecutor)
    python -m mnist_core.jobs.ray.driver --status HOST:PORT                      (the nodes, as JSON)

The bridge is a Ray driver in its own session, like a local worker: it joins the cluster with the
token of settings.token_file(), puts MNIST into the object store, submits the run as a generator
task (ray_node.train_on_node) with the run's resources, and writes every record the task yields
into the store. The records are read as raw bytes, never unpickled (`read_frame`: a node that sends
a Python object is refused before it is read), then decoded and checked by wire.py; a record that
fails the check fails the run, and nothing of it is written. SIGTERM or the store's stop flag
cancels the task (Stop); a node lost mid-run is retried once from the last epoch checkpoint, on
another node; a head node that stops answering marks the run interrupted with the reason."""

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
from typing import Any

os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # Ray's C++ logs stay out of the run's log
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from . import settings as ray_backend  # noqa: E402  (no Ray import: it sets up the token first)

ray_backend.use_token()

import ray  # noqa: E402  (this module is only ever run as the bridge process)
from ray.core.generated.common_pb2 import ErrorType  # type: ignore[attr-defined]  # noqa: E402
from ray.exceptions import ObjectRefStreamEndOfStreamError  # noqa: E402

from ...words import count, kept_epochs  # noqa: E402
from .. import executor, worker  # noqa: E402
from ..store import RunStore  # noqa: E402
from ..worker import log  # noqa: E402
from . import node as ray_node  # noqa: E402
from . import wire  # noqa: E402

ATTEMPTS = 2  # the first try and one retry after a lost node
WATCH_EVERY_S = 0.5
GONE_AFTER = 3  # failed checks of the head node's port in a row: the cluster is lost
# Ray's own errors about a task, node or object: Ray builds them from its metadata and protobuf
# messages, never by unpickling what a node wrote, so they may be read. A task's exception
# (TASK_EXECUTION_EXCEPTION), a cancellation and the actor errors carry pickled objects: refused.
RAY_ERRORS = {
    "WORKER_DIED",
    "LOCAL_RAYLET_DIED",
    "NODE_DIED",
    "OUT_OF_MEMORY",
    "OUT_OF_DISK_ERROR",
    "OBJECT_LOST",
    "OWNER_DIED",
    "OBJECT_FETCH_TIMED_OUT",
    "OBJECT_DELETED",
    "OBJECT_FREED",
    "TASK_UNSCHEDULABLE_ERROR",
    "WORKER_STARTUP_FAILED",
    "RUNTIME_ENV_SETUP_FAILED",
    "TASK_PLACEMENT_GROUP_REMOVED",
}


class ClusterRefused(ConnectionError):
    """The cluster cannot be joined with this machine's token; the message says what to do."""


def _core() -> Any:
    """This driver's core worker (Ray's compiled object-store client)."""
    return ray._private.worker.global_worker.core_worker  # type: ignore[attr-defined]


def _stored(ref) -> tuple[object, bytes]:
    """(Ray's stored object, its kind: RAW, PYTHON, XLANG, or an error number), unread."""
    [obj] = _core().get_objects([ref], -1)
    return obj, (obj[1] or b"").split(b",")[0]


def read_frame(ref) -> bytes:
    """The object a node yielded, as its raw bytes, never unpickled. Ray stores `bytes` as they are
    (kind RAW); anything else a node sends (a Python object, its task's exception) would be
    unpickled by ray.get, which can run code on this machine: it is refused unread. Ray's own
    errors (a node or worker died, out of memory) are raised as ray.get would raise them."""
    obj, kind = _stored(ref)
    if kind == b"RAW":
        data = obj[0]  # type: ignore[index]
        return data.to_pybytes() if data is not None else b""
    name = ErrorType.Name(int(kind)) if kind.isdigit() and int(kind) in ErrorType.values() else None
    if name in RAY_ERRORS or (name or "").startswith("OBJECT_UNRECONSTRUCTABLE_"):
        raise ray._private.worker.global_worker.deserialize_objects([obj], [ref])[0]
    what = f"its task's error ({name})" if name else f"a {kind.decode(errors='replace')[:20]} object"
    raise wire.Refused(
        f"{what} instead of a bytes record (not read: unpickling it could run code on this machine)"
    )


def next_frame(gen) -> bytes | None:
    """The generator task's next frame, or None when it ended. At the end, the generator's own
    object holds an error where the task failed (raised, or refused, by read_frame); otherwise it
    is left unread."""
    try:
        ref = _core().try_read_next_object_ref_stream(gen._generator_ref)
    except ObjectRefStreamEndOfStreamError:
        if _stored(gen._generator_ref)[1].isdigit():
            read_frame(gen._generator_ref)
        return None
    return read_frame(ref)


class Bridge:
    node_task = staticmethod(ray_node.train_on_node)  # what each node runs (a test may craft its own)

    def __init__(self, store: RunStore, run_id: str, address: str):
        self.store, self.run_id, self.address = store, run_id, address
        self.stop = threading.Event()
        self.ended = threading.Lock()  # one final status: the main loop's or the watchdog's
        self.node = ""  # "ADDRESS (HOST, node ID)" of the node training the run now
        self.node_id = "?"
        self.lost: list[str] = []  # "node ID: what Ray said", per node lost under the run
        self.epochs_done = 0  # epochs in the store: the next epoch record must be the one after

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
            misses = misses + 1 if ray_backend.port_closed(self.address) else 0
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
        task = ray.remote(self.node_task)
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
        self.epochs_done = record.epochs_done
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
                frame = next_frame(gen)
                if frame is None:
                    self.lost.append(f"node {self.node_id}: the task ended without a result")
                    return "node lost"
                msg = wire.check(*wire.decode(frame), record.config, self.epochs_done)
            except wire.Refused as exc:  # a crafted or broken record: nothing of it is written
                ray.cancel(gen)
                where = f" {self.node}" if self.node else ""
                reason = (
                    f"The cluster node{where} sent {exc}. The record was refused and nothing of it "
                    f"was written. {kept_epochs(self.epochs_done)}."
                )
                self.finish(status="failed", reason=reason)
                log(f"run {run_id} failed: {reason}")
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
            self.epochs_done = msg["record"]["epoch"]
            log(worker.epoch_line(msg["record"], store.get(run_id).config["epochs"]))
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
    """Join the cluster as a driver, with the token; the nodes' output stays in Ray's logs, not the
    run's. A missing or refused token is one sentence at once (ray.init alone would retry for 20 s
    and then say only that it failed to connect)."""
    _, problem = ray_backend.read_token()
    if problem:
        raise ClusterRefused(problem)
    try:
        ray._raylet.GcsClient(address=address)  # type: ignore[attr-defined]  # a few ms: does the head take the token?
    except ray.exceptions.AuthenticationError:
        raise ClusterRefused(
            f"The Ray cluster at {address} refused this machine's token ({ray_backend.token_file()}, "
            f"{ray_backend.TOKEN_FILE_ENV}); copy the head node's token file there (docs/ray.md)."
        ) from None
    ray.init(address=address, namespace="mnist-lab", logging_level=logging.ERROR, log_to_driver=False)


def print_status(address: str) -> int:
    """The cluster's nodes, CPUs and GPUs as one JSON line (ray_backend.cluster_status reads it)."""
    try:
        connect(address)
    except ClusterRefused as exc:
        print(exc, file=sys.stderr)
        return 2
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
        if isinstance(exc, ClusterRefused):
            reason = str(exc)
        elif isinstance(exc, ConnectionError):
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
