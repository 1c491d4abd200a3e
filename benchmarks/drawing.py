"""Reading drawn digits: accuracy through preprocessing, and latency of a prediction plus each saliency map.

python benchmarks/drawing.py            # 1,000 redrawn test digits, 20 timed predictions per method
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from mnist_core.analysis.saliency import METHODS, attribute  # noqa: E402
from mnist_core.data.mnist import load_mnist  # noqa: E402
from mnist_core.data.pixels import normalize  # noqa: E402
from mnist_core.data.preprocess import preprocess  # noqa: E402
from mnist_core.learn.checkpoints import load_checkpoint  # noqa: E402
from mnist_core.learn.evaluate import predict_logits, predict_proba  # noqa: E402
from mnist_core.paths import default_model_path  # noqa: E402
from support.drawings import render_like_canvas  # noqa: E402  (shared with the tests)


def run_draw_bench(args) -> int:
    mnist = load_mnist(args.data_dir)
    model = load_checkpoint(args.model or default_model_path()).model
    rng = np.random.default_rng(0)
    n = args.digits
    drawn = [render_like_canvas(mnist.test_images[i].numpy(), rng) for i in range(n)]
    x = torch.cat([preprocess(img).tensor for img in drawn])
    y = mnist.test_labels[:n]
    acc = (predict_logits(model, x).argmax(1) == y).float().mean().item()
    plain = (predict_logits(model, normalize(mnist.test_images[:n])).argmax(1) == y).float().mean().item()
    print(f"digits_redrawn={n}")  # at 280x280, random size and place, half dark on light
    print(f"accuracy_through_preprocessing={acc:.4f}")
    print(f"accuracy_unprocessed={plain:.4f}")
    for method in METHODS:
        times = []
        for i, img in enumerate(drawn[: args.repeats + 5]):
            t = time.perf_counter()
            xi = preprocess(img).tensor
            p = predict_proba(model, xi)
            attribute(model, xi, method, int(p.argmax()))
            if i >= 5:  # after warm-up
                times.append(time.perf_counter() - t)
        print(
            f"predict_plus_{method}_ms_median={1000 * statistics.median(times):.0f}\n"
            f"predict_plus_{method}_ms_max={1000 * max(times):.0f}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Accuracy through preprocessing; prediction + saliency latency (key=value lines)."
    )
    p.add_argument("--digits", type=int, default=1000, help="test digits to redraw and read")
    p.add_argument("--repeats", type=int, default=20, help="timed predictions per saliency method")
    p.add_argument("--model", default=None, help="checkpoint (default: checkpoints/default.pt)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR or ./data/mnist)")
    return run_draw_bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
