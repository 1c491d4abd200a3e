"""Every Plotly figure of the dashboard, with one colour scheme: train blue, validation orange."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .metrics import gap

TRAIN = "#2563eb"
VAL = "#ea580c"
RAW = "rgba(37, 99, 235, 0.25)"
FONT = dict(family="Inter, Segoe UI, sans-serif", size=13)


def _layout(fig: go.Figure, height: int = 320, **kw) -> go.Figure:
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


def batch_loss_figure(
    steps: list[int],
    losses: list[float],
    smoothing: float = 0.6,
    batches_per_epoch: int | None = None,
    max_points: int = 1000,
) -> go.Figure:
    """Loss of every training batch, raw (faint) and smoothed, x in epochs when known.

    Long runs are thinned to max_points for display (a chart is about that many pixels wide);
    the smoothing is computed on every batch first, and the newest batch is always shown."""
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
    fig.update_yaxes(title_text="cross-entropy loss", rangemode="tozero")
    return _layout(fig, title=dict(text="Training loss per batch", x=0))


def epoch_figure(epochs: list[dict]) -> go.Figure:
    """Train vs validation loss and accuracy per epoch, side by side."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Loss per epoch", "Accuracy per epoch"), horizontal_spacing=0.1
    )
    x = [e["epoch"] for e in epochs]
    for col, (key, fmt) in enumerate((("loss", ".4f"), ("acc", ".2%")), 1):
        for split, color, dash in (("train", TRAIN, None), ("val", VAL, None)):
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
    return _layout(fig)


def image_grid(
    images: torch.Tensor, titles: list[str] | None = None, cols: int = 8, height_per_row: int = 90
) -> go.Figure:
    """A grid of 28x28 grayscale digits (any range; each image scaled to its own min/max)."""
    n = len(images)
    rows = max(1, (n + cols - 1) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.01,
        vertical_spacing=0.06 if titles else 0.01,
    )
    for i, img in enumerate(images):
        img = img.reshape(28, 28).float()
        img = (img - img.min()) / (img.max() - img.min() + 1e-8)
        fig.add_trace(
            go.Heatmap(z=img.flip(0).tolist(), colorscale="gray", showscale=False, hoverinfo="skip"),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    for k in range(1, rows * cols + 1):  # each picture square against its own y axis
        suffix = "" if k == 1 else str(k)
        fig.layout[f"xaxis{suffix}"].update(visible=False, scaleanchor=f"y{suffix}", constrain="domain")
        fig.layout[f"yaxis{suffix}"].update(visible=False, constrain="domain")
    fig.update_annotations(font_size=10)
    fig.update_layout(
        height=rows * height_per_row + 20,
        margin=dict(l=0, r=0, t=20 if titles else 0, b=0),
        font=FONT,
        template="plotly_white",
    )
    return fig


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
        return "info", (
            f"Validation accuracy is {-g:.1%} above train accuracy. That is normal with dropout "
            f"or augmentation, which make training harder than evaluation.{trend}"
        )
    return "success", f"Train and validation accuracy are within {abs(g):.1%}: no sign of overfitting.{trend}"


def probability_bars(probs, title: str = "", k: int = 10) -> go.Figure:
    """Top-k class probabilities as horizontal bars, the winner highlighted."""
    probs = [float(p) for p in probs]
    order = sorted(range(len(probs)), key=lambda i: -probs[i])[:k][::-1]
    best = order[-1]
    fig = go.Figure(
        go.Bar(
            x=[probs[i] for i in order],
            y=[str(i) for i in order],
            orientation="h",
            marker_color=[TRAIN if i == best else "#cbd5e1" for i in order],
            text=[f"{probs[i]:.1%}" for i in order],
            textposition="outside",
            hovertemplate="digit %{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_xaxes(range=[0, 1.15], tickformat=".0%", title_text="probability")
    fig.update_yaxes(title_text="digit", type="category")
    fig.update_layout(
        height=60 + 26 * len(order),
        margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        font=FONT,
        template="plotly_white",
        title=dict(text=title, x=0),
        showlegend=False,
    )
    return fig


def saliency_figure(image28, attribution, title: str) -> go.Figure:
    """The input in gray with the attribution on top (red raises the score, blue lowers it)."""
    limit = float(abs(attribution).max()) or 1.0
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=image28[::-1].tolist(), colorscale="gray", showscale=False, hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=attribution[::-1].tolist(),
            colorscale="RdBu_r",
            zmin=-limit,
            zmax=limit,
            opacity=0.6,
            colorbar=dict(thickness=10, len=0.8, tickformat=".2g"),
            hovertemplate="attribution %{z:.3g}<extra></extra>",
        )
    )
    fig.update_xaxes(visible=False, scaleanchor="y", constrain="domain")
    fig.update_yaxes(visible=False, constrain="domain")
    fig.update_layout(
        height=260,
        margin=dict(l=0, r=0, t=30, b=0),
        font=FONT,
        template="plotly_white",
        title=dict(text=title, x=0, font=dict(size=13)),
    )
    return fig


def confusion_figure(cm, percent: bool = False, diff: bool = False) -> go.Figure:
    """Confusion matrix: a heatmap to look at, plus invisible square markers that make every cell
    clickable in Streamlit (heatmap clicks return no selection there); customdata = (true, pred)."""
    n = len(cm)
    rows = [[float(v) for v in row] for row in cm]
    if percent and not diff:
        rows = [[v / max(sum(row), 1) * 100 for v in row] for row in rows]
    text = [
        [(f"{v:+.0f}" if diff else f"{v:.1f}%" if percent else f"{v:.0f}") if v else "" for v in row]
        for row in rows
    ]
    if diff:
        limit = max(1.0, max(abs(v) for row in rows for v in row))
        heat = dict(colorscale="RdBu", zmin=-limit, zmax=limit, zmid=0)
    else:
        off = [[0.0 if i == j else v for j, v in enumerate(row)] for i, row in enumerate(rows)]
        heat = dict(colorscale="Blues", zmin=0, zmax=max(1.0, max(v for row in off for v in row)))
    fig = go.Figure(
        go.Heatmap(
            z=rows,
            x=list(range(n)),
            y=list(range(n)),
            text=text,
            texttemplate="%{text}",
            showscale=False,
            hoverinfo="skip",
            **heat,
        )
    )
    xs, ys, data = [], [], []
    for i in range(n):
        for j in range(n):
            xs.append(j)
            ys.append(i)
            data.append([i, j, text[i][j] or "0"])
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            customdata=data,
            marker=dict(symbol="square", size=34, color="rgba(0,0,0,0)"),
            hovertemplate="true %{customdata[0]}, predicted %{customdata[1]}: "
            "%{customdata[2]}<extra>click to see them</extra>",
        )
    )
    fig.update_xaxes(title_text="predicted digit", dtick=1, side="top", range=[-0.5, n - 0.5])
    fig.update_yaxes(title_text="true digit", dtick=1, range=[n - 0.5, -0.5])
    fig.update_layout(
        height=460,
        margin=dict(l=10, r=10, t=60, b=10),
        font=FONT,
        template="plotly_white",
        showlegend=False,
        clickmode="event+select",
        dragmode=False,
    )
    return fig


