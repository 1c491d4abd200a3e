"""The job machinery: a background run against `fit` called directly, metric latency, listing 500 runs.

python benchmarks/jobs.py          # cnn_basic, 2 epochs on 20,000 images, 3 alternating repeats
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from mnist_core.data.mnist import clear_cache, load_mnist
from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.engine import train_model


def _direct(cfg: TrainConfig) -> tuple[float, float]:
    clear_cache()  # the worker loads the data from disk too
    t0 = time.perf_counter()
    r = train_model(cfg, mnist=load_mnist())
    return time.perf_counter() - t0, r.metrics.images_per_s


def _background(jobs: JobManager, cfg: TrainConfig, latencies: list[float]) -> tuple[float, float]:
    t0 = time.perf_counter()
    run = jobs.submit(cfg, actor=ADMIN)
    seen, reader = 0, RunStore(jobs.store.root)
    while True:
        rows = reader.batch_times(run.id, seen)
        now = time.time()
        latencies.extend(now - t for _, t in rows)
        seen = rows[-1][0] if rows else seen
        status = reader.get(run.id).status
        if status not in ("queued", "running"):
            break
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    done = reader.get(run.id)
    if done.status != "completed":
        raise RuntimeError(f"benchmark run {done.status}: {done.reason}\n{jobs.log_tail(run.id)}")
    return wall, done.images_per_s


def list_500(root) -> tuple[float, float]:
    store = RunStore(root)
    cfg = TrainConfig().to_dict()
    for i in range(500):
        store.create(cfg, run_id=f"bench-{i:04d}")
        store.update(f"bench-{i:04d}", status="completed", epochs_done=5, best_val_acc=0.99, test_acc=0.99)
    jobs = JobManager(store)
    times_store, times_jobs = [], []
    for _ in range(7):
        t = time.perf_counter()
        assert len(store.list()) == 500
        times_store.append(time.perf_counter() - t)
        t = time.perf_counter()
        jobs.list()
        times_jobs.append(time.perf_counter() - t)
    return statistics.median(times_store), statistics.median(times_jobs)


def run_jobs_bench(args) -> int:
    cfg = TrainConfig.for_model("cnn_basic", epochs=args.epochs, limit=args.limit)
    root = tempfile.mkdtemp(prefix="mnist-jobs-bench-")
    jobs = JobManager(RunStore(root), max_concurrent=1)
    print(
        f"cnn_basic, {cfg.epochs} epoch(s) on {cfg.limit or 54000} images, "
        f"{args.repeats} alternating repeats",
        file=sys.stderr,
        flush=True,
    )
    direct, background, latencies = [], [], []
    for r in range(args.repeats):
        direct.append(_direct(cfg))
        background.append(_background(jobs, cfg, latencies))
        print(
            f"  repeat {r + 1}: direct {direct[-1][0]:.1f} s ({direct[-1][1]:,.0f} img/s) | background "
            f"{background[-1][0]:.1f} s ({background[-1][1]:,.0f} img/s)",
            file=sys.stderr,
            flush=True,
        )
    d_wall, b_wall = statistics.median(w for w, _ in direct), statistics.median(w for w, _ in background)
    d_ips, b_ips = statistics.median(i for _, i in direct), statistics.median(i for _, i in background)
    latencies.sort()
    store_s, jobs_s = list_500(tempfile.mkdtemp(prefix="mnist-list-bench-"))
    print(f"direct_wall_s={d_wall:.2f}")
    print(f"background_wall_s={b_wall:.2f}")
    print(f"wall_overhead_pct={100 * (b_wall / d_wall - 1):.1f}")
    print(f"throughput_overhead_pct={100 * (d_ips / b_ips - 1):.1f}")
    print(f"metric_latency_median_ms={1000 * latencies[len(latencies) // 2]:.0f}")
    print(f"metric_latency_max_ms={1000 * latencies[-1]:.0f}")
    print(f"list_500_runs_ms={1000 * store_s:.1f}")
    print(f"list_500_runs_with_reap_ms={1000 * jobs_s:.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Background-run overhead, metric latency, listing 500 runs.")
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed run")
    p.add_argument("--limit", type=int, default=20000, help="training images per timed run")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats; medians are reported")
    return run_jobs_bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
