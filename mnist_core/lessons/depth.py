"""Lesson: do more layers help a network on MNIST?"""

from __future__ import annotations

from ..figures.lessons import lesson_bars_figure
from .attempts import Arm, Choice, Lesson, NextStep, pct, points
from .measures import test_acc

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
    measure=lambda ev: test_acc(ev, "c1", "c2", "c3"),
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
