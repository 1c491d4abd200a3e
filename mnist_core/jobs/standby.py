"""Warm workers: idle run processes, PyTorch imported and MNIST mapped, each waiting for one run.

A standby is `python -m mnist_core.jobs.worker --root DIR --standby KEY`, started like any worker (its
own session, so it outlives the dashboard). Once warmed up it announces itself with a FIFO,
`DIR/standby/KEY.PID.fifo`, and waits. `hand_off` gives it a run: the FIFO is claimed by an atomic
rename (so two dashboards never hand two runs to one process), the run id is written into it, and
from then on that process is the run's worker exactly as a cold one would be (its pid in the store,
SIGTERM stops it, kill -9 leaves the run interrupted, it ends with the run). A standby trains one
run only; a fresh one is warmed for the next.

KEY is a digest of everything a fresh worker would get: its environment, working directory,
interpreter and the library's code. A standby is only used for a run that would have started a
cold worker with the same KEY, so a warm start never differs from a cold one.

A standby belongs to the dashboards of its store: each dashboard process that keeps standbys
(`ensure`) leaves a record, `DIR/standby/KEY.PID.dashboard`, holding its start time (so a reused pid
does not count). A new dashboard with the same KEY counts the standbys already ready or warming and
adopts them instead of starting others; a standby that has seen no live dashboard record of its KEY
for $MNIST_LAB_WARM_ORPHAN_S seconds (default 60) exits, so a stopped dashboard leaves no idle
PyTorch process behind. An idle standby also exits after $MNIST_LAB_WARM_IDLE_S seconds (default
900), when its store folder disappears, or on SIGTERM. $MNIST_LAB_WARM_WORKERS is how many are kept
ready (default 1; 0: off).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

WARM_ENV = "MNIST_LAB_WARM_WORKERS"
IDLE_ENV = "MNIST_LAB_WARM_IDLE_S"
DEFAULT_IDLE_S = 900.0
ORPHAN_ENV = "MNIST_LAB_WARM_ORPHAN_S"
DEFAULT_ORPHAN_S = 60.0  # a dashboard restarting within this long finds its standby still there
DASHBOARD_CHECK_S = 1.0  # how often an idle standby looks for a live dashboard
STANDBY_NICENESS = 19  # a standby warming up while a run trains takes little of its CPU
CLAIMED_WAIT_S = 10.0  # a claimed standby whose run id never arrives gives up after this long
# Environment variables that differ between processes without changing what a run does: the
# shell's own, and those libraries set inside the dashboard (PyTorch's compiler cache folder; the
# OpenMP settings scikit-learn and captum set on import), which a fresh worker sets for itself.
VOLATILE = frozenset(
    {"PYTEST_CURRENT_TEST", "_", "OLDPWD", "PWD", "SHLVL", "COLUMNS", "LINES", "TERM"}
    | {"TORCHINDUCTOR_CACHE_DIR", "KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"}
)


def wanted() -> int:
    """How many idle workers to keep ready ($MNIST_LAB_WARM_WORKERS, default 1)."""
    try:
        return max(0, int(os.environ.get(WARM_ENV, "1")))
    except ValueError:
        return 1


def idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ[IDLE_ENV]))
    except (KeyError, ValueError):
        return DEFAULT_IDLE_S


def orphan_seconds() -> float:
    """How long a standby waits without a live dashboard of its store ($MNIST_LAB_WARM_ORPHAN_S)."""
    try:
        return max(0.5, float(os.environ[ORPHAN_ENV]))
    except (KeyError, ValueError):
        return DEFAULT_ORPHAN_S


def code_stamp() -> list:
    """The library's source files as (name, size, mtime): a code change makes standbys stale."""
    here = Path(__file__).parent
    stamp = []
    for path in sorted(here.glob("*.py")):
        try:
            st = path.stat()
            stamp.append([path.name, st.st_size, st.st_mtime_ns])
        except OSError:
            pass
    return stamp


def key_for(env: dict[str, str]) -> str:
    """What makes two worker processes interchangeable, as a short digest."""
    facts = dict(
        env=sorted((k, v) for k, v in env.items() if k not in VOLATILE),
        cwd=os.getcwd(),
        python=sys.executable,
        code=code_stamp(),
    )
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]


