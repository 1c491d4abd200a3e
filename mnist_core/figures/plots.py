"""Every Plotly figure of the dashboard, with one colour scheme: train blue, validation orange."""

from __future__ import annotations

from html import escape

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..learn.metrics import gap

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
        why = (
            "In the first epoch that is mostly the network learning during it: train accuracy "
            "averages every batch since the first, validation is measured once, at the epoch's end."
            if e.get("epoch") == 1
            else "That is normal with dropout or augmentation, which make training harder than evaluation."
        )
        return "info", f"Validation accuracy is {-g:.1%} above train accuracy. {why}{trend}"
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


def probability_bars_html(probs, title: str = "", k: int = 10) -> str:
    """probability_bars as plain HTML (for st.markdown with unsafe_allow_html): the same top-k bars,
    colours and labels, the exact value on hover, and no chart library for the browser to load and
    lay out (the Draw page redraws it on every stroke). Each bar is a `.prob-bar` with `data-digit`
    and `data-p`."""
    probs = [float(p) for p in probs]
    order = sorted(range(len(probs)), key=lambda i: -probs[i])[:k]
    head = f'<div style="font-weight:600;margin:0 0 4px">{escape(title)}</div>' if title else ""
    rows = []
    for rank, d in enumerate(order):
        p = min(max(probs[d], 0.0), 1.0)
        color = TRAIN if rank == 0 else "#cbd5e1"
        rows.append(
            f'<div class="prob-bar" data-digit="{d}" data-p="{p:.6f}" title="digit {d}: {p:.2%}" '
            'style="display:flex;align-items:center;gap:8px;height:22px">'
            f'<span style="width:1em;text-align:right;color:#64748b">{d}</span>'
            '<span style="flex:1;display:flex;align-items:center;gap:6px">'
            f'<span style="width:{p * 85:.2f}%;min-width:1px;height:15px;background:{color};'
            'border-radius:2px"></span>'
            f'<span style="font-size:12px;color:#475569">{p:.1%}</span></span></div>'
        )
    family = FONT["family"]
    return f'<div class="prob-bars" style="font-family:{family};font-size:13px">{head}{"".join(rows)}</div>'


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


def confusion_cells(cm, percent: bool = False, diff: bool = False) -> dict:
    """The confusion matrix as a table of cells for the page to draw (no chart library; each cell
    clickable): per cell, rows true and columns predicted, its text, background and text colour and
    a hover line. Counts and row % on Blues up to the largest mistake (the diagonal saturates),
    a difference of two epochs on RdBu around 0."""
    from .pictures import colorize

    n = len(cm)
    rows = np.array([[float(v) for v in row] for row in cm], dtype=np.float64).reshape(n, n)
    if percent and not diff:
        rows = rows / np.maximum(rows.sum(1, keepdims=True), 1) * 100
    text = [
        [(f"{v:+.0f}" if diff else f"{v:.1f}%" if percent else f"{v:.0f}") if v else "" for v in row]
        for row in rows.tolist()
    ]
    if diff:
        limit = max(1.0, float(np.abs(rows).max()) if n else 1.0)
        rgb = colorize(rows, "RdBu", -limit, limit)
    else:
        off = rows * (1 - np.eye(n))
        rgb = colorize(rows, "Blues", 0.0, max(1.0, float(off.max()) if n else 1.0))
    light = (rgb @ np.array([0.299, 0.587, 0.114])) > 0.55  # pale cells get dark text
    hexes = [
        [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in row] for row in np.round(rgb * 255).astype(int).tolist()
    ]
    return dict(
        text=text,
        bg=hexes,
        fg=[["#1e293b" if lit else "#ffffff" for lit in row] for row in light.tolist()],
        hover=[
            [f"true {i}, predicted {j}: {text[i][j] or '0'} (click to see them)" for j in range(n)]
            for i in range(n)
        ],
    )


