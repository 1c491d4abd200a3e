"""Training speed: the engine against the textbook pipeline, time to 99%, peak memory (key=value lines).

python benchmarks/train_speed.py                 # 3 alternating repeats of 150 steps, then time to 99%
"""

from __future__ import annotations

import argparse
import gzip
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from mnist_core.config import TrainConfig
from mnist_core.data import FILES, clear_cache, find_file, load_mnist, make_splits
from mnist_core.evaluate import evaluate
from mnist_core.models import build_model, count_parameters
from mnist_core.paths import data_dir
from mnist_core.pixels import MNIST_MEAN, MNIST_STD
from mnist_core.train import fit


def textbook_cnn() -> nn.Module:
    """cnn_basic written the way tutorials write it (conv -> ReLU -> pool), 421,642 parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
    )


def textbook_images_per_s(root: Path, steps: int, batch_size: int = 64, warmup: int = 10) -> float:
    """torchvision MNIST + ToTensor/Normalize + DataLoader, plain Adam, NCHW: the usual tutorial."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    ds = datasets.MNIST(str(root), train=True, download=False, transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True)
    torch.manual_seed(0)
    model = textbook_cnn()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    seen, t0 = 0, time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            seen, t0 = 0, time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
        if i == warmup + steps:
            break
    return seen / (time.perf_counter() - t0)


class _StepTimer:
    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.count, self.t0, self.seen = warmup, steps, 0, 0.0, 0

    def on_batch_end(self, s) -> None:
        self.count += 1
        if self.count == self.warmup:
            self.t0, self.seen = time.perf_counter(), 0
        elif self.count > self.warmup:
            self.seen += s.config.batch_size
        self.rate = self.seen / max(time.perf_counter() - self.t0, 1e-9)

    def done(self) -> bool:
        return self.count >= self.warmup + self.steps


def engine_images_per_s(
    mnist, steps: int, batch_size: int = 64, warmup: int = 10, precision: str = "fp32"
) -> float:
    """This project's `fit` on cnn_basic with the same batch size and optimizer settings."""
    cfg = TrainConfig.for_model(
        "cnn_basic",
        batch_size=batch_size,
        epochs=1,
        val_fraction=0.0,
        precision=precision,
        limit=min(60000, (steps + warmup + 2) * batch_size),
    )
    data = make_splits(mnist, cfg.val_fraction, cfg.seed, cfg.limit)
    torch.manual_seed(0)
    timer = _StepTimer(warmup, steps)
    fit(build_model("cnn_basic"), data, cfg, [timer], stop=timer.done)
    return timer.rate


def time_to_99(folder: Path | None) -> tuple[float, float]:
    """fast_cnn preset: seconds from a cold data load to >= 99% test accuracy (evaluation excluded)."""
    clear_cache()
    cfg = TrainConfig.for_model("fast_cnn")
    t0 = time.perf_counter()
    mnist = load_mnist(folder)
    data = make_splits(mnist, cfg.val_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model("fast_cnn")
    excluded, reached, best = 0.0, float("inf"), 0.0

    class Probe:
        def on_epoch_end(self, s):
            nonlocal excluded, reached, best
            t = time.perf_counter()
            acc = evaluate(s.model, data.test_x, data.test_y, with_confusion=False)["accuracy"]
            best = max(best, acc)
            excluded += time.perf_counter() - t
            if acc >= 0.99 and reached == float("inf"):
                reached = t - t0 - excluded
            print(
                f"  fast_cnn epoch {s.epoch}: test accuracy {acc:.4f} at {t - t0 - excluded:.1f}s",
                file=sys.stderr,
                flush=True,
            )

    fit(model, data, cfg, [Probe()])
    return reached, best


def _raw_copy(folder: Path) -> Path:
    """torchvision's MNIST class wants decompressed files under <root>/MNIST/raw."""
    root = Path(tempfile.mkdtemp(prefix="mnist-bench-"))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        src = find_file(folder, name)
        data = src.read_bytes()
        (raw / name).write_bytes(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    return root


def run_bench(args) -> int:
    folder = Path(args.data_dir) if args.data_dir else data_dir()
    mnist = load_mnist(folder)
    assert count_parameters(textbook_cnn()) == count_parameters(build_model("cnn_basic")) == 421642
    root = _raw_copy(folder)
    print(
        f"threads={torch.get_num_threads()} torch={torch.__version__}  (cnn_basic, batch 64, "
        f"{args.steps} timed steps, {args.repeats} alternating repeats)",
        file=sys.stderr,
        flush=True,
    )
    runs: dict[str, list[float]] = {"textbook": [], "engine": [], "engine_bf16": [], "engine_batch256": []}
    for r in range(args.repeats):
        runs["textbook"].append(textbook_images_per_s(root, args.steps))
        runs["engine"].append(engine_images_per_s(mnist, args.steps))
        runs["engine_bf16"].append(engine_images_per_s(mnist, args.steps, precision="bf16"))
        runs["engine_batch256"].append(engine_images_per_s(mnist, max(20, args.steps // 4), batch_size=256))
        print(
            f"  repeat {r + 1}: " + " | ".join(f"{k} {v[-1]:,.0f} img/s" for k, v in runs.items()),
            file=sys.stderr,
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in med.items():
        print(f"{k}_images_per_s={v:.0f}")
    print(f"speedup_bf16={med['engine_bf16'] / med['textbook']:.2f}")
    print(f"speedup_batch256={med['engine_batch256'] / med['textbook']:.2f}")
    print(f"speedup={med['engine'] / med['textbook']:.2f}")
    if not args.skip_time_to_99:
        reached, best = time_to_99(folder)
        print(f"fast_cnn_best_test_accuracy={best:.4f}")
        print(f"time_to_99_s={reached:.1f}")
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Throughput against the textbook pipeline, time to 99%, peak RSS."
    )
    p.add_argument("--steps", type=int, default=150, help="training steps timed per pipeline")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats; medians are reported")
    p.add_argument("--skip-time-to-99", action="store_true", help="only measure throughput")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR or ./data/mnist)")
    return run_bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
