"""A class of learners pressing Start together: queue waits and throughput, local vs a Ray cluster.

python benchmarks/scale.py --backend local                        # 30 learners on this machine
unshare -n bash -c 'ip link set lo up && python benchmarks/scale.py --backend ray --start-cluster'
python benchmarks/scale.py --backend ray --address HOST:PORT      # an existing cluster

Each learner submits the fast_cnn preset on a subset of the training images, all at once, through
the job API (learners take turns in the queue). Figures on stdout as key=value, prefixed with the
backend: queue wait median and p95 (submit -> start), the whole class's runs per minute, one
run's time from start to finish (median; with --compare-local, the overhead against a local run),
the run store's rows written per second (mean and the busiest 5 s), and the peak memory of one
run's process on the dashboard machine (the worker itself, or the Ray bridge).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mnist_core.jobs import executor
from mnist_core.jobs.identity import User
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from mnist_core.learn.models import REGISTRY

TESTS = Path(__file__).resolve().parents[1] / "tests"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def rows_per_s(store: RunStore, t0: float, t1: float) -> tuple[float, float]:
    """Batch and epoch rows written per second over the class's time, and in its busiest 5 s."""
    c = store.conn  # read-only counting for the figure; every write went through RunStore
    times = [t for (t,) in c.execute("SELECT t FROM batch_metrics")]
    epochs = c.execute("SELECT COUNT(*) FROM epoch_metrics").fetchone()[0]
    mean = (len(times) + epochs) / max(t1 - t0, 1e-9)
    buckets: dict[int, int] = {}
    for t in times:
        buckets[int((t - t0) // 5)] = buckets.get(int((t - t0) // 5), 0) + 1
    return mean, max(buckets.values(), default=0) / 5


def rss_mb(pid: int | None) -> float:
    """Resident memory of a run's local process (worker or bridge), 0 when gone or unknown."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration, ValueError):
        return 0.0


def simulate_class(jobs: JobManager, learners: int, limit: int, timeout_s: float) -> dict[str, float]:
    cfg = {**REGISTRY["fast_cnn"].preset, "model": "fast_cnn", "limit": limit}
    t0 = time.time()
    ids = [
        jobs.submit(cfg, actor=User(f"learner{i:03d}", f"Learner {i}", "learner")).id for i in range(learners)
    ]
    deadline, peak_rss = t0 + timeout_s, 0.0
    while any(r.active for r in jobs.list()):
        peak_rss = max([peak_rss] + [rss_mb(r.pid) for r in jobs.store.list(("running",))])
        if time.time() > deadline:
            raise TimeoutError(f"the class was not done after {timeout_s:.0f} s")
        done = sum(1 for r in jobs.store.list() if not r.active)
        print(f"\r{done}/{learners} runs done, {time.time() - t0:.0f} s", end="", file=sys.stderr)
        time.sleep(0.5)
    print(file=sys.stderr)
    runs = [jobs.store.get(i) for i in ids]
    failed = [f"{r.id} {r.status}: {r.reason}" for r in runs if r.status != "completed"]
    if failed:
        raise RuntimeError("runs did not complete:\n" + "\n".join(failed))
    t1 = max(r.finished or 0 for r in runs)
    waits = [(r.started or 0) - r.created for r in runs]
    walls = [(r.finished or 0) - (r.started or 0) for r in runs]
    mean_rows, peak_rows = rows_per_s(jobs.store, t0, t1)
    return dict(
        learners=learners,
        max_runs=jobs.max_concurrent,
        queue_wait_median_s=statistics.median(waits),
        queue_wait_p95_s=p95(waits),
        queue_wait_max_s=max(waits),
        runs_per_min=60 * learners / (t1 - t0),
        run_wall_median_s=statistics.median(walls),
        train_median_s=statistics.median(r.train_seconds for r in runs),
        store_rows_per_s=mean_rows,
        store_rows_per_s_peak=peak_rows,
        class_s=t1 - t0,
        run_process_rss_mb_peak=peak_rss,  # on the dashboard machine: the worker, or the bridge
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", type=int, default=30, help="learners, each submitting one run (default 30)")
    p.add_argument("--limit", type=int, default=2000, help="training images per run (default 2000)")
    p.add_argument("--backend", choices=("local", "ray"), default="local", help="where the runs train")
    p.add_argument("--address", help="HOST:PORT of a running Ray cluster (--backend ray)")
    p.add_argument(
        "--start-cluster",
        action="store_true",
        help="start a 2-node cluster here (1 CPU each) for the run; needs `unshare -n` (see above)",
    )
    p.add_argument(
        "--max-runs", type=int, help="runs at once (default: what the backend holds); 1: each run alone"
    )
    p.add_argument("--local-run-wall-s", type=float, help="a local run's median wall time, for the overhead")
    p.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    args = p.parse_args(argv)
    cluster = None
    try:
        if args.backend == "ray":
            if args.start_cluster:
                sys.path.insert(0, str(TESTS))
                from support.ray_cluster import RayCluster, isolated_network

                if not isolated_network():
                    p.error("--start-cluster runs inside `unshare -n` (Ray would bind the external address)")
                cluster = RayCluster(port=6398).start()
                args.address = cluster.address
            if not args.address:
                p.error("--backend ray needs --address HOST:PORT or --start-cluster")
            backend: executor.Executor = executor.RayExecutor(args.address)
            nodes = len(backend.status()["nodes"])
        else:
            backend, nodes = executor.LocalExecutor(), 1
        store = RunStore(tempfile.mkdtemp(prefix="mnist-lab-scale-"))
        jobs = JobManager(store, max_concurrent=args.max_runs, executor=backend)
        figures = {"nodes": nodes, **simulate_class(jobs, args.learners, args.limit, args.timeout)}
    finally:
        if cluster is not None:
            cluster.stop()
    if args.local_run_wall_s:
        figures["overhead_vs_local_s"] = figures["run_wall_median_s"] - args.local_run_wall_s
    prefix = args.backend
    shown = {k: f"{v:.2f}" if isinstance(v, float) else v for k, v in figures.items()}
    print(" ".join(f"{prefix}_{k}={v}" for k, v in shown.items()))
    print(f"cpu_cores={os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