def per_class_svg(per_class: list[dict], width: int = 640, height: int = 300) -> str:
    """Precision, recall and F1 per digit as grouped bars, an inline SVG (for st.markdown with
    unsafe_allow_html; st.html drops SVG): the colours and zoomed score axis of the other charts,
    each bar's value on hover."""
    keys = (("precision", TRAIN), ("recall", VAL), ("f1", "#16a34a"))
    low = min((min(r[k] for k, _ in keys) for r in per_class), default=0.0)
    y0 = max(0.0, np.floor((low - 0.02) * 100) / 100)
    left, right, top, bottom = 56, 10, 34, 36
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(v: float) -> float:
        return top + plot_h * (1 - (min(max(v, y0), 1.0) - y0) / ((1.0 - y0) or 1.0))

    family = escape(str(FONT["family"]))
    out = [
        f'<svg class="per-class" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="precision, recall and F1 per digit" style="font-family:{family};font-size:12px">'
    ]
    for t in np.linspace(y0, 1.0, 5):
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="#64748b">{t:.1%}</text>'
        )
    group = plot_w / max(1, len(per_class))
    bar = group * 0.8 / len(keys)
    for g, row in enumerate(per_class):
        x0 = left + g * group + group * 0.1
        for k, (key, color) in enumerate(keys):
            v = float(row[key])
            out.append(
                f'<rect x="{x0 + k * bar:.1f}" y="{y(v):.1f}" width="{bar - 1:.1f}" '
                f'height="{top + plot_h - y(v):.1f}" fill="{color}"><title>digit {row["digit"]}: '
                f"{key} {v:.2%}</title></rect>"
            )
        out.append(
            f'<text x="{x0 + group * 0.4:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
            f'fill="#334155">{row["digit"]}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" fill="#64748b">digit</text>'
    )
    for k, (key, color) in enumerate(keys):
        lx = width - right - (len(keys) - k) * 90
        out.append(
            f'<rect x="{lx}" y="8" width="12" height="12" fill="{color}"/>'
            f'<text x="{lx + 16}" y="18" fill="#334155">{key}</text>'
        )
    out.append("</svg>")
    return "".join(out)


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


# ---------------- inside the network ----------------
def _tile_hover(c: int, h: int, w: int, cols: int) -> np.ndarray:
    """Channel number of every cell of a tiled grid (NaN-padded like pictures.tile), for hover text."""
    from .pictures import tile

    return tile(np.broadcast_to(np.arange(c, dtype=np.float32)[:, None, None], (c, h, w)), cols)


def _image_axes(fig: go.Figure, height: int, title: str = "") -> go.Figure:
    fig.update_xaxes(visible=False, scaleanchor="y", constrain="domain")
    fig.update_yaxes(visible=False, constrain="domain", autorange="reversed")
    fig.update_layout(
        height=height,
        margin=dict(l=0, r=0, t=28 if title else 0, b=0),
        font=FONT,
        template="plotly_white",
        title=dict(text=title, x=0, font=dict(size=13)),
    )
    return fig


def feature_grid_figure(
    maps: np.ndarray, title: str, cols: int | None = None, height: int | None = None, signed: bool = False
) -> go.Figure:
    """Every channel of one layer as a grid of small images, with one colour scale for the whole layer."""
    from .pictures import tile

    c, h, w = maps.shape
    cols = cols or min(c, 16)
    grid = tile(maps, cols)
    channel = _tile_hover(c, h, w, cols)
    limit = float(np.nanmax(np.abs(grid))) or 1.0
    scale = dict(colorscale="RdBu_r", zmin=-limit, zmax=limit) if signed else dict(colorscale="Viridis")
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            customdata=channel,
            **scale,
            colorbar=dict(thickness=8, len=0.9),
            hovertemplate="channel %{customdata:.0f}: %{z:.3g}<extra></extra>",
        )
    )
    auto = int(40 + 600 * grid.shape[0] / grid.shape[1])  # a chart about 600 px wide, squares kept square
    return _image_axes(fig, height or max(90, min(600, auto)), title)


