"""One training run in its own process: `python -m mnist_core.jobs.worker --root DIR RUN_ID`, or a warm
standby that waits for its run: `... --root DIR --standby KEY` (standby.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback

from torch import nn

from ..data.mnist import DataError
from ..learn.checkpoints import (
    CheckpointError,
    atomic_link,
    atomic_save,
    describe,
    describe_resume,
    load_checkpoint,
    read_checkpoint,
)
from ..learn.config import ConfigError, TrainConfig
from ..learn.device import DeviceError, precision_note
from ..learn.engine import Diverged, TrainingError, train_model
from ..words import count, kept_epochs
from . import classroom, disk, executor, standby
from .store import RunStore

FLUSH_EVERY_S = 0.25  # batch metrics reach readers well within a second
# Training takes whatever CPU the dashboard leaves: with many learners' pages refreshing at once
# they come first (a run gets about 10% of a busy core at +10, and everything when the pages idle).
NICENESS = 10


def lower_priority(niceness: int = NICENESS) -> None:
    """Training yields the CPU to the dashboard, so pages stay responsive while a run trains.

    The worker runs in its own session, and Linux with autogroup scheduling (the default on
    desktops and servers) shares the CPU between sessions before it looks at nice values; so the
    session's autogroup gets the same niceness, or nice alone would change nothing."""
    standby.renice(niceness)


def progress_report(state, step: int) -> dict:
    """A run's progress as the store keeps it (the worker and a cluster node both report this)."""
    return dict(
        epoch=state.epoch,
        epochs=state.config.epochs,
        batch=state.batch,
        batches=state.batches_per_epoch,
        step=step,
        elapsed_s=state.elapsed_s,
        images_per_s=(state.last or {}).get("images_per_s"),
    )


class StoreWriter:
    """Training callbacks that stream metrics and checkpoints into the run store."""

    def __init__(self, store: RunStore, run_id: str, stop: threading.Event, first_step: int = 0):
        self.store, self.run_id, self.stop = store, run_id, stop
        self.buffer: list[tuple] = []
        self.step = first_step
        self.last_flush = 0.0  # the first batch is shown at once
        # history["dynamics"] records sent to the store (a resumed run sends its earlier ones once
        # more: a record replaces the row of its step, so they stay once each)
        self.dynamics_sent = 0

    def flush(self, state) -> None:
        progress = progress_report(state, self.step)
        recorded = state.history.get("dynamics", [])
        new, self.dynamics_sent = recorded[self.dynamics_sent :], len(recorded)
        self.store.append_batches(
            self.run_id, self.buffer, dynamics=new, progress=progress, heartbeat=time.time()
        )
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
        resume, obj = epoch_files(state, self.step)
        save_epoch(self.store, self.run_id, state.last, resume, obj, state.best_epoch == state.epoch)
        log(epoch_line(state.last, state.config.epochs))


def epoch_files(state, step: int) -> tuple[dict, dict]:
    """The two files an epoch leaves: (resume state for Extend, the self-describing checkpoint)."""
    resume = describe_resume(state.optimizer, state.scheduler, state.epoch, step)
    extra = dict(epoch=state.epoch, step=step)
    val = {"val_acc": state.last.get("val_acc")}
    return resume, describe(state.model, state.config, state.history, val, extra)


def save_epoch(store: RunStore, run_id: str, record: dict, resume, checkpoint, is_best: bool) -> None:
    """Write an epoch's files and record into the store. `resume` and `checkpoint` are the dicts of
    epoch_files, or the same already serialised to bytes (a run on a cluster node sends those)."""
    epoch = record["epoch"]
    # Optimizer state is only needed to continue a run, so it lives in one resume file (the
    # last epoch's), written first: an epoch file on disk always has its resume file beside it.
    atomic_save(resume, store.layout.resume_checkpoint(run_id, epoch))
    path = atomic_save(checkpoint, store.layout.epoch_checkpoint(run_id, epoch))
    best = {}
    if is_best:
        atomic_link(path, store.layout.best_checkpoint(run_id))  # the same file, not a second copy
        best = {"best_val_acc": record.get("val_acc")}
    store.append_epoch(
        run_id, record, str(path), epochs_done=epoch, images_per_s=record["images_per_s"], **best
    )
    for kept, old in store.layout.resume_files(run_id):
        if kept != epoch:
            old.unlink(missing_ok=True)


