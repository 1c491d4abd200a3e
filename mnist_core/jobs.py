"""Background training jobs: each run is its own OS process; a queue caps how many run at once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .config import PROJECT_ROOT, TrainConfig
from .runs import Run, RunError, RunStore

MAX_RUNS_ENV = "MNIST_LAB_MAX_RUNS"
_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process started, reaped when seen dead


def default_max_concurrent() -> int:
    """$MNIST_LAB_MAX_RUNS, else one run per 4 cores (1 on a 2-core laptop)."""
    try:
        return max(1, int(os.environ[MAX_RUNS_ENV]))
    except (KeyError, ValueError):
        return max(1, (os.cpu_count() or 2) // 4)


def _alive(pid: int | None, run_id: str) -> bool:
    """True while the worker for run_id is running (not a zombie, not a reused pid)."""
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
    return not cmdline or run_id.encode() in cmdline


class JobManager:
    """Start, stop, extend, clone and queue runs. The UI, the CLI and the tests all use this."""

    def __init__(self, store: RunStore | None = None, max_concurrent: int | None = None):
        self.store = store or RunStore()
        self.max_concurrent = max_concurrent or default_max_concurrent()

    # ---- starting ----
    def submit(self, config: TrainConfig | dict, parent: str | None = None) -> Run:
        """Validate, queue, and start at once if a slot is free. Returns the run (maybe queued)."""
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        run = self.store.create(cfg.validate().to_dict(), parent=parent)
        self.schedule()
        return self.store.get(run.id)

    def schedule(self) -> list[str]:
        """Mark dead runs interrupted, then start queued runs while slots are free."""
        self.reap()
        starting = []
        if not self.store.conn.execute("SELECT 1 FROM runs WHERE status = 'queued' LIMIT 1").fetchone():
            return starting  # nothing waits: no write transaction on every page poll
        with self.store.tx() as c:
            running = c.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
            free = self.max_concurrent - running
            if free > 0:
                rows = c.execute("SELECT id FROM runs WHERE status = 'queued' ORDER BY queue_seq LIMIT ?",
                                 (free,)).fetchall()
                for (run_id,) in rows:
                    c.execute("UPDATE runs SET status = 'running', started = ?, heartbeat = ?, pid = NULL, "
                              "reason = NULL WHERE id = ?", (time.time(), time.time(), run_id))
                    starting.append(run_id)
        for run_id in starting:
            self._spawn(run_id)
        return starting

    def _spawn(self, run_id: str) -> None:
        log = self.store.log_path(run_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mnist_core.worker", "--root", str(self.store.root), run_id],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT,
                env={**os.environ, MAX_RUNS_ENV: str(self.max_concurrent)},
                start_new_session=True)  # survives the dashboard's reruns and restarts
        _CHILDREN[proc.pid] = proc
        self.store.update(run_id, pid=proc.pid)

    def reap(self) -> list[str]:
        """Runs marked running whose process is gone become `interrupted`, with a reason."""
        lost = []
        for run in self.store.list(("running",)):
            if run.pid is None and time.time() - (run.started or 0) < 30:
                continue  # being spawned right now
            if not _alive(run.pid, run.id):
                fresh = self.store.get(run.id)
                if fresh.status != "running":
                    continue  # it finished between the two reads
                self.store.update(run.id, status="interrupted", finished=time.time(), pid=None,
                                  reason=(f"The training process (pid {run.pid}) ended unexpectedly: it was "
                                          f"killed or ran out of memory. {fresh.epochs_done} finished "
                                          "epoch(s) and their checkpoints are kept; Extend continues it."))
                self.store.remove_temp_files(run.id)  # a save cut short by the kill
                lost.append(run.id)
        return lost

    # ---- reading ----
    def list(self) -> list[Run]:
        self.schedule()
        return self.store.list()

    def get(self, run_id: str) -> Run:
        self.reap()
        return self.store.get(run_id)

    def log_tail(self, run_id: str, lines: int = 40) -> str:
        path = self.store.log_path(run_id)
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # ---- controlling ----
    def stop(self, run_id: str, grace_s: float = 5.0) -> Run:
        """Queued: cancelled. Running: asked to stop at the next batch, killed after `grace_s`."""
        run = self.store.get(run_id)
        if run.status == "queued":
            with self.store.tx() as c:
                c.execute("UPDATE runs SET status = 'stopped', finished = ?, reason = ? WHERE id = ? "
                          "AND status = 'queued'", (time.time(), "Cancelled before it started.", run_id))
            return self.store.get(run_id)
        if run.status != "running":
            return run
        self.store.update(run_id, stop_requested=1)
        if run.pid:
            try:
                os.kill(run.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace_s
        while time.time() < deadline:
            run = self.get(run_id)
            if run.status != "running":
                break
            time.sleep(0.05)
        if run.status == "running":
            if run.pid and _alive(run.pid, run_id):
                os.kill(run.pid, signal.SIGKILL)
            self.store.update(run_id, status="stopped", finished=time.time(), pid=None,
                              reason=f"Did not stop within {grace_s:.0f} s and was killed; "
                                     f"{run.epochs_done} finished epoch(s) kept.")
            self.store.remove_temp_files(run_id)
        self.schedule()
        return self.store.get(run_id)

    def extend(self, run_id: str, more_epochs: int) -> Run:
        """Continue a finished run for more epochs from its last checkpoint; curves continue."""
        run = self.get(run_id)
        if run.status not in ("completed", "stopped", "interrupted", "failed"):
            raise RunError(f"Run {run_id} is {run.status}; only finished runs can be extended.")
        if not isinstance(more_epochs, int) or not 1 <= more_epochs <= 1000:
            raise RunError(f"Extend by 1 to 1000 epochs, not {more_epochs!r}.")
        cfg = TrainConfig.from_dict({**run.config, "epochs": run.epochs_done + more_epochs})
        with self.store.tx() as c:
            seq = c.execute("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM runs").fetchone()[0]
            c.execute("UPDATE runs SET status = 'queued', config = ?, queue_seq = ?, reason = NULL, "
                      "finished = NULL, stop_requested = 0, pid = NULL WHERE id = ?",
                      (json.dumps(cfg.to_dict()), seq, run_id))
        self.schedule()
        return self.store.get(run_id)

    def clone(self, run_id: str, **changes) -> Run:
        """A new run with this run's config and `changes` (seed kept unless changed)."""
        run = self.store.get(run_id)
        return self.submit({**run.config, **changes}, parent=run_id)

    def delete(self, run_id: str) -> None:
        run = self.store.get(run_id)
        if run.active:
            self.stop(run_id)
        self.store.delete(run_id)

    def wait(self, run_id: str, timeout_s: float = 600, poll_s: float = 0.2) -> Run:
        """Block until the run leaves queued/running (for the CLI and tests)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            run = self.get(run_id)
            if not run.active:
                return run
            if run.status == "queued":
                self.schedule()
            time.sleep(poll_s)
        raise TimeoutError(f"Run {run_id} still {run.status} after {timeout_s:.0f} s.")
