"""Inside: the forward pass layer by layer, the first-layer filters over epochs, and the embedding map."""

import hashlib

import numpy as np
import streamlit as st

from mnist_core.analysis import inside
from mnist_core.figures.evaluation import image_grid, probability_bars
from mnist_core.figures.inside import (
    embedding_figure,
    feature_grid_figure,
    filters_over_time_figure,
    heat_strip_figure,
    separation_figure,
    single_map_figure,
    weight_images_figure,
    weight_movement_figure,
)
from mnist_core.learn.checkpoints import CheckpointError, read_checkpoint
from mnist_core.words import count
from pages.ui.resources import checkpoint_path, choose_checkpoint, job_manager, load_model, mnist_or_stop
from pages.ui.shell import DRAW, ensure_app_shell

ensure_app_shell()
NO_CHART_BAR = {"displayModeBar": False}
MAX_UNITS = 64  # weight images of an MLP's first layer shown at once

st.title("Inside the network")
st.caption(
    "What each layer computes for one digit, which test digits excite a channel most, how the first "
    "filters grew epoch by epoch, and how the network arranges the digits in its last hidden layer."
)

data = mnist_or_stop()
x_test, y_test = inside.test_inputs(data), data.test_labels
pick, epoch_col, src_col = st.columns([3, 2, 3])
label, run_id, epoch = choose_checkpoint("inside", (pick, epoch_col))
try:
    path = checkpoint_path(run_id, epoch)
except KeyError:
    st.error(f"Epoch {epoch} of this run has no checkpoint any more. Pick another epoch.")
    st.stop()
model = load_model(path)
if model is None:
    st.stop()

# ---------------- the input ----------------
sent = st.session_state.get("inside_digit")
if st.session_state.pop("inside_fresh", False) and sent is not None:
    st.session_state.inside_input = "sent"
choices = ["index", "random"] + (["sent"] if sent is not None else [])
if st.session_state.get("inside_input") not in choices:
    st.session_state.inside_input = "index"
with src_col:
    mode = st.radio(
        "Input",
        choices,
        horizontal=True,
        key="inside_input",
        format_func=lambda c: {
            "index": "test digit #",
            "random": "a random digit",
            "sent": f"from {sent['source'] if sent else ''}",
        }[c],
    )
    if mode == "index":
        index = int(st.number_input("Test index", 0, len(y_test) - 1, 0, key="inside_index"))
    elif mode == "random":
        a, b = st.columns([2, 1], vertical_alignment="bottom")
        digit = int(a.selectbox("Digit", list(range(10)), 7, key="inside_random_digit"))
        if b.button("Another", icon=":material/casino:") or st.session_state.get("inside_random_of") != digit:
            st.session_state.inside_random = int(np.random.choice(np.flatnonzero(y_test.numpy() == digit)))
            st.session_state.inside_random_of = digit
        index = st.session_state.inside_random
        st.caption(f"Test digit #{index}")
if mode == "sent":
    image, source = np.asarray(sent["image"], dtype=np.float32), sent["source"]
else:
    image, source = inside.to_image(x_test[index]), f"test digit #{index} (a {int(y_test[index])})"


def open_in_draw(img) -> None:
    st.session_state.draw_digit = np.asarray(img, dtype=np.float32)
    st.session_state.draw_digit_from = "Inside"
    st.session_state.selected_run = run_id or None
    st.switch_page(DRAW)


@st.cache_resource(max_entries=32, show_spinner=False)
def stage_figures(key: tuple, _stages: list) -> list:
    """The figure (or, for a layer the viewer does not know, the note) of every stage, once per digit."""
    out = []
    for s in _stages[1:]:
        if s.kind == "maps":
            out.append(
                feature_grid_figure(
                    s.value, f"{s.title} · {s.shape[0]} channels of {s.shape[1]}x{s.shape[2]}"
                )
            )
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
    for i, fig in enumerate(stage_figures(key, stages), 1):
        if isinstance(fig, str):
            st.caption(fig)
        else:
            st.plotly_chart(fig, width="stretch", config=NO_CHART_BAR, key=f"{prefix}_{i}")


@st.cache_resource(max_entries=64, show_spinner=False)
def examples_figure(key: tuple, _images, _titles):
    return image_grid(_images, _titles, cols=3, height_per_row=120)


