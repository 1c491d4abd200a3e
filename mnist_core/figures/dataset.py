"""The Data and Models pages: class counts, pixel histograms, a model's layer diagram."""

from __future__ import annotations

import plotly.graph_objects as go
import torch

from .style import TRAIN, VAL, base_layout


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
    return base_layout(fig, height=320, barmode="group")


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
    return base_layout(fig, height=300, bargap=0)


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
