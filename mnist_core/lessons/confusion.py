"""Lesson: which digits does a network confuse, and why?"""

from __future__ import annotations

import torch

from ..figures.evaluation import image_grid, saliency_figure
from .attempts import Arm, Choice, Evidence, Lesson, NextStep, pct

# ---- 8. what the network confuses ----
PAIRS = ((4, 9), (3, 5), (2, 7), (7, 9), (3, 8))


def _measure_confusion(ev: Evidence) -> dict:
    from ..analysis.cache import evaluate_checkpoint

    result = evaluate_checkpoint(ev.store.layout.best_checkpoint(ev["model"].id), mnist=ev.mnist)
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

    result = evaluate_checkpoint(ev.store.layout.best_checkpoint(ev["model"].id), mnist=ev.mnist)
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
