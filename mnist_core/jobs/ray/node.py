"""What runs on a cluster node: one training run as a Ray generator task streaming its records.

The node writes nothing into the run store and needs no shared filesystem: batch losses, epoch
records and the epoch files (already serialised, exactly what the local worker would save) are
yielded back to the run's driver on the dashboard machine, which checks and writes them (driver.py).
Every record crosses as one `bytes` frame of plain JSON and torch.save bytes (wire.py), never as a
Python object: the driver refuses anything else unread, since unpickling it could run code there.
MNIST arrives through Ray's object store as the four original gzip files (11 MB); the node keeps
a verified copy in a node-local folder, so no node downloads it or needs $MNIST_DATA_DIR."""

from __future__ import annotations

import io
import os
import queue
import socket
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

from ...data.mnist import FILES, find_file, load_mnist
from ...learn.config import TrainConfig
from ...learn.device import precision_note
from ...learn.engine import train_model
from ...paths import data_dir
from .. import worker
from . import wire

NODE_DATA_ENV = "MNIST_LAB_NODE_DATA"  # where a node keeps its copy of MNIST (default: a temp folder)
FLUSH_EVERY_S = worker.FLUSH_EVERY_S


def mnist_files(folder: Path | None = None) -> dict[str, bytes]:
    """The dashboard machine's four MNIST files, as they are on disk (gzip), to ship to nodes."""
    folder = Path(folder) if folder else data_dir()
    files = {}
    for name in FILES:
        path = find_file(folder, name)
        if path is None:
            load_mnist(folder)  # downloads them, or raises DataError saying what to do
            path = find_file(folder, name)
        assert path is not None
        files[path.name] = path.read_bytes()
    return files


def node_mnist(files: dict[str, bytes]):
    """MNIST on this node from the shipped files: written once into the node-local folder (each
    file atomically), then read and checksum-verified like any local copy."""
    folder = Path(os.environ.get(NODE_DATA_ENV) or Path(tempfile.gettempdir()) / "mnist-lab-node-data")
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        target = folder / name
        if not target.is_file() or target.stat().st_size != len(raw):
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(raw)
            os.replace(tmp, target)
    return load_mnist(folder, download_missing=False)


def _serialise(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class NodeWriter:
    """Training callbacks that queue the records the bridge will write (cf. worker.StoreWriter)."""

    def __init__(self, out: queue.Queue, first_step: int):
        self.out, self.step = out, first_step
        self.buffer: list[tuple] = []
        self.last_flush = time.time()

    def flush(self, state) -> None:
        progress = worker.progress_report(state, self.step)
        self.out.put(wire.encode(dict(kind="batches", rows=self.buffer, progress=progress)))
        self.buffer = []
        self.last_flush = time.time()

    def on_batch_end(self, state) -> None:
        self.step += 1
        self.buffer.append((self.step, state.epoch, state.batch_loss, time.time()))
        if time.time() - self.last_flush >= FLUSH_EVERY_S or state.batch == state.batches_per_epoch:
            self.flush(state)

    def on_epoch_end(self, state) -> None:
        self.flush(state)
        resume, checkpoint = worker.epoch_files(state, self.step)
        # serialised here, in the training thread, so the bytes are this epoch's weights exactly
        self.out.put(
            wire.encode(
                dict(kind="epoch", record=dict(state.last), best=state.best_epoch == state.epoch),
                resume=_serialise(resume),
                checkpoint=_serialise(checkpoint),
            )
        )


def train_on_node(config: dict, files: dict[str, bytes], resume=None, model=None, first_step: int = 0):
    """The Ray task (a generator): yields `node`, then `batches` and `epoch` records, then `done`
    or `failed`, each a wire frame (bytes). It never raises: a Ray task's exception would reach the
    driver as a pickled object, which the driver refuses unread, so a failure is a `failed` frame.
    Cancelling the task (Stop) stops the training thread at the next batch."""
    try:
        import ray

        cfg = TrainConfig.from_dict(config)
        node = dict(
            kind="node",
            node_id=ray.get_runtime_context().get_node_id(),
            address=ray.util.get_node_ip_address(),
            host=socket.gethostname(),
            gpus=os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            precision=precision_note(cfg),  # this node's hardware decides "auto"
        )
        torch.set_num_threads(max(1, int(float(os.environ.get("OMP_NUM_THREADS", "1")))))
    except Exception as exc:
        yield _failed(exc)
        return
    yield wire.encode(node)
    out: queue.Queue = queue.Queue()
    stop = threading.Event()

    def train() -> None:
        try:
            mnist = node_mnist(files)
            t0 = time.time()
            writer = NodeWriter(out, first_step)
            result = train_model(cfg, [writer], stop.is_set, mnist=mnist, resume=resume, model=model)
            m = result.metrics
            done = dict(
                kind="done",
                stopped=result.state.stopped,
                epochs_run=m.epochs_run,
                test_acc=m.test_acc,
                test_metrics=m.test_summary(),
                seconds=time.time() - t0,
            )
            out.put(wire.encode(done))
        except Exception as exc:
            out.put(_failed(exc))
        out.put(None)  # the end: `done` or `failed` was the last frame

    thread = threading.Thread(target=train, name="mnist-lab-train", daemon=True)
    thread.start()
    try:
        while True:
            try:
                msg = out.get(timeout=0.1)
            except queue.Empty:
                continue
            if msg is None:
                return
            yield msg
    finally:  # finished, or cancelled (Stop): the training thread ends at its next batch
        stop.set()
        thread.join(timeout=30)


def _failed(exc: Exception) -> bytes:
    """A `failed` frame: the reason in a sentence, and the trace for the run's log."""
    reason = worker.failure_reason(exc, None, "")
    return wire.encode(dict(kind="failed", reason=reason, trace=traceback.format_exc()))
