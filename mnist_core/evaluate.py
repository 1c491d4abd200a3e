"""Predictions and metrics: accuracy, loss, confusion matrix and per-class accuracy."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import NUM_CLASSES


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Logits for normalised images (N, 1, 28, 28), in eval mode, in batches; returned on the CPU."""
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    fmt = torch.channels_last if getattr(model, "family", "") == "cnn" else torch.contiguous_format
    out = []
    try:
        for start in range(0, len(x), batch_size):
            chunk = x[start:start + batch_size].to(param.device).contiguous(memory_format=fmt)
            out.append(model(chunk).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, NUM_CLASSES)


def predict_proba(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return predict_logits(model, x).softmax(1)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, n: int = NUM_CLASSES) -> torch.Tensor:
    """Rows are true labels, columns predictions."""
    return torch.bincount(y_true.long() * n + y_pred.long(), minlength=n * n).reshape(n, n)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, with_confusion: bool = True) -> dict:
    """Loss and accuracy; with_confusion adds the matrix and per-class accuracy (plain lists)."""
    logits = predict_logits(model, x)
    y = y.cpu()
    pred = logits.argmax(1)
    result = dict(loss=F.cross_entropy(logits, y).item() if len(y) else float("nan"),
                  accuracy=(pred == y).float().mean().item() if len(y) else float("nan"),
                  count=len(y))
    if with_confusion:
        cm = confusion_matrix(y, pred)
        support = cm.sum(1).clamp(min=1)
        result.update(confusion=cm.tolist(), per_class_accuracy=(cm.diag() / support).tolist())
    return result


def confusion_text(cm: list[list[int]]) -> str:
    """The matrix as aligned text, rows = true digit, columns = predicted digit."""
    width = max(4, max(len(str(v)) for row in cm for v in row) + 1)
    lines = ["true\\pred" + "".join(f"{j:>{width}}" for j in range(len(cm)))]
    for i, row in enumerate(cm):
        lines.append(f"{i:>9}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
