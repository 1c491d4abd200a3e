"""The Inside page's layer-by-layer tab: every stage of one digit's forward pass, one channel up
close with its weights and the test digits that excite it, and an MLP's first-layer weight images.

Figures are kept in the analysis wing's memory (bounded in bytes with everything else it keeps),
once per checkpoint version and digit."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from mnist_core.analysis import inside
from mnist_core.analysis.memory import memo
from mnist_core.figures.evaluation import image_grid, probability_bars
from mnist_core.figures.inside import (
    feature_grid_figure,
    heat_strip_figure,
    single_map_figure,
    weight_images_figure,
)
from mnist_core.words import count

from .charts import show_chart
from .shell import DRAW

NO_CHART_BAR = {"displayModeBar": False}
MAX_UNITS = 64  # weight images of an MLP's first layer shown at once


def digit_key(path, image) -> tuple:
    """What names one digit seen through one checkpoint version in a cache key."""
    return (inside.file_key(path), hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest())


def open_in_draw(img, run_id: str) -> None:
    st.session_state.draw_digit = np.asarray(img, dtype=np.float32)
    st.session_state.draw_digit_from = "Inside"
    st.session_state.selected_run = run_id or None
    st.switch_page(DRAW)


def _stage_figures(stages: list) -> list:
    """The figure (or, for a layer the viewer does not know, the note) of every stage."""
    out: list = []
    for s in stages[1:]:
        if s.kind == "maps":
            title = f"{s.title} · {s.shape[0]} channels of {s.shape[1]}x{s.shape[2]}"
            out.append(feature_grid_figure(s.value, title))
        elif s.kind == "vector":
            what = "pixels in a row" if s.title.startswith("flatten") else "units"
            out.append(heat_strip_figure(s.value, f"{s.title} · {s.shape[0]:,} {what}"))
        elif s.kind == "output":
            out.append(probability_bars(s.value, f"{s.title}: the 10 output probabilities"))
        else:
            out.append(
                f"**{s.title}**: output {s.shape_text}. This viewer does not know how to draw a "
                f"{s.layers[0]} layer, so only its shape is shown."
            )
    return out


def show_stages(key: tuple, stages: list, prefix: str) -> None:
    """Every stage of the forward pass in order, each drawn as its kind of activation allows."""
    for i, fig in enumerate(memo(("inside-stages", key), lambda: _stage_figures(stages)), 1):
        if isinstance(fig, str):
            st.caption(fig)
        else:
            show_chart(fig, width="stretch", config=NO_CHART_BAR, key=f"{prefix}_{i}")


def _chart(fig, key: str) -> None:
    show_chart(fig, width="stretch", config=NO_CHART_BAR, key=key)


def _unit_weights(model, stage, channel: int) -> None:
    """The weights that made one channel or unit: a conv filter, a Linear unit's incoming weights."""
    weights = inside.filter_of(model, stage, channel)
    if weights is not None:
        title = (
            f"the filter: {count(weights.shape[0], 'input channel')} of {weights.shape[1]}x{weights.shape[2]}"
        )
        _chart(
            feature_grid_figure(weights, title, signed=True, cols=min(8, weights.shape[0])), "focus_weights"
        )
        return
    first = dict(model.named_modules())[stage.first]
    if getattr(first, "weight", None) is None or first.weight.dim() != 2:
        st.caption(
            "A pooling stage has no weights of its own: each map is the pooled map of the conv stage "
            "before it."
        )
        return
    w = first.weight[channel].detach().float().numpy()
    side = int(np.sqrt(len(w)))
    if side * side == len(w):
        _chart(single_map_figure(w.reshape(side, side), "its incoming weights", signed=True), "focus_weights")
    else:
        _chart(heat_strip_figure(w, f"its {len(w):,} incoming weights"), "focus_weights")


def channel_focus(model, path, stages: list, x_test) -> None:
    """One channel (or unit) of a stage: enlarged, its weights, and the 9 test digits it likes most."""
    focusable = [i for i, s in enumerate(stages) if s.name in inside.example_stages(model)]
    if not focusable:
        return
    f1, f2 = st.columns([3, 1])
    chosen = f1.selectbox("Layer", focusable, key="inside_layer", format_func=lambda i: stages[i].title)
    stage = stages[chosen]
    label = "Channel" if stage.kind == "maps" else "Unit"
    last = stage.shape[0] - 1
    channel = min(int(f2.number_input(label, 0, last, 0, key="inside_channel")), last)
    big, weights_col, examples_col = st.columns([2, 2, 3])
    with big:
        if stage.kind == "maps":
            fmap = stage.value[channel]
            _chart(single_map_figure(fmap, f"channel {channel} of {stage.title.split(':')[0]}"), "focus_map")
            s = inside.map_stats(fmap)
            st.caption(
                f"min {s['min']:.3g} · max {s['max']:.3g} (row {s['peak_row']}, column {s['peak_col']}) · "
                f"mean {s['mean']:.3g} · std {s['std']:.3g} · {s['active']:.0%} of positions above 0"
            )
        else:
            value = f"{float(stage.value[channel]):.3g}"
            st.metric(f"Unit {channel}", value, help="its activation for this input")
    with weights_col:
        _unit_weights(model, stage, channel)
    with examples_col:
        with st.spinner("Finding the test digits that excite every channel (once per checkpoint)..."):
            examples = inside.dataset_examples(path, model, x_test)
        idx, scores = examples[stage.name]
        titles = [f"#{i}: {v:.2g}" for i, v in zip(idx[channel], scores[channel])]
        key = ("inside-examples-figure", inside.file_key(path), stage.name, channel)
        fig = memo(key, lambda: image_grid(x_test[idx[channel]], titles, cols=3, height_per_row=120))
        _chart(fig, "focus_examples")
        st.caption("The 9 test digits that excite this channel most (its peak response over positions).")


def first_layer_images(model) -> None:
    """An MLP's first-layer weights as 28x28 images (a perceptron's ten digit templates)."""
    kind, first = inside.first_weight(model)
    if kind != "linear":
        return
    st.subheader("First layer weights as images")
    is_templates = len(first) == 10
    labels = [str(d) for d in range(10)] if is_templates else None
    _chart(weight_images_figure(first[:MAX_UNITS], "", labels), "first_weights")
    st.caption(
        "Red pixels raise the unit's input, blue ones lower it. "
        + (
            "These ten images are the perceptron's templates: its score for a digit is how well the "
            "input matches that digit's template."
            if is_templates
            else f"The first {min(MAX_UNITS, len(first))} of {len(first)} hidden units."
        )
    )


def layers_tab(model, path, image, source: str, caption: str, stages: list, x_test, run_id: str) -> None:
    """The layer-by-layer tab: the input and prediction, every stage, one channel, the first weights."""
    pred, conf = inside.prediction(stages)
    left, right = st.columns([1, 3], gap="large")
    with left:
        st.image(image, caption=f"Input: {source}", alt=f"the input digit, {source}", width=180, clamp=True)
        st.metric("Prediction", str(pred), help=f"{conf:.1%} confident")
        st.caption(f"{conf:.1%} confident · {caption}")
        if st.button("Open in Draw", icon=":material/draw:", key="inside_draw"):
            open_in_draw(image, run_id)
    with right:
        show_stages(digit_key(path, image), stages, "stage")
    st.subheader("One channel up close")
    channel_focus(model, path, stages, x_test)
    first_layer_images(model)
