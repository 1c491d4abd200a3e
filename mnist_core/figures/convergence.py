"""The epochs overlaid: batch loss against the batch index within the epoch, one curve per epoch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from ..analysis.convergence import per_epoch
from .style import base_layout, ema, thin

SCALE = "Viridis"  # sequential and colour-blind safe: dark purple (first epoch) to green-yellow (last)
SCALE_END = 0.85  # Viridis's last yellow is hard to see on white: the last epoch stops short of it


def epoch_colours(n: int) -> list[str]:
    """n colours, first epoch to last, in order along the sequential scale."""
    positions = [0.0] if n == 1 else list(np.linspace(0.0, SCALE_END, n))
    return sample_colorscale(SCALE, positions)


def convergence_figure(
    steps: Sequence[int],
    losses: Sequence[float],
    batches_per_epoch: int,
    epochs: int | None = None,
    smoothing: float = 0.6,
    max_points: int = 500,
) -> go.Figure:
    """Each finished epoch's batch losses (smoothed like the batch-loss chart, afresh in every epoch)
    against the batch index within the epoch, on the same axes, coloured from the first epoch to
    the last. `epochs`: the finished ones (a live run's partial epoch is left out)."""
    curves = per_epoch(steps, losses, batches_per_epoch, epochs)
    colours = epoch_colours(len(curves))
    fig = go.Figure()
    for colour, (epoch, (xs, ys)) in zip(colours, sorted(curves.items())):
        keep = thin(len(xs), max_points)
        fig.add_trace(
            go.Scatter(
                x=np.asarray(xs)[keep],
                y=np.asarray(ema(ys, smoothing))[keep],
                mode="lines",
                name=f"epoch {epoch}",
                line=dict(color=colour, width=2),
                hovertemplate="%{y:.4f}",
            )
        )
    fig.update_xaxes(title_text="batch within the epoch", rangemode="tozero")
    fig.update_yaxes(title_text=f"cross-entropy loss (smoothed {smoothing:.2f})", rangemode="tozero")
    fig = base_layout(fig, height=380, title=dict(text="Each epoch's batch losses, overlaid", x=0))
    # below the axes, left to right: a run of many epochs, or a phone, has no room beside the title
    return fig.update_layout(
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.3, yanchor="top"),
        margin=dict(l=10, r=10, t=50, b=10),
    )
