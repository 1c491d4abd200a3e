"""Lesson: does augmentation help when training digits are few?"""

from __future__ import annotations

from ..figures.compare import runs_epoch_figure
from .attempts import Arm, Choice, Lesson, NextStep, pct, points
from .measures import test_acc

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
        **test_acc(ev, "plain", "augmented"),
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
