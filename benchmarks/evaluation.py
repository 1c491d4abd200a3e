"""Evaluating a checkpoint: cold (load, predict, metrics), from the disk cache (a restarted server)
and from memory, as the Evaluate page does it. The disk cache is a temporary folder of its own.

python benchmarks/evaluation.py checkpoints/default.pt
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

from mnist_core.analysis import cache as analysis_cache
from mnist_core.data.mnist import load_mnist
from mnist_core.paths import CACHE_ENV


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Cold and cached evaluation time of one checkpoint (key=value).")
    p.add_argument("checkpoint", help="path to a .pt checkpoint")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which split")
    p.add_argument("--repeats", type=int, default=3, help="cold repeats; the median is reported")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR or ./data/mnist)")
    args = p.parse_args(argv)
    mnist = load_mnist(args.data_dir)
    cold, disk, cached = [], [], []
    with tempfile.TemporaryDirectory(prefix="mnist-lab-eval-bench-") as folder:
        os.environ[CACHE_ENV] = folder  # (after load_mnist: its decoded copy stays where it is)
        for _ in range(args.repeats):
            analysis_cache.clear_cache()
            shutil.rmtree(analysis_cache.cache_dir(), ignore_errors=True)
            t = time.perf_counter()
            result = analysis_cache.evaluate_checkpoint(args.checkpoint, args.split, mnist)
            cold.append(time.perf_counter() - t)
            analysis_cache.clear_cache()  # a new server process: the disk entry only
            t = time.perf_counter()
            analysis_cache.evaluate_checkpoint(args.checkpoint, args.split, mnist)
            disk.append(time.perf_counter() - t)
            t = time.perf_counter()
            analysis_cache.evaluate_checkpoint(args.checkpoint, args.split, mnist)
            cached.append(time.perf_counter() - t)
    print(f"checkpoint={args.checkpoint}")
    print(f"split={args.split}")
    print(f"images={len(result.y_true)}")
    print(f"accuracy={result.accuracy:.4f}")
    print(f"evaluate_cold_s={statistics.median(cold):.2f}")
    print(f"evaluate_disk_ms={1000 * statistics.median(disk):.1f}")
    print(f"evaluate_cached_ms={1000 * statistics.median(cached):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
