"""Lesson: find a learning rate with the LR range test, then train with it."""

from __future__ import annotations

import math

import numpy as np

from ..figures.compare import runs_batch_figure
from ..figures.lessons import lr_range_figure
from ..learn.engine import range_lr
from .attempts import Arm, Choice, Evidence, Lesson, NextStep, diverged, pct
from .measures import GUESSING_LOSS

# ---- 6. the learning rate, and the LR range test ----
_LR = dict(
    model="deep",
    model_args={"hidden": [128]},
    optimizer="sgd",
    momentum=0.0,
    batch_size=64,
    epochs=2,
    limit=10000,
)


def sweep_curve(ev: Evidence, arm: str = "sweep") -> tuple[list[float], list[float]]:
    """The range test's (learning rate, batch loss) pairs, from its run's batch losses."""
    run = ev[arm]
    rows = ev.batch_losses(arm)
    total = (run.progress or {}).get("batches") or len(rows)
    total *= run.config["epochs"]
    return [range_lr(run.config["lr"], step - 1, total) for step, _, _ in rows], [loss for _, _, loss in rows]


def suggest_lr(lrs: list[float], losses: list[float], smoothing: float = 0.9) -> tuple[float, float]:
    """(suggested rate, rate at the lowest smoothed loss). This lab suggests a third of the rate where
    the bias-corrected moving average of the loss bottoms out: still on the falling part of the curve,
    with a margin before it turns up (fastai's lr_find has used a tenth, a more cautious reading)."""
    if not lrs:
        raise ValueError("The range test recorded no batch.")
    smooth, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = smoothing * avg + (1 - smoothing) * loss
        smooth.append(avg / (1 - smoothing**i))
    lowest = lrs[int(np.argmin(smooth))]
    return lowest / 3, lowest


def _suggested_config(ev: Evidence) -> dict:
    rate, _ = suggest_lr(*sweep_curve(ev))
    return {**_LR, "lr": float(f"{min(max(rate, 1e-5), 10):.2g}")}


def _final_loss(ev: Evidence, arm: str) -> float:
    run = ev[arm]
    if diverged(run):
        return math.inf
    return ev.last_epoch(arm).get("train_loss", math.inf)


def _measure_lr(ev: Evidence) -> dict:
    rate, lowest = suggest_lr(*sweep_curve(ev))
    return {
        **{f"{a}_acc": ev[a].test_acc or 0.0 for a in ("small", "good", "large", "suggested")},
        **{f"{a}_loss": _final_loss(ev, a) for a in ("small", "good", "large")},
        "large_nan": diverged(ev["large"]),
        "suggested_lr": ev["suggested"].config["lr"],
        "lowest_lr": lowest,
    }


def _judge_lr(n: dict) -> tuple[str, str]:
    crawls = n["good_acc"] - n["small_acc"] >= 0.05
    blows = not math.isfinite(n["large_loss"]) or n["large_loss"] >= GUESSING_LOSS
    outcome = {(True, True): "both", (True, False): "crawl", (False, True): "blow"}.get(
        (crawls, blows), "fine"
    )
    large = (
        "its loss became NaN and the run ended there"
        if n["large_nan"]
        else f"its training loss ended at {n['large_loss']:.3g} (a uniform guess scores {GUESSING_LOSS:.2f})"
    )
    return outcome, (
        f"After 2 epochs the rate 0.0001 reached {pct(n['small_acc'])} against {pct(n['good_acc'])} at 0.1; "
        f"at 10 {large}. Your range test's loss bottomed out near {n['lowest_lr']:.2g}; trained at the "
        f"suggested {n['suggested_lr']:g}, the same net reached {pct(n['suggested_acc'])}."
    )


_LR_ARMS = (
    Arm("small", "lr 0.0001", {**_LR, "lr": 1e-4}),
    Arm("good", "lr 0.1", {**_LR, "lr": 0.1}),
    Arm("large", "lr 10", {**_LR, "lr": 10.0, "momentum": 0.99}, may_diverge=True),
    Arm("sweep", "LR range test", {**_LR, "lr": 10.0, "epochs": 1, "schedule": "range"}),
    Arm("suggested", "suggested rate", _suggested_config, after=("sweep",)),
)


LR = Lesson(
    key="lr",
    title="The learning rate",
    question=(
        "An MLP trains 2 epochs with plain SGD at three learning rates: 0.0001, 0.1 and 10. Then an LR "
        "range test sweeps the rate up from 0.0001 in one pass and suggests one, and the net trains "
        "again with it. Compared with 0.1, what do the tiny and the huge rate do?"
    ),
    choices=(
        Choice("both", "The tiny rate crawls (5 points or more behind) and the huge one diverges"),
        Choice("crawl", "The tiny rate crawls; the huge one trains"),
        Choice("blow", "The tiny rate keeps up; the huge one diverges"),
        Choice("fine", "Both train about as well as 0.1"),
    ),
    arms=_LR_ARMS,
    measures="test accuracy and final training loss at each rate; the range test's loss against the rate",
    measure=_measure_lr,
    judge=lambda n: _judge_lr(n),
    finding=(
        "Too small a rate takes tiny steps and needs many epochs; too large a rate overshoots every "
        "valley until the loss explodes (diverging is 'the loss above a uniform guess', or NaN). "
        "A range test finds the usable band in one pass: train a little below where the loss is lowest."
    ),
    next_step=NextStep("train", "Train with the suggested rate", "suggested"),
    figures=lambda ev, n: [
        ("The LR range test", lr_range_figure(*sweep_curve(ev), n["suggested_lr"])),
        (
            "Loss per batch at each rate",
            runs_batch_figure({a.label: _batch_series(ev, a.name) for a in _LR_ARMS if a.name != "sweep"}),
        ),
    ],
)


def _batch_series(ev: Evidence, arm: str) -> tuple[list[int], list[float], int]:
    rows = ev.batch_losses(arm)
    per_epoch = (ev[arm].progress or {}).get("batches") or max(len(rows), 1)
    return [s for s, _, _ in rows], [min(loss, 10.0) for _, _, loss in rows], per_epoch
