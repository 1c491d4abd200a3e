"""Where runs execute, and the queue's hand-off: the Executor interface and its two backends.

`from_environment()` is the one place that picks the backend: $MNIST_LAB_RAY_ADDRESS=HOST:PORT
selects the Ray cluster there, unset means this machine. Either way each run has one local
process that is the run's only writer to the store: the training worker itself (local), or a
bridge that drives the run on the cluster and writes what it streams back (ray_bridge.py).

The job API (jobs.py) and a finishing worker or bridge both call `schedule`, which marks dead
runs interrupted and starts queued runs while slots are free; neither imports the job API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

from ..words import count, kept_epochs
from . import disk, standby
from .ray import settings as ray_backend
from .store import Run, RunError, RunStore

MAX_RUNS_ENV = "MNIST_LAB_MAX_RUNS"
_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process started, reaped when seen dead


def default_max_concurrent() -> int:
    """$MNIST_LAB_MAX_RUNS, else one run per 4 cores (1 on a 2-core laptop)."""
    try:
        return max(1, int(os.environ[MAX_RUNS_ENV]))
    except (KeyError, ValueError):
        return max(1, (os.cpu_count() or 2) // 4)


class BackendUnavailable(RunError):
    """The configured backend cannot take runs now (a Ray cluster that does not answer)."""


class Executor(Protocol):
    """Where runs execute. JobManager takes one; `schedule` and `reap` work with any."""

    name: str

    def start(self, store: RunStore, run_id: str, max_concurrent: int) -> None: ...
    def prepare(self, store: RunStore, max_concurrent: int) -> None: ...
    def alive(self, run: Run) -> bool: ...
    def request_stop(self, run: Run) -> None: ...
    def kill(self, run: Run) -> None: ...
    def capacity(self) -> int: ...
    def unavailable(self) -> str | None: ...
    def lost_reason(self, run: Run, epochs_done: int) -> str: ...
    def status(self) -> dict: ...


def from_environment(address: str | None = None) -> Executor:
    """The backend the configuration asks for: Ray at $MNIST_LAB_RAY_ADDRESS (or `address`), else local."""
    address = ray_backend.configured_address() if address is None else address
    return RayExecutor(address) if address else LocalExecutor()


def backend_status(address: str | None = None) -> dict:
    """Where runs train, as configured ($MNIST_LAB_RAY_ADDRESS, or `address`; "" is this machine):
    {backend, address, error, nodes: [{name, address, cpus, gpus, alive}], cpus, gpus, max_runs}.
    Never raises: a cluster that does not answer is one sentence in `error`. (Home shows it.)"""
    return from_environment(address).status()


class LocalExecutor:
    """Runs each training run as `python -m mnist_core.jobs.worker` in its own session: handed to a warm
    standby worker when one is ready (standby.py), else started cold."""

    name = "local"
    module = "mnist_core.jobs.worker"
    warm = True  # keeps standby workers ready (their number: $MNIST_LAB_WARM_WORKERS)

    def base_command(self, store: RunStore) -> list[str]:
        return [sys.executable, "-m", self.module, "--root", str(store.root)]

    def command(self, store: RunStore, run_id: str) -> list[str]:
        return [*self.base_command(store), run_id]

    def run_environment(self, max_concurrent: int) -> dict[str, str]:
        return {**self.environment(), MAX_RUNS_ENV: str(max_concurrent)}

    def environment(self) -> dict[str, str]:
        """The run process's environment: this one, naming this backend, so that the process's
        own hand-off to the next queued run (schedule at its end) uses the same backend. OpenMP's
        threads are left to sleep between operations: spinning ones stall whenever the dashboard
        shares the cores (measured: docs/speed.md)."""
        return {k: v for k, v in os.environ.items() if k != ray_backend.ADDRESS_ENV}

    def capacity(self) -> int:
        return default_max_concurrent()

    def unavailable(self) -> str | None:
        """Why runs cannot start now (None: they can)."""
        return None

    def lost_reason(self, run: Run, epochs_done: int) -> str:
        return (
            f"The training process (pid {run.pid}) ended unexpectedly: it was killed or ran out of "
            f"memory. {kept_epochs(epochs_done)}; Extend continues it."
        )

    def status(self) -> dict:
        """Backend facts for Home: this machine as the only node."""
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        cpus = os.cpu_count() or 1
        node = dict(name=socket.gethostname(), address="this machine", cpus=cpus, gpus=gpus, alive=True)
        return dict(
            backend=self.name,
            address=None,
            error=None,
            nodes=[node],
            cpus=cpus,
            gpus=gpus,
            max_runs=self.capacity(),
        )

    def start(self, store: RunStore, run_id: str, max_concurrent: int) -> None:
        log = store.layout.log_path(run_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        disk.ensure_reserve(store.root)  # so that even a run that fills the disk can say why
        env = self.run_environment(max_concurrent)
        fields: dict = {}
        if self.name == "local":
            fields["node"] = f"this machine ({socket.gethostname()})"  # a bridge records the cluster node
        key = standby.key_for(env) if self.warm else ""

        def record(pid: int) -> None:
            store.update(run_id, pid=pid, **fields)

        if not (self.warm and standby.hand_off(store.root, key, run_id, record)):
            with open(log, "ab") as fh:
                proc = subprocess.Popen(
                    self.command(store, run_id),
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )  # survives the dashboard's reruns and restarts
            _CHILDREN[proc.pid] = proc
            record(proc.pid)

    def prepare(self, store: RunStore, max_concurrent: int) -> None:
        """Have a warm worker ready or warming for the next run (JobManager decides when)."""
        if self.warm:
            env = self.run_environment(max_concurrent)
            standby.ensure(store.root, self.base_command(store), env, standby.key_for(env))

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
        # empty while the process is exec-ing or exiting; otherwise it must be this run's worker,
        # started for it or a standby handed it (whose pid the hand-off recorded)
        return not cmdline or run.id.encode() in cmdline or b"\0--standby\0" in cmdline

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


class RayExecutor(LocalExecutor):
    """Runs each training run as a Ray task on the cluster at `address`, driven by a local bridge
    process (`python -m mnist_core.jobs.ray.driver`) started, watched and stopped like a local worker:
    it survives the dashboard's restarts, SIGTERM stops the run at once, and it is the run's one
    writer to the store. Ray itself is imported only by the bridge, never by the dashboard."""

    name = "ray"
    module = "mnist_core.jobs.ray.driver"
    warm = False  # a bridge is light; the cluster's workers are Ray's own
    CAPACITY_TTL_S = 60.0

    def __init__(self, address: str):
        self.address = address
        self._capacity: int | None = None
        self._capacity_t = 0.0
        self._refreshing = threading.Lock()

    def command(self, store: RunStore, run_id: str) -> list[str]:
        return [*super().command(store, run_id), "--address", self.address]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), ray_backend.ADDRESS_ENV: self.address}

    def unavailable(self) -> str | None:
        return ray_backend.unreachable(self.address)

    def status(self) -> dict:
        status = ray_backend.cluster_status(self.address)
        if not status.get("error"):
            self._capacity, self._capacity_t = ray_backend.capacity_of(status), time.time()
        return {**status, "max_runs": self.capacity()}

    def capacity(self) -> int:
        """$MNIST_LAB_MAX_RUNS, else as many runs as the cluster's CPUs (and GPUs) hold at once,
        asked of the cluster once and then refreshed in the background every minute."""
        if os.environ.get(MAX_RUNS_ENV):
            return default_max_concurrent()
        if self._capacity is None:
            self._refresh()
        elif time.time() - self._capacity_t > self.CAPACITY_TTL_S and not self._refreshing.locked():
            threading.Thread(target=self._refresh, daemon=True).start()
        return self._capacity or 1

    def _refresh(self) -> None:
        with self._refreshing:
            status = ray_backend.cluster_status(self.address)
            if not status.get("error"):
                self._capacity = ray_backend.capacity_of(status)
            self._capacity_t = time.time()

    def lost_reason(self, run: Run, epochs_done: int) -> str:
        ray_backend._REACH.pop(self.address, None)  # asked afresh: is the head still there?
        if self.unavailable():  # a driver whose local raylet (the head's) dies exits at once
            return ray_backend.head_lost(self.address, run.node, epochs_done)
        return (
            f"The bridge process (pid {run.pid}) that drove this run on the Ray cluster at "
            f"{self.address} ended unexpectedly. {kept_epochs(epochs_done)}; Extend continues it."
        )


def reap(store: RunStore, executor: Executor) -> list[str]:
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
                status, reason = (
                    "stopped",
                    f"Stopped by request after {count(fresh.epochs_done, 'finished epoch')}.",
                )
            else:
                status, reason = "interrupted", executor.lost_reason(fresh, fresh.epochs_done)
            # only while it is still running under the process seen dead: a run that completed
            # (or was started again) since the reads above keeps its status
            if store.end_running(run.id, run.pid, status, reason):
                store.remove_temp_files(run.id)  # a save cut short by the kill
                lost.append(run.id)
    return lost


def schedule(store: RunStore, executor: Executor, max_concurrent: int) -> list[str]:
    """Mark dead runs interrupted, then start queued runs while slots are free (and the backend
    can take them: while a cluster does not answer, queued runs keep their place)."""
    reap(store, executor)
    if not store.has_queued():
        return []  # nothing waits: no write transaction on every page poll
    if executor.unavailable():
        return []
    starting = store.claim_queued(max_concurrent)
    for run_id in starting:
        executor.start(store, run_id, max_concurrent)
    return starting
