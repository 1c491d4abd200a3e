"""A run's figures: batch losses, epochs, the train-validation gap in words, the LR schedule."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..learn.metrics import gap
from .style import FONT, RAW, TRAIN, VAL, base_layout, ema, thin
from .text import epoch_finding


def batch_loss_figure(
    steps: list[int],
    losses: list[float],
    smoothing: float = 0.6,
    batches_per_epoch: int | None = None,
    max_points: int = 1000,
    x_max: float | None = None,
) -> go.Figure:
    """Loss of every training batch, raw (faint) and smoothed, x in epochs when known.

    Long runs are thinned to max_points for display (a chart is about that many pixels wide);
    the smoothing is computed on every batch first, and the newest batch is always shown.
    x_max, a run's planned length on the x axis, fixes that axis while the run trains: the curve
    grows from the left across the whole run, which shows at a glance how far along it is, where an
    automatic axis rescaled at every redraw (and a redraw whose axis is unchanged leaves its ticks
    as they were, a little less work for the browser beside the run)."""
    keep = thin(len(steps), max_points)
    x = np.asarray(steps, dtype=np.float64)[keep]
    if batches_per_epoch:
        x = x / batches_per_epoch
    smooth = np.asarray(ema(losses, smoothing))[keep]
    raw = np.asarray(losses, dtype=np.float64)[keep]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=raw, mode="lines", name="batch loss", line=dict(color=RAW, width=1)))
    fig.add_trace(
        go.Scatter(
            x=x, y=smooth, mode="lines", name=f"smoothed ({smoothing:.2f})", line=dict(color=TRAIN, width=2)
        )
    )
    fig.update_xaxes(title_text="epoch" if batches_per_epoch else "batch", rangemode="tozero")
    if x_max:
        fig.update_xaxes(range=[0, x_max])
    fig.update_yaxes(title_text="cross-entropy loss", rangemode="tozero")
    return base_layout(fig, title=dict(text="Training loss per batch", x=0))


def epoch_figure(epochs: list[dict]) -> go.Figure:
    """Train vs validation loss and accuracy per epoch, side by side."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Loss per epoch", "Accuracy per epoch"), horizontal_spacing=0.1
    )
    x = [e["epoch"] for e in epochs]
    for col, (key, fmt) in enumerate((("loss", ".4f"), ("acc", ".2%")), 1):
        for split, color, dash in (("train", TRAIN, None), ("val", VAL, "dash")):
            y = [e.get(f"{split}_{key}") for e in epochs]
            if all(v is None for v in y):
                continue
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    name="train" if split == "train" else "validation",
                    legendgroup=split,
                    showlegend=col == 1,
                    line=dict(color=color, width=2, dash=dash),
                    hovertemplate=f"%{{y:{fmt}}}",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="epoch", dtick=1 if len(x) <= 15 else None, row=1, col=col)
    fig.update_yaxes(title_text="cross-entropy loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".1%", row=1, col=2)
    return base_layout(fig, meta=dict(finding=epoch_finding(epochs)))  # its words: the best epoch


def gap_sentence(epochs: list[dict]) -> tuple[str, str]:
    """(level, sentence) describing the train-validation accuracy gap of the last epoch."""
    g = gap(epochs[-1]) if epochs else None
    if g is None:
        return "info", "The overfitting indicator needs a validation split and one finished epoch."
    e = epochs[-1]
    trend = ""
    if len(epochs) >= 2 and epochs[-2].get("val_loss") is not None and e["val_loss"] > epochs[-2]["val_loss"]:
        trend = " Validation loss went up this epoch while training continues: a classic sign of overfitting."
    if g > 0.02:
        return "warning", (
            f"Train accuracy is {g:.1%} above validation: the network is memorising the "
            f"training images more than it learns digits that generalise.{trend}"
        )
    if g < -0.005:
        why = (
            "In the first epoch that is mostly the network learning during it: train accuracy "
            "averages every batch since the first, validation is measured once, at the epoch's end."
            if e.get("epoch") == 1
            else "That is normal with dropout or augmentation, which make training harder than evaluation."
        )
        return "info", f"Validation accuracy is {-g:.1%} above train accuracy. {why}{trend}"
    return "success", f"Train and validation accuracy are within {abs(g):.1%}: no sign of overfitting.{trend}"


def lr_schedule_figure(epochs: list[float], lrs: list[float], schedule: str) -> go.Figure:
    """The learning rate a run will train with, batch by batch, against epochs (train.lr_schedule)."""
    fig = go.Figure(
        go.Scatter(
            x=epochs,
            y=lrs,
            mode="lines",
            line=dict(color=TRAIN, width=2),
            fill="tozeroy",
            fillcolor="rgba(37, 99, 235, 0.08)",
            hovertemplate="epoch %{x:.2f}<br>learning rate %{y:.3g}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="epoch", range=[0, max(epochs[-1], 1)])
    fig.update_yaxes(
        title_text="learning rate",
        type="log" if schedule == "range" else "linear",
        rangemode="tozero",
        exponentformat="e",
    )
    fig.update_layout(
        height=170,
        margin=dict(l=10, r=10, t=10, b=10),
        font=FONT,
        template="plotly_white",
        showlegend=False,
        hovermode="closest",
    )
    return fig