stages = inside.activations(model, image)
digit_key = (str(path), path.stat().st_mtime, hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest())
pred, conf = inside.prediction(stages)
layers_tab, time_tab, map_tab = st.tabs(["Layer by layer", "Filters over time", "Embedding map"])

# ---------------- layer by layer ----------------
with layers_tab:
    left, right = st.columns([1, 3], gap="large")
    with left:
        st.image(image, caption=f"Input: {source}", width=180, clamp=True)
        st.metric("Prediction", str(pred), help=f"{conf:.1%} confident")
        st.caption(f"{conf:.1%} confident · {label}" + ("" if epoch == "best" else f", epoch {epoch}"))
        if st.button("Open in Draw", icon=":material/draw:", key="inside_draw"):
            open_in_draw(image)
    with right:
        show_stages(digit_key, stages, "stage")

    st.subheader("One channel up close")
    focusable = [i for i, s in enumerate(stages) if s.name in inside.example_stages(model)]
    if focusable:
        f1, f2 = st.columns([3, 1])
        chosen = f1.selectbox("Layer", focusable, key="inside_layer", format_func=lambda i: stages[i].title)
        stage = stages[chosen]
        channel = int(
            f2.number_input(
                "Channel" if stage.kind == "maps" else "Unit", 0, stage.shape[0] - 1, 0, key="inside_channel"
            )
        )
        channel = min(channel, stage.shape[0] - 1)
        big, weights_col, examples_col = st.columns([2, 2, 3])
        with big:
            if stage.kind == "maps":
                fmap = stage.value[channel]
                st.plotly_chart(
                    single_map_figure(fmap, f"channel {channel} of {stage.title.split(':')[0]}"),
                    width="stretch",
                    config=NO_CHART_BAR,
                    key="focus_map",
                )
                stats = inside.map_stats(fmap)
                st.caption(
                    f"min {stats['min']:.3g} · max {stats['max']:.3g} "
                    f"(row {stats['peak_row']}, column "
                    f"{stats['peak_col']}) · mean {stats['mean']:.3g} · std {stats['std']:.3g} · "
                    f"{stats['active']:.0%} of positions above 0"
                )
            else:
                st.metric(
                    f"Unit {channel}",
                    f"{float(stage.value[channel]):.3g}",
                    help="its activation for this input",
                )
        with weights_col:
            weights = inside.filter_of(model, stages[chosen], channel)
            if weights is None:
                stage_first = dict(model.named_modules())[stage.first]
                if getattr(stage_first, "weight", None) is not None and stage_first.weight.dim() == 2:
                    w = stage_first.weight[channel].detach().float().numpy()
                    side = int(np.sqrt(len(w)))
                    if side * side == len(w):
                        st.plotly_chart(
                            single_map_figure(w.reshape(side, side), "its incoming weights", signed=True),
                            width="stretch",
                            config=NO_CHART_BAR,
                            key="focus_weights",
                        )
                    else:
                        st.plotly_chart(
                            heat_strip_figure(w, f"its {len(w):,} incoming weights"),
                            width="stretch",
                            config=NO_CHART_BAR,
                            key="focus_weights",
                        )
                else:
                    st.caption(
                        "A pooling stage has no weights of its own: each map is the pooled map of the "
                        "conv stage before it."
                    )
            else:
                st.plotly_chart(
                    feature_grid_figure(
                        weights,
                        f"the filter: {count(weights.shape[0], 'input channel')} of "
                        f"{weights.shape[1]}x{weights.shape[2]}",
                        signed=True,
                        cols=min(8, weights.shape[0]),
                    ),
                    width="stretch",
                    config=NO_CHART_BAR,
                    key="focus_weights",
                )
        with examples_col:
            with st.spinner("Finding the test digits that excite every channel (once per checkpoint)..."):
                examples = inside.dataset_examples(path, model, x_test)
            idx, scores = examples[stage.name]
            fig = examples_figure(
                digit_key[:2] + (stage.name, channel),
                x_test[idx[channel]],
                [f"#{i}: {v:.2g}" for i, v in zip(idx[channel], scores[channel])],
            )
            st.plotly_chart(fig, width="stretch", config=NO_CHART_BAR, key="focus_examples")
            st.caption("The 9 test digits that excite this channel most (its peak response over positions).")

    kind, first = inside.first_weight(model)
    if kind == "linear":
        st.subheader("First layer weights as images")
        is_templates = len(first) == 10
        st.plotly_chart(
            weight_images_figure(
                first[:MAX_UNITS], "", [str(d) for d in range(10)] if is_templates else None
            ),
            width="stretch",
            config=NO_CHART_BAR,
            key="first_weights",
        )
        st.caption(
            "Red pixels raise the unit's input, blue ones lower it. "
            + (
                "These ten images are the perceptron's templates: its score for a digit is how well the "
                "input matches that digit's template."
                if is_templates
                else f"The first {min(MAX_UNITS, len(first))} of {len(first)} hidden units."
            )
        )

