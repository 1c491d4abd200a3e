"""The figures' one colour scheme (train blue, validation orange) and shared layout helpers."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

TRAIN = "#2563eb"


VAL = "#ea580c"


RAW = "rgba(37, 99, 235, 0.25)"


FONT = dict(family="Inter, Segoe UI, sans-serif", size=13)


PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"]


def base_layout(fig: go.Figure, height: int = 320, **kw) -> go.Figure:
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=70, b=10),
        font=FONT,
        template="plotly_white",
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.1, xanchor="right", x=1),
        **kw,
    )
    return fig


def ema(values: list[float], smoothing: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard-style smoothing in [0, 1))."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = smoothing * avg + (1 - smoothing) * v
        out.append(avg / (1 - smoothing**i) if smoothing else v)
    return out


def thin(n: int, max_points: int) -> np.ndarray:
    """Indices of at most max_points evenly spread points out of n, always keeping the last one."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.append(np.linspace(0, n - 1, max_points - 1).round().astype(int), n - 1))
