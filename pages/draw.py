"""Draw: a digit in, what the network sees, what it predicts, and why (saliency maps).

Everything below the model pickers is one fragment: a stroke reruns only it (not the app's sidebar,
nor the pickers), the prediction is computed and sent before any saliency map, and the pictures
are PNGs made on the server. Stable hooks for tests and benchmarks: the prediction is the metric in
`.st-key-draw_prediction`, the saliency maps are the images in `.st-key-draw_saliency`."""

import numpy as np
import streamlit as st

from mnist_core.evaluate import predict_proba
from mnist_core.explain import METHODS, ExplainError, attribute, methods_for, randomized_copy
from mnist_core.pictures import saliency_picture
from mnist_core.pixels import normalize
from mnist_core.plots import probability_bars
from mnist_core.preprocess import InputError, load_image, perturb, preprocess, rgba_to_gray, to_gray
from pages.common import (
    INSIDE,
    checkpoint_path,
    choose_checkpoint,
    ensure_app_shell,
    load_model,
    model_sources,
)

ensure_app_shell()
from streamlit_drawable_canvas import st_canvas  # noqa: E402  (after the shell check)

STAGE_TITLES = {
    "grayscale": "1. grayscale",
    "inverted": "2. ink made light",
    "cropped": "3. cropped to ink",
    "scaled": "4. fit in 20x20",
    "centered": "5. centred by mass",
}