# ---------------- filters over time ----------------
checkpoints = job_manager().store.checkpoints(run_id) if run_id else []


@st.cache_resource(max_entries=4, show_spinner="Reading every epoch's weights...")
def epoch_states(paths: tuple, mtimes: tuple) -> list[dict]:
    return [read_checkpoint(p)["state_dict"] for p in paths]


with time_tab:
    if not checkpoints:
        st.info(
            "The time controls are hidden: this checkpoint (the shipped default model) was saved "
            "once, without a checkpoint per epoch. Train a run on the Train page, then pick it above to "
            "watch its filters grow and its embedding map sort itself out.",
            icon=":material/history_toggle_off:",
        )
    else:
        epochs = [e for e, _ in checkpoints]
        try:
            states = epoch_states(
                tuple(str(p) for _, p in checkpoints), tuple(p.stat().st_mtime for _, p in checkpoints)
            )
        except (CheckpointError, OSError) as exc:
            st.error(f"An epoch checkpoint of this run could not be read: {exc}")
            st.stop()
        shown = st.select_slider("Epoch", epochs, value=epochs[-1], key="inside_filter_epoch")
        frames = [inside.first_weight(s)[1][:MAX_UNITS] for s in states]
        conv = inside.first_weight(states[0])[0] == "conv"
        what = "first-layer filters" if conv else "first-layer weight images"
        st.plotly_chart(
            filters_over_time_figure(
                frames,
                epochs,
                epochs.index(shown),
                min(16, len(frames[0])),
                f"The {what} at epoch {shown} (press play to animate)",
            ),
            width="stretch",
            config=NO_CHART_BAR,
            key="filters_time",
        )
        if len(states) > 1:
            st.plotly_chart(
                weight_movement_figure(inside.weight_movement(states), epochs),
                width="stretch",
                config=NO_CHART_BAR,
                key="movement",
            )
            st.caption(
                "Large early moves that shrink later: the weights settle. Epoch 1's change is not "
                "shown, because the starting weights are not saved."
            )
        else:
            st.caption("One saved epoch: how far the weights moved needs two.")


# ---------------- embedding map ----------------
@st.cache_resource(max_entries=1, show_spinner=False)
def map_cache() -> dict:
    return {}


def maps_for(paths: list, method: str, n: int) -> list:
    """Embedding maps of these checkpoints, cached per (checkpoints, method, size), with progress."""
    key = (tuple((str(p), p.stat().st_mtime) for p in paths), method, n)
    cache = map_cache()
    if key not in cache:
        models = [load_model(p) for p in paths]
        if any(m is None for m in models):
            st.stop()
        name = "t-SNE" if method == "tsne" else "PCA"
        with st.status(f"Computing the {name} map of {n:,} digits...", expanded=method == "tsne") as status:
            bar = st.progress(0.0)
            maps = inside.embedding_maps(
                models,
                x_test,
                y_test,
                n,
                method,
                progress=lambda text, f: bar.progress(min(1.0, f), text=text),
            )
            status.update(label=f"{name} map of {n:,} digits ready", state="complete", expanded=False)
        while len(cache) >= 6:
            cache.pop(next(iter(cache)))
        cache[key] = maps
    return cache[key]


def ranges(layouts: list) -> tuple:
    both = np.concatenate(layouts)
    lo, hi = both.min(0), both.max(0)
    pad = (hi - lo) * 0.05 + 1e-6
    return ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))


