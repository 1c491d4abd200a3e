"""What several lessons measure alike: test accuracy per arm, the loss of a uniform guess."""

from __future__ import annotations

import math

import torch

from .attempts import Evidence

GUESSING_LOSS = math.log(10)  # the cross-entropy of a uniform guess over ten digits


def test_acc(ev: Evidence, *arms: str) -> dict:
    return {f"{a}_acc": ev[a].test_acc for a in arms}


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    from ..learn.evaluate import predict_logits

    return float((predict_logits(model, x).argmax(1) == y).float().mean())