def epoch_line(record: dict, epochs: int) -> str:
    return (
        f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f}"
        + (f", val acc {record['val_acc']:.2%}" if record.get("val_acc") is not None else "")
        + f", {record['images_per_s']:,.0f} img/s"
    )


def log(line: str) -> None:
    """A line in the run's log (the worker's stdout). On a full disk this raises, like any write."""
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def resume_state(store: RunStore, run_id: str, epochs_done: int) -> tuple[dict, nn.Module, int]:
    """What continuing after `epochs_done` needs: (resume dict for fit, model, first step)."""
    ckpt = load_checkpoint(store.layout.epoch_checkpoint(run_id, epochs_done))
    path = store.layout.resume_checkpoint(run_id, epochs_done)
    if path.is_file():
        extra = read_checkpoint(path, kind="resume")
    else:  # stores written before resume files kept the optimizer in every epoch file
        extra = ckpt.meta["extra"]
        if "optimizer" not in extra:
            raise CheckpointError(
                f"Run {run_id} cannot be continued: the optimizer state of epoch {epochs_done} "
                f"({path.name}) is missing."
            )
    resume = dict(
        optimizer=extra["optimizer"],
        scheduler=extra["scheduler"],
        history=ckpt.meta["history"],
        epoch=extra["epoch"],
    )
    return resume, ckpt.model, extra["step"]


def run(store: RunStore, run_id: str, stop: threading.Event | None = None) -> int:
    if stop is None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    record = store.get(run_id)
    begun = time.time()  # the class's time limit counts from here: loading the data is part of it
    cfg = TrainConfig.from_dict(record.config)
    precision = precision_note(cfg)
    log(f"run {run_id}: {cfg.model}, {cfg.epochs} epochs, {precision}")  # the first write, as before
    store.update(run_id, precision=precision)
    limit_memory()
    resume, model, first_step = None, None, 0
    if record.epochs_done:
        resume, model, first_step = resume_state(store, run_id, record.epochs_done)
        store.truncate_after(run_id, record.epochs_done, first_step)
        log(f"resuming after epoch {record.epochs_done}")
    writer = StoreWriter(store, run_id, stop, first_step)
    limit = TimeLimit(begun, record.time_limit, stop)
    t0 = time.time()
    result = train_model(cfg, [writer], limit.should_stop, resume=resume, model=model)
    m = result.metrics
    if result.state.stopped:
        reason = f"Stopped by request after {count(m.epochs_run, 'finished epoch')}."
        if limit.reached:
            reason = (
                f"Stopped: reached the class's time limit of {classroom.duration(limit.seconds)} per "
                f"run; {kept_epochs(m.epochs_run).lower()}. Extend it to train on."
            )
        store.update(
            run_id,
            status="stopped",
            finished=time.time(),
            pid=None,
            train_seconds=record.train_seconds + time.time() - t0,
            reason=reason,
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
    log(f"run {run_id} ended ({'stopped' if result.state.stopped else 'completed'})")
    return 0


class TimeLimit:
    """The stop test training asks after every batch: a stop request, or the run's time limit
    reached (`seconds` as the run records it; 0 is none, and a run that records none, queued by an
    older version, gets the default limit)."""

    def __init__(self, begun: float, seconds: float | None, stop: threading.Event):
        self.seconds = classroom.ClassPolicy().max_run_seconds if seconds is None else seconds
        self.deadline = begun + self.seconds if self.seconds else float("inf")
        self.stop, self.reached = stop, False

    def should_stop(self) -> bool:
        if not self.stop.is_set() and time.time() >= self.deadline:
            self.reached = True
            self.stop.set()
        return self.stop.is_set()


MEMORY_ENV = "MNIST_LAB_RUN_MEMORY_MB"


def limit_memory() -> None:
    """$MNIST_LAB_RUN_MEMORY_MB: the address space a run may take beyond what its worker holds once
    PyTorch is loaded (RLIMIT_AS), so one run cannot exhaust a shared machine's memory."""
    try:
        extra_mb = int(os.environ[MEMORY_ENV])
    except (KeyError, ValueError):
        return
    try:
        import resource

        with open("/proc/self/status") as fh:
            now_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
        limit = (now_kb * 1024) + extra_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, StopIteration, ValueError):
        pass  # not Linux: no limit


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or PyTorch's allocator refusing (CPU: RuntimeError; CUDA: OutOfMemoryError)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError)
        and any(m in text for m in ("can't allocate memory", "out of memory", "cannot allocate memory"))
    )