@st.cache_resource(max_entries=16, show_spinner=False)
def map_figures(key: tuple, _maps: list, at: int, name: str) -> tuple:
    """The feature map at one epoch (axes shared by every epoch) and the raw-pixel map beside it."""
    emap = _maps[at]
    return (
        embedding_figure(
            emap.xy,
            emap.labels,
            emap.preds,
            emap.indices,
            f"What the network sees: its last hidden layer, {name}",
            ranges([m.xy for m in _maps]),
        ),
        embedding_figure(
            emap.raw_xy, emap.labels, emap.preds, emap.indices, f"The same digits as raw pixels, {name}"
        ),
    )


with map_tab:
    m1, m2, m3 = st.columns([2, 2, 3])
    method = m1.segmented_control(
        "Projection",
        ["pca", "tsne"],
        default="pca",
        key="inside_method",
        format_func=lambda m: {"pca": "PCA (instant)", "tsne": "t-SNE (slower)"}[m],
    )
    method = method or "pca"
    asked = int(
        m2.number_input(
            "Digits",
            100,
            60_000,
            2000,
            step=500,
            key="inside_sample",
            help="a stratified sample of the test set",
        )
    )
    n, capped = inside.cap_sample(asked, len(y_test))
    if capped:
        m3.warning(capped)
    map_paths = [p for _, p in checkpoints] if checkpoints else [path]
    maps = maps_for(map_paths, method, n)
    at = len(maps) - 1
    if checkpoints:
        map_epochs = [e for e, _ in checkpoints]
        at = map_epochs.index(
            st.select_slider("Map at epoch", map_epochs, value=map_epochs[-1], key="inside_map_epoch")
        )
        map_path = map_paths[at]
    else:
        map_path = path
        m3.caption("The epoch slider is hidden: this checkpoint has no per-epoch files.")
    emap = maps[at]
    name = "t-SNE" if method == "tsne" else "PCA"
    wrong = int((emap.preds != emap.labels).sum())
    feat_col, raw_col = st.columns(2)
    feat_fig, raw_fig = map_figures((tuple(map(str, map_paths)), method, n, at), maps, at, name)
    with feat_col:
        event = st.plotly_chart(
            feat_fig,
            width="stretch",
            on_select="rerun",
            selection_mode="points",
            key="inside_map",
            config={"displayModeBar": False},
        )
    with raw_col:
        st.plotly_chart(raw_fig, width="stretch", config=NO_CHART_BAR, key="inside_raw_map")
    st.caption(
        f"{n:,} test digits, coloured by their true digit; the {wrong} the model gets wrong are "
        "crosses. "
        f"Separation (5 nearest neighbours in the map agree with a digit's label): "
        f"**{emap.separation:.1%}** here. Click a point to look inside that digit."
    )
    if checkpoints and len(maps) > 1:
        records = {r["epoch"]: r for r in job_manager().store.epochs(run_id)}
        st.plotly_chart(
            separation_figure(
                map_epochs,
                [m.separation for m in maps],
                [records.get(e, {}).get("val_acc") for e in map_epochs],
            ),
            width="stretch",
            config=NO_CHART_BAR,
            key="separation",
        )
    points = (event.selection.points if event and event.selection else []) or []
    if points and points[0].get("customdata"):
        st.session_state.inside_clicked = int(points[0]["customdata"][0])
    clicked = st.session_state.get("inside_clicked")
    if clicked is not None:
        clicked_model = load_model(map_path)
        if clicked_model is not None:
            cstages = inside.activations(clicked_model, x_test[clicked : clicked + 1])
            cpred, cconf = inside.prediction(cstages)
            st.subheader(f"Test digit #{clicked}: a {int(y_test[clicked])}, predicted {cpred} ({cconf:.0%})")
            cl, cr = st.columns([1, 3], gap="large")
            with cl:
                cimage = inside.to_image(x_test[clicked])
                st.image(cimage, width=160, clamp=True)
                if st.button("Open in Draw", icon=":material/draw:", key="clicked_draw"):
                    open_in_draw(cimage)
            with cr:
                show_stages((str(map_path), map_path.stat().st_mtime, clicked), cstages, "clicked")