def folder(root: Path) -> Path:
    return Path(root) / "standby"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True  # no /proc: the signal check is all there is


def _entries(root: Path, key: str, suffix: str) -> list[tuple[int, Path]]:
    found = []
    try:
        paths = list(folder(root).glob(f"{key}.*.{suffix}"))
    except OSError:
        return []
    for path in paths:
        try:
            found.append((int(path.name.split(".")[1]), path))
        except (IndexError, ValueError):
            continue
    return sorted(found)


def _started(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, from /proc; "" where there is no /proc):
    a pid the system reused for another process has another start time."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def register_dashboard(root: Path, key: str) -> None:
    """Record this process as a dashboard of this store keeping standbys with this key."""
    pid = os.getpid()
    path = folder(root) / f"{key}.{pid}.dashboard"
    stamp = _started(pid)
    try:
        if path.is_file() and path.read_text() == stamp:
            return
        folder(root).mkdir(parents=True, exist_ok=True)
        tmp = folder(root) / f"new.{pid}.dashboard"
        tmp.write_text(stamp)
        os.replace(tmp, path)  # whole or absent: a standby never reads half a record
    except OSError:
        pass  # without a record the standby retires after a minute: runs then start cold


def dashboards(root: Path, key: str) -> list[int]:
    """Pids of the live dashboards that keep standbys with this key (stale records are removed)."""
    pids = []
    for pid, record in _entries(root, key, "dashboard"):
        try:
            stamp = record.read_text()
        except OSError:
            continue
        if _alive(pid) and stamp == _started(pid):
            pids.append(pid)
        else:  # ended, or its pid now names another process
            record.unlink(missing_ok=True)
    return pids


def ready(root: Path, key: str) -> list[tuple[int, Path]]:
    """(pid, FIFO) of each standby with this key that has announced itself."""
    return _entries(root, key, "fifo")


def warming(root: Path, key: str) -> list[int]:
    """Pids of standbys with this key still warming up (stale markers are removed)."""
    pids = []
    for pid, marker in _entries(root, key, "starting"):
        if _alive(pid):
            pids.append(pid)
        else:
            marker.unlink(missing_ok=True)
    return pids


