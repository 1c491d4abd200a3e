"""Lesson: what each preprocessing step of a drawn digit is worth."""

from __future__ import annotations

import numpy as np
import torch

from ..figures.lessons import lesson_bars_figure
from .attempts import Arm, Choice, Evidence, Lesson, NextStep, pct
from .measures import accuracy

# ---- 7. preprocessing ----
STAGES: dict[str, dict] = {
    "invert": dict(invert="no"),
    "crop": dict(crop=False),
    "scale": dict(scale=False),
    "center": dict(center=False),
}


DRAWINGS = 200


def drawing_set(mnist, n: int = DRAWINGS, seed: int = 0) -> tuple[list[np.ndarray], torch.Tensor]:
    """A fixed set of test digits rendered as the Draw page's canvas gives them: dark ink on white,
    drawn big and off-centre at random sizes (seeded, so every learner's model reads the same set)."""
    from ..data.preprocess import render_like_canvas

    rng = np.random.default_rng(seed)
    start = 5000  # away from the first test digits that other lessons use
    images = [
        render_like_canvas(mnist.test_images[start + i].numpy(), rng, dark_on_light=True) for i in range(n)
    ]
    return images, mnist.test_labels[start : start + n]


def drawing_accuracy(model, images: list[np.ndarray], labels: torch.Tensor, **stage_off) -> float:
    from ..data.preprocess import InputError, preprocess

    xs, keep = [], []
    for i, img in enumerate(images):
        try:
            xs.append(preprocess(img, **stage_off).tensor)
            keep.append(i)
        except InputError:
            pass  # a stage switched off can make a digit unreadable: it counts as wrong
    if not xs:
        return 0.0
    correct = accuracy(model, torch.cat(xs), labels[keep]) * len(keep)
    return correct / len(images)


def _measure_preprocess(ev: Evidence) -> dict:
    images, labels = drawing_set(ev.mnist)
    model = ev.model("model")
    out = {"all_acc": drawing_accuracy(model, images, labels), "mnist_acc": ev["model"].test_acc or 0.0}
    for stage, off in STAGES.items():
        out[f"no_{stage}_acc"] = drawing_accuracy(model, images, labels, **off)
    return out


_STAGE_WORDS = dict(
    invert="inverting the colours",
    crop="cropping to the ink",
    scale="scaling to 20 pixels",
    center="centring by mass",
)


def _judge_preprocess(n: dict) -> tuple[str, str]:
    drops = {s: n["all_acc"] - n[f"no_{s}_acc"] for s in STAGES}
    worst = max(drops, key=lambda s: drops[s])
    others = ", ".join(f"{_STAGE_WORDS[s]} {drops[s] * 100:.1f}" for s in STAGES if s != worst)
    return worst, (
        f"Your model read {pct(n['all_acc'])} of the {DRAWINGS} drawings with every stage on "
        f"({pct(n['mnist_acc'])} on MNIST's own test digits). Switching off {_STAGE_WORDS[worst]} cost the "
        f"most: {drops[worst] * 100:.1f} points; {others} points."
    )


PREPROCESS = Lesson(
    key="preprocess",
    title="Preprocessing decides what is read",
    question=(
        f"A CNN trained on MNIST reads {DRAWINGS} digits drawn as on the Draw page's canvas (dark ink "
        "on white, big and off-centre). Before it sees one, the drawing is inverted to white on black, "
        "cropped to its ink, scaled to fit 20 x 20 pixels and centred by its mass, as MNIST's digits "
        "were. Switch one stage off at a time: which costs the most accuracy?"
    ),
    choices=tuple(Choice(s, f"Switching off {w}") for s, w in _STAGE_WORDS.items()),
    arms=(
        Arm(
            "model",
            "CNN",
            dict(
                model="fast_cnn",
                optimizer="adam",
                lr=5e-3,
                batch_size=128,
                epochs=2,
                schedule="onecycle",
                limit=10000,
            ),
        ),
    ),
    measures=f"accuracy on {DRAWINGS} fixed canvas-style drawings with each stage switched off in turn",
    measure=_measure_preprocess,
    judge=lambda n: _judge_preprocess(n),
    finding=(
        "A network only knows the pictures it was trained on. MNIST's digits are white on black, about "
        "20 pixels tall and centred by mass in 28 x 28: a drawing has to be brought to that form, or "
        "a 99% model reads it like noise."
    ),
    next_step=NextStep("draw", "Draw digits and watch each stage", "model"),
    figures=lambda ev, n: [
        (
            "Accuracy on the drawings",
            lesson_bars_figure(
                {"every stage": n["all_acc"], **{f"no {s}": n[f"no_{s}_acc"] for s in STAGES}}, "accuracy"
            ),
        )
    ],
)
