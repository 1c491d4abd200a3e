"""One training run in its own process: `python -m mnist_core.worker --root DIR RUN_ID`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback

from . import executor
from .checkpoints import CheckpointError, atomic_save, describe, load_checkpoint
from .config import ConfigError, TrainConfig
from .data import DataError
from .runs import RunStore
from .train import TrainingError, train_model

FLUSH_EVERY_S = 0.25  # batch metrics reach readers well within a second
# Training takes whatever CPU the dashboard leaves: with many learners' pages refreshing at once
# they come first (a run gets about 10% of a busy core at +10, and everything when the pages idle).
NICENESS = 10


def lower_priority(niceness: int = NICENESS) -> None:
    """Training yields the CPU to the dashboard, so pages stay responsive while a run trains.

    The worker runs in its own session, and Linux with autogroup scheduling (the default on
    desktops and servers) shares the CPU between sessions before it looks at nice values; so the
    session's autogroup gets the same niceness, or nice alone would change nothing."""
    try:
        os.nice(niceness)
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/self/autogroup", "w") as fh:
            fh.write(str(niceness))
    except OSError:
        pass  # not Linux, or autogroup off: nice alone applies


class StoreWriter:
    """Training callbacks that stream metrics and checkpoints into the run store."""

    def __init__(self, store: RunStore, run_id: str, stop: threading.Event, first_step: int = 0):
        self.store, self.run_id, self.stop = store, run_id, stop
        self.buffer: list[tuple] = []
        self.step = first_step
        self.last_flush = time.time()

    def flush(self, state) -> None:
        progress = dict(
            epoch=state.epoch,
            epochs=state.config.epochs,
            batch=state.batch,
            batches=state.batches_per_epoch,
            step=self.step,
            elapsed_s=state.elapsed_s,
            images_per_s=(state.last or {}).get("images_per_s"),
        )
        self.store.append_batches(self.run_id, self.buffer, progress=progress, heartbeat=time.time())
        self.buffer = []
        self.last_flush = time.time()
        if self.store.stop_requested(self.run_id):
            self.stop.set()

    def on_batch_end(self, state) -> None:
        self.step += 1
        self.buffer.append((self.step, state.epoch, state.batch_loss, time.time()))
        if time.time() - self.last_flush >= FLUSH_EVERY_S or state.batch == state.batches_per_epoch:
            self.flush(state)  # and before validation, so the epoch's last batches never wait for it

    def on_epoch_end(self, state) -> None:
        self.flush(state)
        record = state.last
        extra = dict(
            optimizer=state.optimizer.state_dict(),
            epoch=state.epoch,
            step=self.step,
            scheduler=state.scheduler.state_dict() if state.scheduler is not None else None,
        )
        obj = describe(state.model, state.config, state.history, {"val_acc": record.get("val_acc")}, extra)
        path = atomic_save(obj, self.store.epoch_checkpoint(self.run_id, state.epoch))
        best = {}
        if state.best_epoch == state.epoch:
            atomic_save(obj, self.store.best_checkpoint(self.run_id))
            best = {"best_val_acc": record.get("val_acc")}
        self.store.append_epoch(
            self.run_id,
            record,
            str(path),
            epochs_done=state.epoch,
            images_per_s=record["images_per_s"],
            **best,
        )


def run(store: RunStore, run_id: str) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    record = store.get(run_id)
    cfg = TrainConfig.from_dict(record.config)
    print(f"[{time.strftime('%H:%M:%S')}] run {run_id}: {cfg.model}, {cfg.epochs} epochs", flush=True)
    resume, model, first_step = None, None, 0
    if record.epochs_done:
        ckpt = load_checkpoint(store.epoch_checkpoint(run_id, record.epochs_done))
        extra = ckpt.meta["extra"]
        model, first_step = ckpt.model, extra["step"]
        resume = dict(
            optimizer=extra["optimizer"],
            scheduler=extra["scheduler"],
            history=ckpt.meta["history"],
            epoch=extra["epoch"],
        )
        store.truncate_after(run_id, record.epochs_done, first_step)
        print(f"resuming after epoch {record.epochs_done}", flush=True)
    writer = StoreWriter(store, run_id, stop, first_step)
    t0 = time.time()
    result = train_model(cfg, [writer], stop.is_set, resume=resume, model=model)
    m = result.metrics
    if result.state.stopped:
        store.update(
            run_id,
            status="stopped",
            finished=time.time(),
            pid=None,
            train_seconds=record.train_seconds + time.time() - t0,
            reason=f"Stopped by request after {m.epochs_run} finished epoch(s).",
        )
    else:
        store.update(
            run_id,
            status="completed",
            finished=time.time(),
            pid=None,
            test_acc=m.test_acc,
            test_metrics=m.test_summary(),
            train_seconds=record.train_seconds + time.time() - t0,
        )
    print(
        f"[{time.strftime('%H:%M:%S')}] run {run_id} ended "
        f"({'stopped' if result.state.stopped else 'completed'})",
        flush=True,
    )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run one queued training run (started by JobManager).")
    p.add_argument("--root", required=True, help="run store folder")
    p.add_argument("run_id")
    args = p.parse_args(argv)
    lower_priority()
    store = RunStore(args.root)
    try:
        return run(store, args.run_id)
    except (ConfigError, DataError, CheckpointError, TrainingError) as exc:
        reason = str(exc)
    except MemoryError:
        reason = "Ran out of memory. Try a smaller batch size or model."
    except OSError as exc:
        reason = f"A file could not be written or read: {exc}. Is the disk full?"
    except Exception as exc:  # a bug in a model or the engine: tell the learner, keep the traceback
        reason = f"The model raised {type(exc).__name__}: {exc}"
    traceback.print_exc()
    store.update(args.run_id, status="failed", reason=reason, finished=time.time(), pid=None)
    return 1


if __name__ == "__main__":
    try:
        code = main()
    finally:
        try:  # hand the freed slot to the next queued run
            root = sys.argv[sys.argv.index("--root") + 1]
            executor.schedule(RunStore(root), executor.LocalExecutor(), executor.default_max_concurrent())
        except Exception:
            traceback.print_exc()
    sys.exit(code)