def failure_reason(exc: BaseException, store: RunStore | None, run_id: str) -> str:
    """What the learner reads about a failed run: the cause in words, with what to do. `store` is
    None on a cluster node, which writes nothing to disk itself."""
    if disk.is_disk_full(exc) and store is not None:
        free = disk.free_bytes(store.root)
        disk.release_reserve(store.root)  # room to write this reason, the log and the status
        try:
            run = store.get(run_id)
            need = disk.run_need_bytes(TrainConfig.from_dict(run.config), run.epochs_done)
        except Exception:
            need = 0
        return disk.full_message(free, need)
    if is_out_of_memory(exc):
        limit = os.environ.get(MEMORY_ENV)
        where = f"the {limit} MB each run may use here ({MEMORY_ENV})" if limit else "this machine's memory"
        return (
            f"The run ran out of memory: it needed more than {where}. Try a smaller batch size, "
            "fewer training images or a smaller model; the finished epochs are kept."
        )
    if isinstance(exc, (ConfigError, DataError, CheckpointError, TrainingError, DeviceError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"A file could not be written or read: {exc}."
    return f"The model raised {type(exc).__name__}: {exc}"  # a bug in a model or the engine


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run one queued training run (started by JobManager).")
    p.add_argument("--root", required=True, help="run store folder")
    p.add_argument("run_id", nargs="?", help="the run to train (omitted with --standby)")
    p.add_argument(
        "--standby", metavar="KEY", help="warm up, then wait for a run id handed over (standby.py)"
    )
    args = p.parse_args(argv)
    if not args.run_id and not args.standby:
        p.error("give a RUN_ID, or --standby KEY")
    stop = threading.Event()  # SIGTERM: stop the run at the next batch (or, idle, retire)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run_id = args.run_id
    if args.standby:
        lower_priority(standby.STANDBY_NICENESS)
        standby.warm_up()
        store = RunStore(args.root)
        run_id = standby.wait_for_run(store.root, args.standby, stop)
        if run_id is None:
            return 0
        standby.attach_log(store.layout.log_path(run_id))
    lower_priority()
    store = RunStore(args.root)
    return execute(store, run_id, stop)


def execute(store: RunStore, run_id: str, stop: threading.Event) -> int:
    """Train the run; any failure becomes the run's `failed` status with its reason in words."""
    try:
        return run(store, run_id, stop)
    except Exception as exc:
        trace = traceback.format_exc()  # inside the except block, where the traceback still exists
        reason = failure_reason(exc, store, run_id)
        # a diverged run is a result too (the Lessons page judges it): say where, in the record
        found = {"diverged": {"epoch": exc.epoch, "batch": exc.batch}} if isinstance(exc, Diverged) else {}
    store.remove_temp_files(run_id)
    try:
        sys.stdout.write(trace)
        log(f"run {run_id} failed: {reason}")
    except OSError:
        pass  # the log's disk is full even now; the reason still goes into the store
    # one write: whoever sees `failed` sees the record with it
    extra = {"test_metrics": found} if found else {}
    store.update(run_id, status="failed", reason=reason, finished=time.time(), pid=None, **extra)
    return 1


if __name__ == "__main__":
    try:
        code = main()
    finally:
        try:  # hand the freed slot to the next queued run
            root = sys.argv[sys.argv.index("--root") + 1]
            executor.schedule(RunStore(root), executor.from_environment(), executor.default_max_concurrent())
        except Exception:
            traceback.print_exc()
    sys.exit(code)
