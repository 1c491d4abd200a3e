"""The Inside page's tabs over a run's epochs: the first-layer filters over time and the embedding
map per epoch, with the digit clicked in the map looked inside.

A run may have up to 1,000 epochs: both tabs show a bounded sample of them (analysis/timeline.py)
and say so; the maps of a run share one budget of digits."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mnist_core.analysis import inside, timeline
from mnist_core.analysis.memory import memo
from mnist_core.figures.inside import (
    embedding_figure,
    filters_over_time_figure,
    separation_figure,
    weight_movement_figure,
)
from mnist_core.learn.checkpoints import CheckpointError

from .charts import show_chart
from .inside_views import NO_CHART_BAR, digit_key, open_in_draw, show_stages
from .resources import load_model

UNREADABLE = "An epoch checkpoint of this run could not be read: {}. Pick another run, or retrain it."


def filters_tab(checkpoints: list) -> None:
    """The first-layer filters at the shown epochs (a slider and a play button), and how far each
    layer's weights moved from one shown epoch to the next."""
    if not checkpoints:
        st.info(
            "The time controls are hidden: this checkpoint (the shipped default model) was saved "
            "once, without a checkpoint per epoch. Train a run on the Train page, then pick it above to "
            "watch its filters grow and its embedding map sort itself out.",
            icon=":material/history_toggle_off:",
        )
        return
    try:
        with st.spinner("Reading the shown epochs' weights..."):
            history = timeline.filter_history(checkpoints)
    except (CheckpointError, OSError) as exc:
        st.error(UNREADABLE.format(exc))
        return
    epochs = history.epochs
    if history.note:
        st.caption(history.note)
    shown = st.select_slider("Epoch", epochs, value=epochs[-1], key="inside_filter_epoch")
    what = "first-layer filters" if history.kind == "conv" else "first-layer weight images"
    figure = filters_over_time_figure(
        history.frames,
        epochs,
        epochs.index(shown),
        min(16, len(history.frames[0])),
        f"The {what} at epoch {shown} (press play to animate)",
    )
    show_chart(figure, width="stretch", config=NO_CHART_BAR, key="filters_time")
    if len(epochs) < 2:
        st.caption("One saved epoch: how far the weights moved needs two.")
        return
    sampled = history.note is not None
    show_chart(
        weight_movement_figure(history.movement, epochs, sampled),
        width="stretch",
        config=NO_CHART_BAR,
        key="movement",
    )
    st.caption(
        "Large early moves that shrink later: the weights settle. Epoch 1's change is not "
        "shown, because the starting weights are not saved."
        + (" Each point is the change since the shown epoch before it." if sampled else "")
    )


def _ranges(layouts: list) -> tuple:
    both = np.concatenate(layouts)
    lo, hi = both.min(0), both.max(0)
    pad = (hi - lo) * 0.05 + 1e-6
    return ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))


def _map_figures(maps: list, at: int, name: str) -> tuple:
    """The feature map at one epoch (axes shared by every epoch) and the raw-pixel map beside it."""
    emap = maps[at]
    return (
        embedding_figure(
            emap.xy,
            emap.labels,
            emap.preds,
            emap.indices,
            f"What the network sees: its last hidden layer, {name}",
            _ranges([m.xy for m in maps]),
        ),
        embedding_figure(
            emap.raw_xy, emap.labels, emap.preds, emap.indices, f"The same digits as raw pixels, {name}"
        ),
    )


def _compute_maps(plan: timeline.MapPlan, x_test, y_test) -> list:
    """The plan's maps, with a progress box while they are computed (none when they are in memory)."""
    if timeline.maps_ready(plan):
        return timeline.epoch_maps(plan, x_test, y_test)
    name = "t-SNE" if plan.method == "tsne" else "PCA"
    with st.status(
        f"Computing the {name} map of {plan.digits:,} digits...", expanded=plan.method == "tsne"
    ) as status:
        bar = st.progress(0.0)
        maps = timeline.epoch_maps(
            plan, x_test, y_test, progress=lambda text, f: bar.progress(min(1.0, f), text=text)
        )
        status.update(label=f"{name} map of {plan.digits:,} digits ready", state="complete", expanded=False)
    return maps


