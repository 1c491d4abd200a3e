"""Predictions and metrics: accuracy, loss, confusion matrix and per-class accuracy."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..data.pixels import NUM_CLASSES
from .models import memory_format

_THREADS = threading.Lock()
_one_thread_blocks = 0  # how many one_thread() blocks are running (any thread)
_threads_before = 0  # the setting to restore when the last one ends


@contextmanager
def one_thread() -> Iterator[None]:
    """PyTorch on one CPU thread inside the block: for one 28x28 digit (a prediction, its saliency
    maps) waking a team of threads costs more than it saves, and far more when the cores are shared
    (the browser on the same laptop): measured on 2 cores, four saliency maps 0.9 s -> 0.25 s. The
    setting is process-wide; the last block to end restores it."""
    global _one_thread_blocks, _threads_before
    with _THREADS:
        if _one_thread_blocks == 0:
            _threads_before = torch.get_num_threads()
        _one_thread_blocks += 1
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS:
            _one_thread_blocks -= 1
            if _one_thread_blocks == 0:
                torch.set_num_threads(_threads_before)


class Interrupted(Exception):
    """An evaluation ended early because its caller's stop() said so (a process exiting)."""


PRECISIONS = ("fp32", "bf16")  # what inference computes in: a run's own, as device.run_precision resolves it


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    x: torch.Tensor,
    batch_size: int = 500,
    precision: str = "fp32",
    stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Logits for normalised images (N, 1, 28, 28), in eval mode, in batches; returned on the CPU
    in fp32. Batches of 500 stay in the CPU's caches: 10,000 test digits took 1.05 s, against 1.7 s
    in batches of 2,000 (fast_cnn, 2 cores). precision "bf16" computes under bf16 autocast, as the
    run trained: 10,000 test digits through better_cnn in 1.33 s instead of 4.45 s on a 2-core CPU
    with native bf16 (2 of them classified differently).
    `stop` is asked before each batch; when it says so, Interrupted is raised."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    fmt = memory_format(model)
    model.to(memory_format=fmt)
    out = []
    autocast = torch.autocast(param.device.type, torch.bfloat16, enabled=precision == "bf16")
    try:
        for start in range(0, len(x), batch_size):
            if stop is not None and stop():
                raise Interrupted(f"stopped after {start} of {len(x)} images")
            chunk = x[start : start + batch_size].to(param.device).contiguous(memory_format=fmt)
            with autocast:
                logits = model(chunk)
            out.append(logits.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, NUM_CLASSES)


def predict_proba(
    model: nn.Module, x: torch.Tensor, precision: str = "fp32", stop: Callable[[], bool] | None = None
) -> torch.Tensor:
    return predict_logits(model, x, precision=precision, stop=stop).softmax(1)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, n: int = NUM_CLASSES) -> torch.Tensor:
    """Rows are true labels, columns predictions."""
    return torch.bincount(y_true.long() * n + y_pred.long(), minlength=n * n).reshape(n, n)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    with_confusion: bool = True,
    precision: str = "fp32",
) -> dict:
    """Loss and accuracy; with_confusion adds the matrix and per-class accuracy (plain lists)."""
    logits = predict_logits(model, x, precision=precision)
    y = y.cpu()
    pred = logits.argmax(1)
    result: dict = dict(
        loss=F.cross_entropy(logits, y).item() if len(y) else float("nan"),
        accuracy=(pred == y).float().mean().item() if len(y) else float("nan"),
        count=len(y),
    )
    if with_confusion:
        cm = confusion_matrix(y, pred)
        support = cm.sum(1).clamp(min=1)
        result["confusion"] = cm.tolist()
        result["per_class_accuracy"] = (cm.diag() / support).tolist()
    return result


def confusion_text(cm: list[list[int]]) -> str:
    """The matrix as aligned text, rows = true digit, columns = predicted digit."""
    width = max(4, max(len(str(v)) for row in cm for v in row) + 1)
    lines = ["true\\pred" + "".join(f"{j:>{width}}" for j in range(len(cm)))]
    for i, row in enumerate(cm):
        lines.append(f"{i:>9}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


# ---------------- error analysis (the Evaluate page and its tests) ----------------
@dataclass
class Analysis:
    """Predictions of one model on one split, with everything the Evaluate page shows."""

    y_true: torch.Tensor  # (N,)
    y_pred: torch.Tensor  # (N,)
    probs: torch.Tensor  # (N, 10)
    confusion: torch.Tensor  # (10, 10), rows true, columns predicted
    accuracy: float
    per_class: list[dict] = field(default_factory=list)  # precision, recall, f1, support per digit
    images: torch.Tensor | None = None  # the normalised inputs, for galleries and saliency

    def cell(self, true: int, pred: int) -> torch.Tensor:
        """Indices of the images in one confusion cell, most telling first: confidently wrong
        for an error cell, least sure for a correct (diagonal) cell."""
        idx = torch.nonzero((self.y_true == true) & (self.y_pred == pred)).flatten()
        conf = self.probs[idx, pred]
        order = conf.argsort(descending=true != pred)
        return idx[order]

    def most_confused(self, k: int = 10) -> list[tuple[int, int, int]]:
        """(true, predicted, count) of the k largest off-diagonal cells."""
        cells = [
            (t, p, int(c))
            for t, row in enumerate(self.confusion.tolist())
            for p, c in enumerate(row)
            if t != p and c > 0
        ]
        return sorted(cells, key=lambda cell: (-cell[2], cell[0], cell[1]))[:k]

    def errors(self, true: int | None = None, pred: int | None = None) -> torch.Tensor:
        """Indices of misclassified images, optionally filtered, most confident mistakes first."""
        mask = self.y_true != self.y_pred
        if true is not None:
            mask &= self.y_true == true
        if pred is not None:
            mask &= self.y_pred == pred
        idx = torch.nonzero(mask).flatten()
        return idx[self.probs[idx, self.y_pred[idx]].argsort(descending=True)]


def per_class_metrics(cm: torch.Tensor) -> list[dict]:
    """Precision, recall, F1 and support of each digit from the confusion matrix (rows true), with
    0 where a ratio has nothing to divide by (scikit-learn's zero_division=0)."""
    cm = cm.double()
    tp, predicted, support = cm.diag(), cm.sum(0), cm.sum(1)
    ratio = lambda a, b: torch.where(b > 0, a / b.clamp(min=1), torch.zeros_like(a))  # noqa: E731
    precision, recall = ratio(tp, predicted), ratio(tp, support)
    f1 = ratio(2 * tp, predicted + support)  # = 2PR / (P + R)
    return [
        dict(
            digit=d,
            precision=float(precision[d]),
            recall=float(recall[d]),
            f1=float(f1[d]),
            support=int(support[d]),
        )
        for d in range(len(cm))
    ]


def summarise(y: torch.Tensor, pred: torch.Tensor, probs: torch.Tensor) -> Analysis:
    """The Analysis of predictions `pred` (with their probabilities) against the labels `y`."""
    y = y.cpu()
    cm = confusion_matrix(y, pred)
    accuracy = (pred == y).float().mean().item() if len(y) else float("nan")
    return Analysis(y, pred, probs, cm, accuracy, per_class_metrics(cm))


def analyse(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str = "fp32",
    stop: Callable[[], bool] | None = None,
) -> Analysis:
    probs = predict_proba(model, x, precision, stop)
    return summarise(y, probs.argmax(1), probs)
