"""Batched augmentation on normalised image tensors: one affine warp plus random erasing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .pixels import BLACK


def augment_batch(
    x: torch.Tensor,
    *,
    rotate: float = 0.0,
    translate: float = 0.0,
    scale: float = 0.0,
    erase: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return an augmented copy of x (N, 1, H, W); every image draws its own parameters.

    rotate: max degrees either way; translate: max shift as a fraction of the side;
    scale: max zoom in or out as a fraction; erase: probability of blanking one patch.
    Labels are untouched: these transforms keep a digit's class.
    """
    n = x.shape[0]
    out = x
    if rotate or translate or scale:

        def uniform(limit: float) -> torch.Tensor:
            return (torch.rand(n, generator=generator) * 2 - 1) * limit

        angle = uniform(math.radians(rotate))
        zoom = 1.0 + uniform(scale)
        shift = torch.stack([uniform(translate), uniform(translate)], 1) * 2  # grid units span 2
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        ).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # shift to make the padding value the background, warp, shift back
        out = (
            F.grid_sample(x - BLACK, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + BLACK
        )
    if erase:
        out = out.clone() if out is x else out
        h, w = x.shape[-2:]
        hit = torch.rand(n, generator=generator) < erase
        size_h = torch.randint(4, h // 2 + 1, (n,), generator=generator)
        size_w = torch.randint(4, w // 2 + 1, (n,), generator=generator)
        top = (torch.rand(n, generator=generator) * (h - size_h + 1)).long()
        left = (torch.rand(n, generator=generator) * (w - size_w + 1)).long()
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        mask = (
            (rows >= top.view(-1, 1, 1))
            & (rows < (top + size_h).view(-1, 1, 1))
            & (cols >= left.view(-1, 1, 1))
            & (cols < (left + size_w).view(-1, 1, 1))
            & hit.view(-1, 1, 1)
        )
        out = out.masked_fill(mask.unsqueeze(1), BLACK)
    return out
