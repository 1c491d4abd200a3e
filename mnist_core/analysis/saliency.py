"""Saliency maps with captum: which pixels pushed the network towards a digit."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..data.pixels import BLACK
from ..learn.models import build_model, identity

METHODS = {
    "saliency": "Gradient magnitude: pixels where a tiny change would move this digit's score most.",
    "integrated_gradients": "Sums gradients along a path from a black image to yours: how much each "
    "pixel's ink contributed to the score.",
    "grad_cam": "Where the last conv layer looked: coarse regions whose features raised the score "
    "(conv nets only).",
    "occlusion": "Covers the image patch by patch and measures how much the score drops without it.",
}


class ExplainError(ValueError):
    """A method that does not apply to this model (e.g. Grad-CAM on an MLP)."""


def methods_for(model: nn.Module) -> list[str]:
    return [m for m in METHODS if m != "grad_cam" or getattr(model, "family", "") == "cnn"]


def _last_conv(model: nn.Module) -> nn.Module:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ExplainError("Grad-CAM needs a convolutional layer; this model has none. Try Saliency.")
    return convs[-1]


def attribute(model: nn.Module, x: torch.Tensor, method: str, target: int) -> np.ndarray:
    """A (28, 28) attribution map for one normalised image (1, 1, 28, 28) and a target digit."""
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency

    if method not in METHODS:
        raise ExplainError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    if not 0 <= int(target) <= 9:
        raise ExplainError(f"The target must be a digit 0-9, not {target!r}.")
    net = copy.deepcopy(model).cpu().eval()  # never touch a model another thread may be using
    x = x.detach().cpu().float().contiguous().requires_grad_(True)
    target = int(target)
    if method == "saliency":
        attr = Saliency(net).attribute(x, target=target, abs=True)
    elif method == "integrated_gradients":
        attr = IntegratedGradients(net).attribute(
            x, baselines=torch.full_like(x, BLACK), target=target, n_steps=32
        )
    elif method == "grad_cam":
        cam = LayerGradCam(net, _last_conv(net)).attribute(x, target=target, relu_attributions=True)
        attr = LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")
    else:
        attr = Occlusion(net).attribute(
            x,
            target=target,
            sliding_window_shapes=(1, 4, 4),
            strides=(1, 2, 2),
            baselines=BLACK,
            perturbations_per_eval=169,
        )  # one batch
    return attr.detach()[0, 0].numpy().astype(np.float32)


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """The same architecture with fresh random weights: the sanity check's meaningless baseline."""
    torch.manual_seed(seed)
    return build_model(*identity(model)).eval()