def heat_strip_figure(values: np.ndarray, title: str, width: int = 128) -> go.Figure:
    """A vector of units as a heat strip (wrapped into rows of `width` when it is long)."""
    v = np.asarray(values, dtype=np.float32).ravel()
    rows = (len(v) + width - 1) // width
    flat = np.full(rows * min(width, len(v)), np.nan, dtype=np.float32)
    flat[: len(v)] = v
    z = flat.reshape(rows, -1)
    unit = np.arange(z.size, dtype=np.float32).reshape(z.shape)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=unit,
            colorscale="Viridis",
            colorbar=dict(thickness=8),
            hovertemplate="unit %{customdata:.0f}: %{z:.3g}<extra></extra>",
        )
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(
        height=50 + min(rows, 25) * 10,
        margin=dict(l=0, r=0, t=28, b=0),
        font=FONT,
        template="plotly_white",
        title=dict(text=title, x=0, font=dict(size=13)),
    )
    return fig


def single_map_figure(fmap: np.ndarray, title: str, signed: bool = False, height: int = 300) -> go.Figure:
    """One feature map (or one filter) enlarged, with its values on hover."""
    limit = float(np.abs(fmap).max()) or 1.0
    scale = dict(colorscale="RdBu_r", zmin=-limit, zmax=limit) if signed else dict(colorscale="Viridis")
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(fmap, dtype=np.float32),
            **scale,
            colorbar=dict(thickness=8),
            hovertemplate="row %{y}, column %{x}: %{z:.3g}<extra></extra>",
        )
    )
    return _image_axes(fig, height, title)


def weight_images_figure(
    images: np.ndarray, title: str, labels: list[str] | None = None, cols: int = 10
) -> go.Figure:
    """First-layer weights as 28x28 images (a perceptron's digit templates): red positive, blue negative."""
    fig = feature_grid_figure(
        images,
        title,
        cols=min(cols, len(images)),
        signed=True,
        height=40 + 90 * ((len(images) + cols - 1) // cols),
    )
    for i, label in enumerate(labels or []):
        r, c = divmod(i, cols)
        fig.add_annotation(x=c * 29 + 13.5, y=r * 29 - 1.5, text=label, showarrow=False, font=dict(size=11))
    return fig


def filters_over_time_figure(
    frames: list[np.ndarray], epochs: list[int], active: int, cols: int, title: str
) -> go.Figure:
    """First-layer filters (or weight images) at every epoch: a slider and a play button animate them.

    One colour scale for all epochs (red positive, blue negative), so growth is visible."""
    from .pictures import tile

    grids = [tile(f, cols) for f in frames]
    limit = max(float(np.nanmax(np.abs(g))) for g in grids) or 1.0

    def heat(g):
        return go.Heatmap(
            z=g,
            colorscale="RdBu_r",
            zmin=-limit,
            zmax=limit,
            colorbar=dict(thickness=8),
            hovertemplate="%{z:.3g}<extra></extra>",
        )

    fig = go.Figure(
        heat(grids[active]), frames=[go.Frame(data=[heat(g)], name=str(e)) for g, e in zip(grids, epochs)]
    )
    steps = [
        dict(
            method="animate",
            label=str(e),
            args=[
                [str(e)],
                dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0)),
            ],
        )
        for e in epochs
    ]
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                showactive=False,
                x=0,
                y=-0.02,
                xanchor="left",
                yanchor="top",
                buttons=[
                    dict(
                        label="▶ Play",
                        method="animate",
                        args=[
                            None,
                            dict(
                                frame=dict(duration=700, redraw=True),
                                fromcurrent=True,
                                transition=dict(duration=0),
                            ),
                        ],
                    ),
                    dict(
                        label="❚❚ Pause",
                        method="animate",
                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))],
                    ),
                ],
            )
        ],
        sliders=[
            dict(
                active=active,
                steps=steps,
                x=0.18,
                len=0.82,
                y=-0.02,
                yanchor="top",
                currentvalue=dict(prefix="epoch ", font=dict(size=12)),
                pad=dict(t=10),
            )
        ],
    )
    rows = (len(frames[0]) + cols - 1) // cols
    side = frames[0].shape[1]
    fig = _image_axes(fig, 120 + min(440, rows * max(40, 6 * side)), title)
    fig.update_layout(margin=dict(l=0, r=0, t=28, b=70))
    return fig


