"""Benchmark for reading drawn digits: accuracy through preprocessing, latency per method."""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from .checkpoints import default_model_path, load_checkpoint
from .data import load_mnist, normalize
from .evaluate import predict_logits, predict_proba
from .explain import METHODS, attribute
from .preprocess import preprocess, render_like_canvas


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
    print(f"{n} test digits redrawn at 280x280 (random size and place, half dark on light)")
    print(f"accuracy_through_preprocessing={acc:.4f}")
    print(f"accuracy_unprocessed={plain:.4f}")
    for method in METHODS:
        times = []
        for i, img in enumerate(drawn[:args.repeats + 5]):
            t = time.perf_counter()
            xi = preprocess(img).tensor
            p = predict_proba(model, xi)
            attribute(model, xi, method, int(p.argmax()))
            if i >= 5:  # after warm-up
                times.append(time.perf_counter() - t)
        print(f"predict_plus_{method}_ms_median={1000 * statistics.median(times):.0f} "
              f"max={1000 * max(times):.0f}")
    return 0
