"""Inside the network: feature maps, filters and their change over epochs, embedding maps."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import FONT, VAL, base_layout


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


def weight_movement_figure(
    movement: dict[str, list[float]], epochs: list[int], sampled: bool = False
) -> go.Figure:
    """How far each layer's weights moved per epoch, relative to their size the epoch before; with
    `sampled`, from one shown epoch to the next (a long run's epochs are a sample)."""
    fig = go.Figure(
        [
            go.Scatter(x=epochs[1:], y=values, mode="lines+markers", name=name, hovertemplate="%{y:.2%}")
            for name, values in movement.items()
        ]
    )
    before = "W_before" if sampled else "W_e−1"
    title = "How far each layer's weights moved" + (" since the shown epoch before" if sampled else "")
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 15 and not sampled else None)
    fig.update_yaxes(title_text=f"||W_e − {before}|| / ||{before}||", tickformat=".1%", rangemode="tozero")
    return base_layout(fig, height=320, title=dict(text=title, x=0))


def embedding_figure(
    xy: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    indices: np.ndarray,
    title: str,
    ranges: tuple | None = None,
    height: int = 480,
) -> go.Figure:
    """A 2-D map of digits coloured by true digit, each digit's name at the middle of its points;
    mistakes drawn as crosses. customdata: test index."""
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
    # each digit's name at the middle of its points: the classes read without telling colours apart
    centres = [(d, np.median(xy[labels == d], 0)) for d in range(10) if (labels == d).any()]
    if centres:
        fig.add_trace(
            go.Scatter(
                x=[c[0] for _, c in centres],
                y=[c[1] for _, c in centres],
                mode="text",
                text=[f"<b>{d}</b>" for d, _ in centres],
                textfont=dict(size=16, color="#111827"),
                name="digit names",
                showlegend=False,
                hoverinfo="skip",
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
    return base_layout(fig, height=300)