def weight_movement_figure(movement: dict[str, list[float]], epochs: list[int]) -> go.Figure:
    """How far each layer's weights moved per epoch, relative to their size the epoch before."""
    fig = go.Figure(
        [
            go.Scatter(x=epochs[1:], y=values, mode="lines+markers", name=name, hovertemplate="%{y:.2%}")
            for name, values in movement.items()
        ]
    )
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 15 else None)
    fig.update_yaxes(title_text="||W_e − W_e−1|| / ||W_e−1||", tickformat=".1%", rangemode="tozero")
    return _layout(fig, height=320, title=dict(text="How far each layer's weights moved", x=0))


def embedding_figure(
    xy: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    indices: np.ndarray,
    title: str,
    ranges: tuple | None = None,
    height: int = 480,
) -> go.Figure:
    """A 2-D map of digits coloured by true digit; mistakes drawn as crosses. customdata: test index."""
    from .pictures import DIGIT_COLORS

    fig = go.Figure()
    hover = "test #%{customdata[0]}: digit %{customdata[1]}, predicted %{customdata[2]}<extra></extra>"
    for wrong in (False, True):  # mistakes on top, as crosses; the legend shows the digits' dots
        for d in range(10):
            sel = np.flatnonzero((labels == d) & ((preds != labels) == wrong))
            if not len(sel):
                continue
            fig.add_trace(
                go.Scatter(
                    x=xy[sel, 0],
                    y=xy[sel, 1],
                    mode="markers",
                    name=str(d),
                    legendgroup=str(d),
                    showlegend=not wrong,
                    # plain lists, not base64 arrays: a selection event hands them back as they are
                    customdata=np.stack([indices[sel], labels[sel], preds[sel]], 1).tolist(),
                    marker=dict(
                        color=DIGIT_COLORS[d],
                        size=9 if wrong else 5,
                        symbol="x" if wrong else "circle",
                        line=dict(width=0),
                    ),
                    hovertemplate=hover,
                )
            )
    fig.update_xaxes(showticklabels=False, title_text="", range=ranges[0] if ranges else None, zeroline=False)
    fig.update_yaxes(showticklabels=False, title_text="", range=ranges[1] if ranges else None, zeroline=False)
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        font=FONT,
        template="plotly_white",
        title=dict(text=title, x=0, font=dict(size=13)),
        hovermode="closest",
        legend=dict(title="digit", itemsizing="constant"),
        clickmode="event+select",
    )
    return fig


def separation_figure(
    epochs: list[int], separation: list[float | None], val_acc: list[float | None]
) -> go.Figure:
    """5-NN accuracy in the 2-D map per epoch, against validation accuracy."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=epochs,
            y=separation,
            mode="lines+markers",
            name="separation (5-NN in the map)",
            line=dict(color="#7c3aed", width=2),
            hovertemplate="%{y:.2%}",
        )
    )
    if any(v is not None for v in val_acc):
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=val_acc,
                mode="lines+markers",
                name="validation accuracy",
                line=dict(color=VAL, width=2),
                hovertemplate="%{y:.2%}",
            )
        )
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 15 else None)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%")
    return _layout(fig, height=300)


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
    return _layout(fig, height=300, showlegend=False)


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
    return _layout(fig, height=320)


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
