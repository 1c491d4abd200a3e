"""Evaluate and Draw: digit grids, probability bars, saliency maps, the confusion matrix, per-class bars."""

from __future__ import annotations

from html import escape

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .style import FONT, TRAIN, VAL


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
    # Black or white text, whichever contrasts more with the cell (WCAG 2.1 relative luminance):
    # one of the two always reaches at least 4.58:1, so every count reads at AA.
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
    light = (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05)
    hexes = [
        [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in row] for row in np.round(rgb * 255).astype(int).tolist()
    ]
    return dict(
        text=text,
        bg=hexes,
        fg=[["#000000" if lit else "#ffffff" for lit in row] for row in light.tolist()],
        hover=[
            [
                f"true {i}, predicted {j}: {text[i][j] or '0'} (click or press Enter to see them)"
                for j in range(n)
            ]
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
