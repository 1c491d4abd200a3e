"""Lesson: a wide network on few digits overfits; does L2 or dropout close the gap?"""

from __future__ import annotations

from ..figures.compare import gap_figure, runs_epoch_figure
from .attempts import Arm, Choice, Evidence, Lesson, NextStep, pct

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