def hand_off(root: Path, key: str, run_id: str, claimed_by=None) -> int | None:
    """Give `run_id` to a ready standby with this key: its pid, or None if there is none.
    `claimed_by(pid)` is called once the standby is ours and before it learns its run (the
    executor records the pid there, so the run's record names its process before it starts)."""
    for pid, path in ready(root, key):
        claimed = folder(root) / f"claimed.{pid}.fifo"
        try:
            os.rename(path, claimed)  # atomic: of two callers, one wins
        except OSError:
            continue
        try:
            fd = os.open(claimed, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody holds it open, the standby is gone
            claimed.unlink(missing_ok=True)
            continue
        try:
            if claimed_by is not None:
                claimed_by(pid)
            os.write(fd, f"{run_id}\n".encode())
        except OSError:
            claimed.unlink(missing_ok=True)
            continue
        finally:
            os.close(fd)
        return pid
    return None


def renice(niceness: int, pid: int | None = None) -> None:
    """Give every thread of process `pid` (None: this one) and its session's autogroup this
    niceness. Linux keeps a nice value per thread (a standby's PyTorch threads exist already when
    it takes a run), and with autogroup scheduling, the default, CPU is shared between sessions
    before nice values count. Lowering it back (19 -> 10) needs privilege; without, it stays."""
    where = Path("/proc") / ("self" if pid is None else str(pid))
    try:
        tids = [int(t) for t in os.listdir(where / "task")]
    except OSError:
        tids = [pid or 0]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except (AttributeError, OSError):
            pass
    try:
        (where / "autogroup").write_text(str(niceness))
    except OSError:
        pass  # not Linux, or autogroup off: nice alone applies


def spawn(root: Path, command: list[str], env: dict[str, str], key: str) -> int | None:
    """Start one standby with this key (None if it could not be started: a cold start follows)."""
    try:
        folder(root).mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [*command, "--standby", key],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        renice(STANDBY_NICENESS, proc.pid)  # at once: importing PyTorch must not slow a training run
        (folder(root) / f"{key}.{proc.pid}.starting").touch()
    except OSError:
        return None
    return proc.pid


def ensure(root: Path, command: list[str], env: dict[str, str], key: str) -> None:
    """Keep `wanted()` standbys with this key ready or warming, for this process as a dashboard of
    the store: those already there (another dashboard's, one that ended) are adopted, not doubled."""
    if wanted() == 0:
        return  # none kept: a standby left from before finds no record and retires
    register_dashboard(root, key)
    missing = wanted() - len(ready(root, key)) - len(warming(root, key))
    for _ in range(max(0, missing)):
        spawn(root, command, env, key)


# ---- the standby's side ----


def warm_up() -> None:
    """What a cold worker spends its first seconds on: importing PyTorch and the engine, mapping
    MNIST, and oneDNN's first convolutions (forward and backward, fp32 and bf16) and optimizer
    steps."""
    import torch

    from ..data.mnist import DataError, load_mnist
    from ..learn.config import TrainConfig
    from ..learn.engine import make_optimizer, make_scheduler

    try:
        load_mnist(download_missing=False)
    except (DataError, OSError):
        pass  # the run reports it, as a cold worker would
    conv = torch.nn.Conv2d(1, 8, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    for optimizer in ("adam", "sgd"):
        cfg = TrainConfig(optimizer=optimizer, schedule="onecycle", epochs=1)
        opt = make_optimizer(cfg, conv.parameters())
        sched = make_scheduler(cfg, opt, 2)
        for bf16 in (False, True):
            with torch.autocast("cpu", torch.bfloat16, bf16):
                out = torch.nn.functional.max_pool2d(conv(x), 2).flatten(1)
            out.float().sum().backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)


def wait_for_run(root: Path, key: str, stop: threading.Event) -> str | None:
    """Announce this process as ready and wait for a run id; None: retire (idle too long, no live
    dashboard of the store for orphan_seconds(), the store folder gone, or SIGTERM while idle)."""
    here, pid = folder(root), os.getpid()
    here.mkdir(parents=True, exist_ok=True)
    tmp, path = here / f"new.{pid}.fifo", here / f"{key}.{pid}.fifo"
    tmp.unlink(missing_ok=True)
    os.mkfifo(tmp, 0o600)
    fd = os.open(tmp, os.O_RDWR | os.O_NONBLOCK)  # our own writer end: select waits for real data
    os.rename(tmp, path)
    (here / f"{key}.{pid}.starting").unlink(missing_ok=True)
    deadline, claimed_at, data = time.time() + idle_seconds(), None, b""
    orphan_s, seen, checked = orphan_seconds(), time.time(), 0.0
    try:
        while True:
            readable, _, _ = select.select([fd], [], [], 0.5)
            if readable:
                try:
                    data += os.read(fd, 256)
                except BlockingIOError:
                    pass
                if b"\n" in data:
                    return data.split(b"\n", 1)[0].decode().strip() or None
                continue
            if not path.exists():  # claimed: the run id is on its way
                claimed_at = claimed_at or time.time()
                if time.time() - claimed_at > CLAIMED_WAIT_S:
                    return None
                continue
            now = time.time()
            if now - checked >= DASHBOARD_CHECK_S:
                checked = now
                if dashboards(root, key):
                    seen = now
            if stop.is_set() or now > deadline or now - seen > orphan_s or not Path(root).is_dir():
                try:
                    os.rename(path, here / f"retired.{pid}.fifo")  # claim ourselves, atomically
                except OSError:
                    continue  # somebody claimed us just now
                return None
    finally:
        os.close(fd)
        for leftover in (here / f"claimed.{pid}.fifo", here / f"retired.{pid}.fifo"):
            leftover.unlink(missing_ok=True)


def attach_log(log: Path) -> None:
    """From now on this process's output goes to the run's log, as a cold worker's does."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