def clicked_digit(clicked: int, map_path, x_test, y_test, run_id: str) -> None:
    """The digit clicked in the map, looked inside with the model of the map's epoch."""
    model = load_model(map_path)
    if model is None:
        return
    stages = inside.activations(model, x_test[clicked : clicked + 1])
    pred, conf = inside.prediction(stages)
    st.subheader(f"Test digit #{clicked}: a {int(y_test[clicked])}, predicted {pred} ({conf:.0%})")
    left, right = st.columns([1, 3], gap="large")
    with left:
        image = inside.to_image(x_test[clicked])
        alt = f"test digit {clicked:,}: a {int(y_test[clicked])}, read as {pred}"
        st.image(image, width=160, clamp=True, alt=alt)
        if st.button("Open in Draw", icon=":material/draw:", key="clicked_draw"):
            open_in_draw(image, run_id)
    with right:
        show_stages(digit_key(map_path, image), stages, "clicked")


def map_tab(checkpoints: list, path, x_test, y_test, records: dict, run_id: str) -> None:
    """The embedding map of a sample of test digits at the shown epochs, beside the raw pixels'."""
    m1, m2, m3 = st.columns([2, 2, 3])
    method = m1.segmented_control(
        "Projection",
        ["pca", "tsne"],
        default="pca",
        key="inside_method",
        format_func=lambda m: {"pca": "PCA (instant)", "tsne": "t-SNE (slower)"}[m],
    )
    method = method or "pca"
    help_text = "a stratified sample of the test set"
    asked = int(m2.number_input("Digits", 100, 60_000, 2000, step=500, key="inside_sample", help=help_text))
    plan = timeline.plan_maps(checkpoints or [(0, path)], asked, method, len(y_test))
    if plan.capped:
        m3.warning(plan.capped)
    try:
        maps = _compute_maps(plan, x_test, y_test)
    except (CheckpointError, OSError) as exc:
        st.error(UNREADABLE.format(exc))
        return
    at = len(maps) - 1
    if checkpoints:
        if plan.note:
            st.caption(plan.note)
        shown = st.select_slider("Map at epoch", plan.epochs, value=plan.epochs[-1], key="inside_map_epoch")
        at = plan.epochs.index(shown)
    else:
        m3.caption("The epoch slider is hidden: this checkpoint has no per-epoch files.")
    emap, name = maps[at], "t-SNE" if method == "tsne" else "PCA"
    feat_fig, raw_fig = memo(("inside-map-figures", plan.key(), at), lambda: _map_figures(maps, at, name))
    feat_col, raw_col = st.columns(2)
    with feat_col:
        event = show_chart(
            feat_fig,
            width="stretch",
            on_select="rerun",
            selection_mode="points",
            key="inside_map",
            config=NO_CHART_BAR,
        )
    with raw_col:
        show_chart(raw_fig, width="stretch", config=NO_CHART_BAR, key="inside_raw_map")
    wrong = int((emap.preds != emap.labels).sum())
    st.caption(
        f"{plan.digits:,} test digits, coloured by their true digit; the {wrong} the model gets wrong are "
        "crosses. Separation (5 nearest neighbours in the map agree with a digit's label): "
        f"**{emap.separation:.1%}** here. Click a point to look inside that digit."
    )
    if checkpoints and len(maps) > 1:
        val = [records.get(e, {}).get("val_acc") for e in plan.epochs]
        figure = separation_figure(plan.epochs, [m.separation for m in maps], val)
        show_chart(figure, width="stretch", config=NO_CHART_BAR, key="separation")
    points = (event.selection.points if event and event.selection else []) or []
    if points and points[0].get("customdata"):
        st.session_state.inside_clicked = int(points[0]["customdata"][0])
    clicked = st.session_state.get("inside_clicked")
    if clicked is not None:
        clicked_digit(int(clicked), plan.paths[at], x_test, y_test, run_id)