def per_class_figure(per_class: list[dict]) -> go.Figure:
    """Precision, recall and F1 per digit as grouped bars."""
    fig = go.Figure()
    digits = [str(r["digit"]) for r in per_class]
    for key, color in (("precision", TRAIN), ("recall", VAL), ("f1", "#16a34a")):
        fig.add_trace(
            go.Bar(
                x=digits,
                y=[r[key] for r in per_class],
                name=key,
                marker_color=color,
                hovertemplate=f"{key} %{{y:.2%}}<extra></extra>",
            )
        )
    low = min(min(r[k] for k in ("precision", "recall", "f1")) for r in per_class)
    fig.update_yaxes(range=[max(0.0, low - 0.02), 1.0], tickformat=".1%", title_text="score")
    fig.update_xaxes(title_text="digit", type="category")
    return _layout(fig, height=300, barmode="group")


def class_distribution_figure(counts: dict[str, list[int]]) -> go.Figure:
    """Images per digit for each split, grouped bars."""
    fig = go.Figure()
    colors = {"train": TRAIN, "validation": VAL, "test": "#16a34a"}
    for split, values in counts.items():
        fig.add_trace(
            go.Bar(
                x=[str(d) for d in range(10)],
                y=values,
                name=split,
                marker_color=colors[split],
                hovertemplate=f"{split}: %{{y:,}} images<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="digit", type="category")
    fig.update_yaxes(title_text="images")
    return _layout(fig, height=320, barmode="group")


def pixel_histogram_figure(images) -> go.Figure:
    """Distribution of pixel intensities (0-255): mostly black background, a peak of white ink."""
    counts = torch.bincount(images.flatten().long(), minlength=256).tolist()
    fig = go.Figure(
        go.Bar(
            x=list(range(256)),
            y=counts,
            marker_color=TRAIN,
            hovertemplate="value %{x}: %{y:,} pixels<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="pixel value (0 = black, 255 = white)")
    fig.update_yaxes(title_text="pixels (log scale)", type="log")
    return _layout(fig, height=300, bargap=0)


def layer_diagram(rows: list[dict]) -> str:
    """Graphviz DOT of the layer stack, input to logits, with output shapes."""
    lines = [
        "digraph {",
        'rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#eff6ff", '
        'color="#2563eb", fontname="Helvetica", fontsize=10]; edge [color="#94a3b8"];',
        'input [label="input\\n1x28x28", fillcolor="#f1f5f9"];',
    ]
    prev = "input"
    for i, r in enumerate(rows):
        shape = "x".join(map(str, r["output_shape"]))
        lines.append(f'n{i} [label="{r["type"]}\\n{shape}"];')
        lines.append(f"{prev} -> n{i};")
        prev = f"n{i}"
    lines.append("}")
    return "\n".join(lines)


PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"]


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
    return _layout(fig, height=380)


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
    return _layout(fig, height=340)


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
    return _layout(fig, height=300, title=dict(text="Overfitting: the generalisation gap", x=0))
