"""The lessons' figures: a verdict's bars and the LR range test's curve."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import PALETTE, RAW, TRAIN, VAL, base_layout, ema


# ---------------- lessons ----------------
def lesson_bars_figure(values: dict[str, float], title: str) -> go.Figure:
    """One bar per measured quantity (an accuracy), labelled with its value."""
    labels, ys = list(values), [float(v) for v in values.values()]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=ys,
            text=[f"{v:.1%}" for v in ys],
            textposition="outside",
            marker_color=[PALETTE[i % len(PALETTE)] for i in range(len(ys))],
            hovertemplate="%{x}: %{y:.2%}<extra></extra>",
        )
    )
    low = min(ys) if ys else 0.0
    fig.update_yaxes(title_text=title, tickformat=".0%", range=[max(0.0, low - 0.1), 1.1])
    return base_layout(fig, height=300, showlegend=False)


def lr_range_figure(lrs: list[float], losses: list[float], suggested: float) -> go.Figure:
    """The LR range test: batch loss against a learning rate rising exponentially (log axis), with
    the suggested rate marked."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=lrs, y=losses, mode="lines", line=dict(color=RAW), name="batch loss"))
    fig.add_trace(
        go.Scatter(x=lrs, y=ema(losses, 0.9), mode="lines", line=dict(color=TRAIN, width=2), name="smoothed")
    )
    fig.add_vline(x=suggested, line=dict(color=VAL, dash="dash"))
    fig.add_annotation(
        x=np.log10(suggested),
        y=1,
        yref="paper",
        text=f"suggested {suggested:g}",
        showarrow=False,
        font=dict(color=VAL),
        xanchor="left",
        yanchor="top",
    )
    fig.update_xaxes(type="log", title_text="learning rate (log scale)")
    top = min(max(losses[: max(1, len(losses) // 2)], default=3.0) * 1.5, 10.0) if losses else 3.0
    fig.update_yaxes(title_text="cross-entropy loss", range=[0, top])
    return base_layout(fig, height=320)