def square(img: np.ndarray) -> np.ndarray:
    """Pad a stage image to a square with its own background, so the strip lines up."""
    h, w = img.shape
    side = max(h, w)
    fill = float(np.median(np.concatenate([img[0], img[-1]])))
    out = np.full((side, side), fill, dtype=np.float32)
    out[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = img
    return np.clip(out, 0, 1)


st.title("Draw")
st.caption("Draw a digit (or upload a photo of one). See what the network sees, what it predicts, and why.")

pick_col, epoch_col, compare_col = st.columns([3, 2, 3])
chosen, run_id, epoch = choose_checkpoint("draw", (pick_col, epoch_col))
sources = model_sources()
compare = compare_col.multiselect(
    "Compare with (up to 2)", [lab for lab in sources if lab != chosen], max_selections=2, key="draw_compare"
)
model = load_model(checkpoint_path(run_id, epoch))
if model is None:
    st.stop()
others = [(label, other) for label in compare if (other := load_model(checkpoint_path(sources[label])))]


def saliency_map(image28: np.ndarray, attr: np.ndarray, title: str) -> None:
    """One map as a picture, with its title and the value at full colour (the chart's colour bar)."""
    picture, limit = saliency_picture(image28, attr)
    st.markdown(f"**{title}**")
    st.image(picture, width="stretch")
    st.caption(f"full red +{limit:.2g}, full blue -{limit:.2g}")


@st.fragment
def workbench(model, chosen: str, run_id: str, epoch, others: list) -> None:
    """Input, preprocessing, prediction and saliency: reruns alone on every stroke or setting."""
    # ---------------- input ----------------
    in_col, out_col = st.columns([1, 1], gap="large")
    with in_col:
        draw_tab, upload_tab = st.tabs(["Draw", "Upload"])
        with draw_tab:
            brush_col, clear_col = st.columns([3, 1], vertical_alignment="bottom")
            brush = brush_col.slider("Brush width", 6, 40, 20, key="brush")
            if clear_col.button("Clear", icon=":material/ink_eraser:", width="stretch"):
                st.session_state.canvas_n = st.session_state.get("canvas_n", 0) + 1
            canvas = st_canvas(
                stroke_width=brush,
                stroke_color="#000000",
                background_color="#ffffff",
                height=280,
                width=280,
                drawing_mode="freedraw",
                return_image_data=True,
                key=f"canvas_{st.session_state.get('canvas_n', 0)}",
            )
        with upload_tab:
            upload = st.file_uploader(
                "A PNG or JPEG of one digit", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"]
            )

    source_name = "drawing"
    opened = st.session_state.get("draw_digit")
    if opened is not None:
        with in_col:
            st.info(
                f"Showing a digit opened from the {st.session_state.get('draw_digit_from', 'Evaluate')} page."
            )
            if st.button("Back to drawing", icon=":material/close:"):
                del st.session_state["draw_digit"]
                st.rerun()
    try:
        if opened is not None:
            gray = opened
            source_name = f"a digit from {st.session_state.get('draw_digit_from', 'Evaluate')}"
        elif upload is not None:
            gray, source_name = to_gray(load_image(upload.getvalue())), upload.name
        else:
            rgba = canvas.image_data
            gray = None if rgba is None else rgba_to_gray(rgba)
    except InputError as exc:
        gray = None
        in_col.error(str(exc))

    with st.expander("Preprocessing steps (switch one off to see why it matters)", expanded=True):
        t1, t2, t3, t4 = st.columns(4)
        invert = t1.radio("Invert dark ink", ["auto", "yes", "no"], horizontal=True, key="pp_invert")
        crop = t2.toggle("Crop to the ink", True, key="pp_crop")
        scale = t3.toggle("Fit in 20x20", True, key="pp_scale")
        center = t4.toggle("Centre by mass", True, key="pp_center")
        prepared = None
        if gray is not None:
            try:
                prepared = preprocess(gray, invert=invert, crop=crop, scale=scale, center=center)
            except InputError as exc:
                st.info(str(exc))
        stages = st.container(key="draw_stages")  # filled after the prediction is on its way

    if prepared is None:
        with out_col, st.container(key="draw_prediction"):
            st.info("Draw a digit on the canvas, or upload an image, to see the network read it.")
        return

    # ---------------- robustness probe ----------------
    with st.expander("Robustness probe: rotate, shift and thicken your digit"):
        r1, r2, r3, r4 = st.columns(4)
        rotate = r1.slider("Rotate (degrees)", -60, 60, 0, key="probe_rotate")
        shift_x = r2.slider("Shift right (pixels)", -8, 8, 0, key="probe_dx")
        shift_y = r3.slider("Shift down (pixels)", -8, 8, 0, key="probe_dy")
        thicken = r4.slider("Thicken (pixels)", 0, 3, 0, key="probe_thicken")
    image28 = perturb(prepared.stages["centered"], rotate, shift_x, shift_y, thicken)
    x = normalize(image28)

    # ---------------- prediction: first, so it shows before anything slower ----------------
    probs = predict_proba(model, x)[0]
    pred = int(probs.argmax())
    with out_col, st.container(key="draw_prediction"):
        st.metric("Prediction", str(pred))
        st.session_state.inside_digit = dict(image=image28, source="Draw")  # the Inside page offers it
        if st.button(
            "Look inside",
            icon=":material/layers:",
            key="draw_inside",
            help="see this digit go through the network layer by layer",
        ):
            st.session_state.inside_fresh = True
            st.session_state.selected_run = run_id or None
            st.switch_page(INSIDE)
        st.caption(
            f"{float(probs[pred]):.1%} confident · {chosen}" + ("" if epoch == "best" else f", epoch {epoch}")
        )
        st.plotly_chart(
            probability_bars(probs), width="stretch", config={"displayModeBar": False}, key="bars_main"
        )
        for label, other in others:
            p = predict_proba(other, x)[0]
            st.plotly_chart(
                probability_bars(p, f"{label}: predicts {int(p.argmax())}", k=3),
                width="stretch",
                config={"displayModeBar": False},
                key=f"bars_{label}",
            )
    with stages:
        cols = st.columns(len(prepared.stages))
        for col, (name, img) in zip(cols, prepared.stages.items()):
            col.image(square(img), caption=STAGE_TITLES[name], width="stretch", clamp=True)

    # ---------------- saliency ----------------
    with st.container(key="draw_saliency"):
        st.subheader("Why? Saliency maps")
        s1, s2, s3 = st.columns([1, 3, 1], vertical_alignment="bottom")
        target = s1.selectbox(
            "Explain the score of",
            ["prediction"] + list(range(10)),
            key="sal_target",
            format_func=lambda t: f"the prediction ({pred})" if t == "prediction" else f"digit {t}",
        )
        target = pred if target == "prediction" else int(target)
        available = methods_for(model)
        methods = s2.multiselect(
            "Methods",
            available,
            default=available,
            key="sal_methods",
            format_func=lambda m: m.replace("_", " ").capitalize(),
        )
        sanity = s3.toggle(
            "Sanity check",
            key="sal_sanity",
            help="the same maps from the same architecture with random weights",
        )
        if methods:
            cols = st.columns(len(methods))
            for col, method in zip(cols, methods):
                with col:
                    try:
                        saliency_map(
                            image28,
                            attribute(model, x, method, target),
                            method.replace("_", " ").capitalize(),
                        )
                        st.caption(METHODS[method])
                        if sanity:
                            noise = attribute(randomized_copy(model), x, method, target)
                            saliency_map(image28, noise, "random weights")
                    except ExplainError as exc:
                        st.warning(str(exc))
            if sanity:
                st.caption(
                    "A map that looks the same with random weights says nothing about what the network "
                    "learned; a trustworthy method changes completely."
                )
        st.caption(f"Input: {source_name}. Red pixels raise the score of digit {target}; blue ones lower it.")


workbench(model, chosen, run_id, epoch, others)
