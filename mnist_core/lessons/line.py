"""Lesson: is a straight line (a perceptron) enough to read digits?"""

from __future__ import annotations

from ..figures.lessons import lesson_bars_figure
from .attempts import Arm, Choice, Lesson, NextStep, pct
from .measures import test_acc

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
    measure=lambda ev: test_acc(ev, "perceptron", "hidden"),
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
