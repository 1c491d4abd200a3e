"""The lessons, as data: each classic finding's question, experiment, measurement and judge.

Every judge reads only the numbers measured from the learner's own runs and returns the choice those
numbers support, with a sentence written from them; thresholds are stated in the choices, so a
learner can check the judge. Experiments are sized to at most about 90 s of training on 2 cores
(benchmarks/lessons.py prints each one's time)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..figures.compare import gap_figure, runs_batch_figure, runs_epoch_figure
from ..figures.evaluation import image_grid, saliency_figure
from ..figures.lessons import lesson_bars_figure, lr_range_figure
from ..learn.engine import range_lr
from .attempts import Arm, Choice, Evidence, Lesson, NextStep, diverged, pct, points

GUESSING_LOSS = math.log(10)  # the cross-entropy of a uniform guess over ten digits


def _test_acc(ev: Evidence, *arms: str) -> dict:
    return {f"{a}_acc": ev[a].test_acc for a in arms}


# ---- 1. a line is not enough ----
LINE = Lesson(
    key="line",
    title="A line is not enough",
    question=(
        "A perceptron draws straight boundaries between the digits, straight in pixel space. Give it "
        "one hidden layer of 256 ReLU units and train both for 3 epochs on all 54,000 training "
        "images. What happens to test accuracy?"
    ),
    choices=(
        Choice("hidden", "The hidden layer wins by 2 points or more"),
        Choice("same", "About the same: within 2 points"),
        Choice("line", "The perceptron wins by 2 points or more"),
    ),
    arms=(
        Arm(
            "perceptron",
            "perceptron",
            dict(model="perceptron", optimizer="sgd", lr=0.1, momentum=0.0, batch_size=100, epochs=3),
        ),
        Arm(
            "hidden",
            "1-hidden-layer net",
            dict(
                model="deep",
                model_args={"hidden": [256]},
                optimizer="adam",
                lr=1e-3,
                batch_size=100,
                epochs=3,
            ),
        ),
    ),
    measures="test accuracy of each network",
    measure=lambda ev: _test_acc(ev, "perceptron", "hidden"),
    judge=lambda n: _judge_line(n),
    finding=(
        "Softmax regression tops out near 92% on MNIST; one hidden layer passes 97%. The ReLU layer "
        "lets the network bend its boundaries around each digit's many shapes."
    ),
    next_step=NextStep("train", "Train a two-hidden-layer MLP", "hidden", dict(model="mlp_128_64")),
    figures=lambda ev, n: [
        (
            "Test accuracy",
            lesson_bars_figure(
                {"perceptron": n["perceptron_acc"], "1 hidden layer": n["hidden_acc"]}, "test accuracy"
            ),
        )
    ],
)


def _judge_line(n: dict) -> tuple[str, str]:
    d = n["hidden_acc"] - n["perceptron_acc"]
    outcome = "hidden" if d >= 0.02 else "line" if d <= -0.02 else "same"
    side = "above" if d >= 0 else "below"
    return outcome, (
        f"Your 1-hidden-layer net reached {pct(n['hidden_acc'])}, {abs(d) * 100:.1f} points {side} "
        f"the perceptron's {pct(n['perceptron_acc'])}."
    )


# ---- 2. overfitting, and what narrows it ----
_WIDE = dict(model="mlp_500_125", optimizer="adam", lr=1e-3, batch_size=50, epochs=25, limit=2000)


def _gap(ev: Evidence, arm: str) -> float:
    e = ev.last_epoch(arm)
    return e["train_acc"] - e["val_acc"]


def _judge_overfit(n: dict) -> tuple[str, str]:
    l2 = n["plain_gap"] - n["l2_gap"] >= 0.01
    drop = n["plain_gap"] - n["dropout_gap"] >= 0.01
    outcome = {(True, True): "both", (True, False): "l2", (False, True): "dropout"}.get((l2, drop), "neither")
    return outcome, (
        f"Without help your wide MLP ended {n['plain_gap'] * 100:.1f} points better on its 2,000 "
        f"training images than on validation; with L2 the gap was {n['l2_gap'] * 100:.1f} points, "
        f"with dropout {n['dropout_gap'] * 100:.1f} (validation accuracy {pct(n['plain_val'])}, "
        f"{pct(n['l2_val'])}, {pct(n['dropout_val'])}). A gap counts as narrowed by 1 point or more."
    )


_OVERFIT_ARMS = (
    Arm("plain", "unregularised", _WIDE),
    Arm("l2", "L2 0.02", {**_WIDE, "weight_decay": 0.02}),
    Arm("dropout", "dropout 0.6", {**_WIDE, "model_args": {"dropout": 0.6}}),
)
OVERFIT = Lesson(
    key="overfit",
    title="Overfitting, and what narrows it",
    question=(
        "A wide MLP (500 and 125 units, 456,000 weights) trains 25 epochs on only 2,000 images: its "
        "training accuracy runs ahead of validation. Add L2 (weight decay 0.02) in one run and dropout "
        "(0.6) in another. Which of them narrows the train-validation gap?"
    ),
    choices=(
        Choice("both", "Both narrow it (by 1 point or more)"),
        Choice("l2", "Only L2 narrows it"),
        Choice("dropout", "Only dropout narrows it"),
        Choice("neither", "Neither: the gap stays within 1 point"),
    ),
    arms=_OVERFIT_ARMS,
    measures="training minus validation accuracy after the last epoch",
    measure=lambda ev: {
        **{f"{a}_gap": _gap(ev, a) for a in ("plain", "l2", "dropout")},
        **{f"{a}_val": ev.last_epoch(a)["val_acc"] for a in ("plain", "l2", "dropout")},
    },
    judge=lambda n: _judge_overfit(n),
    finding=(
        "With little data a big network memorises its training set. L2 pulls every weight toward "
        "zero and dropout makes units work without each other: both trade training accuracy for a "
        "smaller gap. (Dropout is active while training accuracy is measured, which narrows the gap "
        "a little by itself.)"
    ),
    next_step=NextStep("runs", "Compare the three runs on the Runs page"),
    figures=lambda ev, n: [
        (
            "Training and validation per epoch",
            runs_epoch_figure({a.label: ev.epochs(a.name) for a in _OVERFIT_ARMS}),
        ),
        ("The gap per epoch", gap_figure({a.label: ev.epochs(a.name) for a in _OVERFIT_ARMS})),
    ],
)


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


def _accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    from ..learn.evaluate import predict_logits

    return float((predict_logits(model, x).argmax(1) == y).float().mean())


def _measure_conv(ev: Evidence) -> dict:
    from ..data.pixels import normalize
    from ..learn.models import count_parameters

    images, labels = ev.mnist.test_images[:2000], ev.mnist.test_labels[:2000]
    x, moved = normalize(images), normalize(shifted(images))
    out = {}
    for arm in ("mlp", "cnn"):
        model = ev.model(arm)
        out[f"{arm}_acc"], out[f"{arm}_shifted"] = (
            _accuracy(model, x, labels),
            _accuracy(model, moved, labels),
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


# ---- 4. depth ----
_DEPTH = dict(optimizer="adam", lr=2e-3, batch_size=64, epochs=2, limit=5000)


def _judge_depth(n: dict) -> tuple[str, str]:
    a1, a2, a3 = n["c1_acc"], n["c2_acc"], n["c3_acc"]
    if a3 - a1 <= -0.003:
        outcome = "worse"
    elif a3 - a1 < 0.003:
        outcome = "none"
    else:
        outcome = "each" if a2 - a1 >= 0.003 and a3 - a2 >= 0.003 else "diminishing"
    return outcome, (
        f"Your 1, 2 and 3 conv-layer nets reached {pct(a1)}, {pct(a2)} and {pct(a3)}: "
        f"{points(a2 - a1)} for the second layer, {points(a3 - a2)} for the third."
    )


DEPTH = Lesson(
    key="depth",
    title="Depth: 1, 2 and 3 conv layers",
    question=(
        "Three CNNs with 1, 2 and 3 conv layers (16, 32 and 64 filters, each followed by pooling) train "
        "2 epochs on 5,000 images. How does test accuracy change with depth?"
    ),
    choices=(
        Choice("each", "Each added layer helps (by 0.3 points or more)"),
        Choice("diminishing", "Deeper helps overall, but one of the two steps adds under 0.3 points"),
        Choice("none", "Depth makes no difference (within 0.3 points)"),
        Choice("worse", "Deeper is worse"),
    ),
    arms=(
        Arm("c1", "1 conv layer", dict(model="cnn_1", model_args={"channels": [16]}, **_DEPTH)),
        Arm(
            "c2",
            "2 conv layers",
            dict(model="cnn_2", model_args={"channels": [16, 32], "dropout": 0.0}, **_DEPTH),
        ),
        Arm(
            "c3",
            "3 conv layers",
            dict(model="cnn_3", model_args={"channels": [16, 32, 64], "dropout": 0.0}, **_DEPTH),
        ),
    ),
    measures="test accuracy of each network",
    measure=lambda ev: _test_acc(ev, "c1", "c2", "c3"),
    judge=lambda n: _judge_depth(n),
    finding=(
        "Each conv layer sees a wider patch of the digit than the one before: edges, then strokes, "
        "then parts of digits. Deeper nets build those parts, and on MNIST the gains shrink as the "
        "accuracy nears 99%."
    ),
    next_step=NextStep("inside", "See what each layer of the 3-layer net responds to", "c3"),
    figures=lambda ev, n: [
        (
            "Test accuracy by depth",
            lesson_bars_figure(
                {"1 layer": n["c1_acc"], "2 layers": n["c2_acc"], "3 layers": n["c3_acc"]}, "test accuracy"
            ),
        )
    ],
)


# ---- 5. augmentation ----
_FEW = dict(
    model="cnn_2",
    model_args={"channels": [16, 32], "dropout": 0.0},
    optimizer="adam",
    lr=2e-3,
    batch_size=50,
    epochs=30,
    limit=500,
)
_AUGMENT = dict(rotate=12.0, translate=0.12, scale=0.1)


def _judge_augment(n: dict) -> tuple[str, str]:
    d = n["augmented_acc"] - n["plain_acc"]
    outcome = "up" if d >= 0.01 else "down" if d <= -0.01 else "same"
    return outcome, (
        f"On 500 training images your CNN reached {pct(n['plain_acc'])} without augmentation and "
        f"{pct(n['augmented_acc'])} with it ({points(d)}); its training accuracy ended at "
        f"{pct(n['plain_train'])} and {pct(n['augmented_train'])}."
    )


_AUGMENT_ARMS = (Arm("plain", "no augmentation", _FEW), Arm("augmented", "augmented", {**_FEW, **_AUGMENT}))
AUGMENT = Lesson(
    key="augment",
    title="Augmentation on little data",
    question=(
        "One CNN trains 30 epochs on only 500 images, once as they are and once with every batch "
        "randomly rotated (up to 12 degrees), shifted and zoomed. What does augmentation do to test "
        "accuracy?"
    ),
    choices=(
        Choice("up", "Raises it by 1 point or more"),
        Choice("same", "Changes it by less than 1 point"),
        Choice("down", "Lowers it by 1 point or more"),
    ),
    arms=_AUGMENT_ARMS,
    measures="test accuracy, and training accuracy after the last epoch",
    measure=lambda ev: {
        **_test_acc(ev, "plain", "augmented"),
        "plain_train": ev.last_epoch("plain")["train_acc"],
        "augmented_train": ev.last_epoch("augmented")["train_acc"],
    },
    judge=lambda n: _judge_augment(n),
    finding=(
        "500 images are quickly memorised. Augmentation shows the network a slightly different digit "
        "every epoch, so memorising stops paying and it has to learn what a digit looks like."
    ),
    next_step=NextStep(
        "train", "Train the augmented CNN on all the data", "augmented", dict(limit=0, epochs=3)
    ),
    figures=lambda ev, n: [
        (
            "Training and validation per epoch",
            runs_epoch_figure({a.label: ev.epochs(a.name) for a in _AUGMENT_ARMS}),
        )
    ],
)


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
    correct = _accuracy(model, torch.cat(xs), labels[keep]) * len(keep)
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


# ---- 8. what the network confuses ----
PAIRS = ((4, 9), (3, 5), (2, 7), (7, 9), (3, 8))


def _measure_confusion(ev: Evidence) -> dict:
    from ..analysis.cache import evaluate_checkpoint

    result = evaluate_checkpoint(ev.store.best_checkpoint(ev["model"].id), mnist=ev.mnist)
    cm = result.confusion
    pairs = {(a, b): int(cm[a, b] + cm[b, a]) for a in range(10) for b in range(a + 1, 10)}
    (a, b), count = max(pairs.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
    errors = int((result.y_true != result.y_pred).sum())
    return dict(
        a=a, b=b, count=count, errors=errors, a_as_b=int(cm[a, b]), b_as_a=int(cm[b, a]), acc=result.accuracy
    )


def _judge_confusion(n: dict) -> tuple[str, str]:
    a, b = n["a"], n["b"]
    outcome = f"{a}{b}" if (a, b) in PAIRS else "other"
    share = n["count"] / max(n["errors"], 1)
    return outcome, (
        f"Your model ({pct(n['acc'])} on the 10,000 test digits) made {n['errors']} mistakes; the pair it "
        f"confused most is {a} and {b}: {n['count']} mistakes ({share:.0%} of them), {n['a_as_b']} "
        f"{a}s read as {b} and {n['b_as_a']} {b}s read as {a}."
    )


def _confusion_figures(ev: Evidence, n: dict) -> list:
    from ..analysis.cache import evaluate_checkpoint
    from ..analysis.saliency import attribute

    result = evaluate_checkpoint(ev.store.best_checkpoint(ev["model"].id), mnist=ev.mnist)
    idx = torch.cat([result.cell(n["a"], n["b"]), result.cell(n["b"], n["a"])])[:16]
    assert result.images is not None
    titles = [f"{int(result.y_true[i])} read as {int(result.y_pred[i])}" for i in idx]
    figs = [
        (
            "Its mistakes between the pair, most confident first",
            image_grid(result.images[idx], titles, cols=8),
        )
    ]
    model = ev.model("model")
    for i in idx[:3]:
        x = result.images[i : i + 1]
        pred = int(result.y_pred[i])
        figs.append(
            (
                "Saliency: the pixels that pushed the wrong digit's score up (red)",
                saliency_figure(
                    x[0, 0].numpy(),
                    attribute(model, x, "saliency", pred),
                    f"{int(result.y_true[i])} read as {pred}",
                ),
            )
        )
    return figs


CONFUSION = Lesson(
    key="confusion",
    title="What the network confuses, and why",
    question=(
        "A small MLP (64 hidden units) trains 2 epochs on 10,000 images, then reads the 10,000 test "
        "digits. Which pair of digits will it confuse most often, counting both directions?"
    ),
    choices=tuple(Choice(f"{a}{b}", f"{a} and {b}") for a, b in PAIRS) + (Choice("other", "Another pair"),),
    arms=(
        Arm(
            "model",
            "MLP (64 hidden)",
            dict(
                model="deep",
                model_args={"hidden": [64]},
                optimizer="adam",
                lr=2e-3,
                batch_size=64,
                epochs=2,
                limit=10000,
            ),
        ),
    ),
    measures="the confusion matrix on the test set: mistakes per pair of digits",
    measure=_measure_confusion,
    judge=lambda n: _judge_confusion(n),
    finding=(
        "Mistakes are not random: they fall between digits that share strokes (a 4 with a closed top "
        "is a 9; a 3 and a 5 differ in one stroke). Saliency shows the pixels that pushed the score "
        "of the wrong digit up."
    ),
    next_step=NextStep("evaluate", "Open this pair in the confusion matrix", "model"),
    figures=_confusion_figures,
)

LESSONS: tuple[Lesson, ...] = (LINE, OVERFIT, CONV, DEPTH, AUGMENT, LR, PREPROCESS, CONFUSION)
BY_KEY = {lesson.key: lesson for lesson in LESSONS}
