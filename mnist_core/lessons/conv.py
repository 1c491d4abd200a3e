"""Lesson: does a convolution still read a digit moved a few pixels?"""

from __future__ import annotations

import torch

from ..figures.lessons import lesson_bars_figure
from .attempts import Arm, Choice, Evidence, Lesson, NextStep, pct
from .measures import accuracy

# ---- 3. why convolutions ----
SHIFT = 3  # pixels


def shifted(images: torch.Tensor, pixels: int = SHIFT, seed: int = 0) -> torch.Tensor:
    """Each image moved `pixels` in one of eight directions (seeded), zeros shifted in."""
    gen = torch.Generator().manual_seed(seed)
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    which = torch.randint(len(steps), (len(images),), generator=gen)
    x = images.reshape(len(images), 1, 28, 28)
    padded = torch.nn.functional.pad(x, (pixels, pixels, pixels, pixels))
    out = torch.empty_like(x)
    for k, (dy, dx) in enumerate(steps):
        sel = which == k
        top, left = pixels - dy * pixels, pixels - dx * pixels
        out[sel] = padded[sel, :, top : top + 28, left : left + 28]
    return out.reshape(images.shape)


def _measure_conv(ev: Evidence) -> dict:
    from ..data.pixels import normalize
    from ..learn.models import count_parameters

    images, labels = ev.mnist.test_images[:2000], ev.mnist.test_labels[:2000]
    x, moved = normalize(images), normalize(shifted(images))
    out = {}
    for arm in ("mlp", "cnn"):
        model = ev.model(arm)
        out[f"{arm}_acc"], out[f"{arm}_shifted"] = (
            accuracy(model, x, labels),
            accuracy(model, moved, labels),
        )
        out[f"{arm}_params"] = count_parameters(model)
    return out


def _judge_conv(n: dict) -> tuple[str, str]:
    mlp_drop, cnn_drop = n["mlp_acc"] - n["mlp_shifted"], n["cnn_acc"] - n["cnn_shifted"]
    outcome = "cnn" if mlp_drop - cnn_drop >= 0.03 else "mlp" if cnn_drop - mlp_drop >= 0.03 else "same"
    return outcome, (
        f"Your CNN ({n['cnn_params']:,} weights) went from {pct(n['cnn_acc'])} to {pct(n['cnn_shifted'])} "
        f"on digits shifted {SHIFT} pixels; your MLP ({n['mlp_params']:,} weights) from "
        f"{pct(n['mlp_acc'])} to {pct(n['mlp_shifted'])}: the CNN lost {cnn_drop * 100:.1f} points, "
        f"the MLP {mlp_drop * 100:.1f}."
    )


_SMALL = dict(optimizer="adam", lr=2e-3, batch_size=64, epochs=3, limit=10000)


CONV = Lesson(
    key="conv",
    title="Why convolutions",
    question=(
        "An MLP with one hidden layer of 25 units and a CNN of two small conv layers have about the "
        "same number of weights (about 20,000). Both train on 10,000 images, then read test digits "
        f"shifted {SHIFT} pixels sideways or up and down. Which keeps more of its accuracy?"
    ),
    choices=(
        Choice("cnn", "The CNN loses at least 3 points less"),
        Choice("same", "Both lose about the same (within 3 points)"),
        Choice("mlp", "The MLP loses at least 3 points less"),
    ),
    arms=(
        Arm("mlp", "MLP (25 hidden)", dict(model="deep", model_args={"hidden": [25]}, **_SMALL)),
        Arm(
            "cnn",
            "CNN (16, 32 filters)",
            dict(model="cnn_2", model_args={"channels": [16, 32], "dropout": 0.0}, **_SMALL),
        ),
    ),
    measures=f"test accuracy on 2,000 test digits, as they are and shifted {SHIFT} pixels",
    measure=_measure_conv,
    judge=lambda n: _judge_conv(n),
    finding=(
        "A convolution applies the same small filter at every position, and pooling forgets exactly "
        "where a stroke was: a CNN learns a stroke once, anywhere. An MLP learns each pixel position "
        "separately, so a shifted digit is new to it."
    ),
    next_step=NextStep("draw", "Draw off-centre digits for your CNN", "cnn"),
    figures=lambda ev, n: [
        (
            "As they are, and shifted",
            lesson_bars_figure(
                {
                    "MLP": n["mlp_acc"],
                    "MLP, shifted": n["mlp_shifted"],
                    "CNN": n["cnn_acc"],
                    "CNN, shifted": n["cnn_shifted"],
                },
                "test accuracy",
            ),
        )
    ],
)
