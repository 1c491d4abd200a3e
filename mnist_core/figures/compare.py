"""Runs side by side: epochs, batch losses and train-validation gaps of several runs."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..learn.metrics import gap
from .style import PALETTE, base_layout, ema
from .text import runs_finding


def runs_epoch_figure(series: dict[str, list[dict]]) -> go.Figure:
    """Several runs overlaid: loss and accuracy per epoch; solid = train, dashed = validation."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Loss per epoch", "Accuracy per epoch"), horizontal_spacing=0.1
    )
    for n, (label, epochs) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        x = [e["epoch"] for e in epochs]
        for col, key in ((1, "loss"), (2, "acc")):
            for split, dash in (("train", None), ("val", "dash")):
                y = [e.get(f"{split}_{key}") for e in epochs]
                if all(v is None for v in y):
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=y,
                        mode="lines+markers",
                        line=dict(color=color, dash=dash),
                        name=f"{label} {'train' if split == 'train' else 'val'}",
                        legendgroup=label,
                        showlegend=col == 1,
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(title_text="epoch", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    fig.update_yaxes(title_text="cross-entropy loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".1%", row=1, col=2)
    return base_layout(fig, height=380, meta=dict(finding=runs_finding(series)))  # each run's best epoch


def runs_batch_figure(
    series: dict[str, tuple[list[int], list[float], int]], smoothing: float = 0.8
) -> go.Figure:
    """Several runs' smoothed batch losses against epochs (steps / batches per epoch)."""
    fig = go.Figure()
    for n, (label, (steps, losses, per_epoch)) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=[s / max(per_epoch, 1) for s in steps],
                y=ema(losses, smoothing),
                mode="lines",
                name=label,
                line=dict(color=PALETTE[n % len(PALETTE)], width=2),
            )
        )
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(title_text="cross-entropy loss (smoothed)", rangemode="tozero")
    return base_layout(fig, height=340)


def gap_figure(series: dict[str, list[dict]]) -> go.Figure:
    """Train minus validation accuracy per epoch: above zero and rising means overfitting."""
    fig = go.Figure()
    for n, (label, epochs) in enumerate(series.items()):
        pts = [(e["epoch"], gap(e)) for e in epochs if gap(e) is not None]
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in pts],
                y=[p[1] for p in pts],
                mode="lines+markers",
                name=label,
                line=dict(color=PALETTE[n % len(PALETTE)]),
            )
        )
    fig.add_hline(y=0, line=dict(color="#94a3b8", dash="dot"))
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="train - validation accuracy", tickformat=".1%")
    return base_layout(fig, height=300, title=dict(text="Overfitting: the generalisation gap", x=0))
