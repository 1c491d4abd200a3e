"""Where runs execute, and the queue's hand-off: each run is its own OS process on this machine.

The job API (jobs.py) and a finishing worker both call `schedule`, which marks dead runs
interrupted and starts queued runs while slots are free; the worker never imports the job API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import disk
from .runs import Run, RunStore

MAX_RUNS_ENV = "MNIST_LAB_MAX_RUNS"
_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process started, reaped when seen dead


def default_max_concurrent() -> int:
    """$MNIST_LAB_MAX_RUNS, else one run per 4 cores (1 on a 2-core laptop)."""
    try:
        return max(1, int(os.environ[MAX_RUNS_ENV]))
    except (KeyError, ValueError):
        return max(1, (os.cpu_count() or 2) // 4)


class LocalExecutor:
    """Runs each training run as `python -m mnist_core.worker` in its own session."""

    name = "local"

    def start(self, store: RunStore, run_id: str, max_concurrent: int) -> None:
        log = store.log_path(run_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        disk.ensure_reserve(store.root)  # so that even a run that fills the disk can say why
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mnist_core.worker", "--root", str(store.root), run_id],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, MAX_RUNS_ENV: str(max_concurrent)},
                start_new_session=True,
            )  # survives the dashboard's reruns and restarts
        _CHILDREN[proc.pid] = proc
        store.update(run_id, pid=proc.pid)

    def alive(self, run: Run) -> bool:
        """True while the run's worker is running (not a zombie, not a reused pid)."""
        pid = run.pid
        if not pid:
            return False
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:
            _CHILDREN.pop(pid, None)
            return False
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        proc = Path(f"/proc/{pid}")
        if not proc.exists():
            return True  # no /proc (macOS): the signal check is all there is
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
        if state in ("Z", "X"):
            return False  # exited, waiting to be reaped by its parent
        # empty while the process is exec-ing or exiting; otherwise it must be this run's worker
        return not cmdline or run.id.encode() in cmdline

    def request_stop(self, run: Run) -> None:
        """Ask the worker to stop at the next batch (it also polls the store's stop flag)."""
        if run.pid:
            try:
                os.kill(run.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self, run: Run) -> None:
        if run.pid and self.alive(run):
            os.kill(run.pid, signal.SIGKILL)


def reap(store: RunStore, executor: LocalExecutor) -> list[str]:
    """Runs marked running whose process is gone become `interrupted`, with a reason."""
    lost = []
    for run in store.list(("running",)):
        if run.pid is None and time.time() - (run.started or 0) < 30:
            continue  # being spawned right now
        if not executor.alive(run):
            fresh = store.get(run.id)
            if fresh.status != "running":
                continue  # it finished between the two reads
            if fresh.stop_requested:  # asked to stop, and it did (perhaps before its handler was set)
                status, reason = "stopped", f"Stopped by request after {fresh.epochs_done} finished epoch(s)."
            else:
                status, reason = (
                    "interrupted",
                    (
                        f"The training process (pid {run.pid}) ended unexpectedly: it was "
                        f"killed or ran out of memory. {fresh.epochs_done} finished "
                        "epoch(s) and their checkpoints are kept; Extend continues it."
                    ),
                )
            store.update(run.id, status=status, finished=time.time(), pid=None, reason=reason)
            store.remove_temp_files(run.id)  # a save cut short by the kill
            lost.append(run.id)
    return lost


def schedule(store: RunStore, executor: LocalExecutor, max_concurrent: int) -> list[str]:
    """Mark dead runs interrupted, then start queued runs while slots are free."""
    reap(store, executor)
    if not store.has_queued():
        return []  # nothing waits: no write transaction on every page poll
    starting = store.claim_queued(max_concurrent)
    for run_id in starting:
        executor.start(store, run_id, max_concurrent)
    return starting
