"""Draw: a digit in, what the network sees, what it predicts, and why (saliency maps).

Everything below the model pickers is one fragment: a stroke reruns only it (not the app's sidebar,
nor the pickers), the canvas sends each stroke the moment it ends (pages/ui/canvas.py), the prediction
is computed and sent before any saliency map, and the pictures are PNGs made on the server (and the
probability bars plain HTML: the page loads no chart library). Stable
hooks for tests and benchmarks: the canvas is `canvas.draw-canvas`, the prediction is the metric in
`.st-key-draw_prediction`, the saliency maps are the images in `.st-key-draw_saliency`."""

import numpy as np
import streamlit as st

from mnist_core.analysis.saliency import METHODS, ExplainError, attribute, methods_for, randomized_copy
from mnist_core.data.pixels import normalize
from mnist_core.data.preprocess import InputError, load_image, perturb, preprocess, to_gray
from mnist_core.figures.evaluation import probability_bars_html
from mnist_core.figures.pictures import saliency_picture
from mnist_core.learn.evaluate import one_thread, predict_proba
from pages.ui.announce import announce
from pages.ui.resources import checkpoint_path, choose_checkpoint, load_model, model_sources
from pages.ui.shell import INSIDE, ensure_app_shell

ensure_app_shell()
from pages.ui.canvas import drawing_canvas, drawing_of  # noqa: E402  (after the shell check)

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
    st.image(
        picture, width="stretch", output_format="PNG", alt=f"{title}: red raises the score, blue lowers it"
    )
    st.caption(f"full red +{limit:.2g}, full blue -{limit:.2g}")


# Settings the prediction depends on: widget key -> default. The prediction is computed from their
# values in session state and sent before the widgets themselves are drawn (fewer messages ahead of
# it: it reaches the browser sooner); the widgets below are made with the same defaults.
PREPROCESSING = dict(pp_invert="auto", pp_crop=True, pp_scale=True, pp_center=True)
PROBE = dict(probe_rotate=0, probe_dx=0, probe_dy=0, probe_thicken=0)
INVERT = ["auto", "yes", "no"]


def setting(key: str):
    return st.session_state.get(key, {**PREPROCESSING, **PROBE}[key])


def clear_canvas() -> None:
    st.session_state.canvas_n = st.session_state.get("canvas_n", 0) + 1  # a fresh canvas (a new key)


def current_input(canvas_key: str) -> tuple[np.ndarray | None, str, str | None]:
    """(grayscale digit or None, where it came from, a message for an unreadable image): a digit
    opened from another page, else an upload, else the drawing, as the widgets report them."""
    opened = st.session_state.get("draw_digit")
    if opened is not None:
        return opened, f"a digit from {st.session_state.get('draw_digit_from', 'Evaluate')}", None
    upload = st.session_state.get("draw_upload")
    try:
        if upload is not None:
            return to_gray(load_image(upload.getvalue())), upload.name, None
        drawn = drawing_of(canvas_key)
        return (None if drawn is None else to_gray(load_image(drawn))), "drawing", None
    except InputError as exc:
        return None, "", str(exc)


@st.fragment
def workbench(model, chosen: str, run_id: str, epoch, others: list) -> None:
    """Input, preprocessing, prediction and saliency: reruns alone on every stroke or setting."""
    in_col, out_col = st.columns([1, 1], gap="large")
    with out_col:
        prediction_box = st.container(key="draw_prediction")
    canvas_key = f"canvas_{st.session_state.get('canvas_n', 0)}"
    gray, source_name, unreadable = current_input(canvas_key)
    prepared, not_a_digit = None, None
    if gray is not None:
        try:
            prepared = preprocess(
                gray,
                invert=setting("pp_invert"),
                crop=setting("pp_crop"),
                scale=setting("pp_scale"),
                center=setting("pp_center"),
            )
        except InputError as exc:
            not_a_digit = str(exc)

    # ---------------- prediction: first, so that it shows before anything slower ----------------
    if prepared is None:
        with prediction_box:  # the metric is there from the start: the first stroke only changes it
            st.metric("Prediction", "–")
            st.info("Draw a digit on the canvas, or upload an image, to see the network read it.")
    else:
        image28 = perturb(
            prepared.stages["centered"],
            setting("probe_rotate"),
            setting("probe_dx"),
            setting("probe_dy"),
            setting("probe_thicken"),
        )
        x = normalize(image28)
        with one_thread():
            probs = predict_proba(model, x)[0]
        pred = int(probs.argmax())
        with prediction_box:
            st.metric("Prediction", str(pred))
            announce(f"The network reads a {pred}, {float(probs[pred]):.0%} sure.")
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
                f"{float(probs[pred]):.1%} confident · {chosen}"
                + ("" if epoch == "best" else f", epoch {epoch}")
            )
            st.markdown(probability_bars_html(probs), unsafe_allow_html=True)
            for label, other in others:
                with one_thread():
                    p = predict_proba(other, x)[0]
                bars = probability_bars_html(p, f"{label}: predicts {int(p.argmax())}", k=3)
                st.markdown(bars, unsafe_allow_html=True)

    # ---------------- input ----------------
    with in_col:
        draw_tab, upload_tab = st.tabs(["Draw", "Upload"])
        with draw_tab:
            brush_col, clear_col = st.columns([3, 1], vertical_alignment="bottom")
            brush = brush_col.slider("Brush width", 6, 40, 20, key="brush")
            clear_col.button("Clear", icon=":material/ink_eraser:", width="stretch", on_click=clear_canvas)
            drawing_canvas(canvas_key, brush)
        with upload_tab:
            st.file_uploader(
                "A PNG or JPEG of one digit",
                type=["png", "jpg", "jpeg", "bmp", "gif", "webp"],
                key="draw_upload",
            )
        if st.session_state.get("draw_digit") is not None:
            st.info(
                f"Showing a digit opened from the {st.session_state.get('draw_digit_from', 'Evaluate')} page."
            )
            if st.button("Back to drawing", icon=":material/close:"):
                del st.session_state["draw_digit"]
                st.rerun()
        if unreadable:
            st.error(unreadable)

    with st.expander("Preprocessing steps (switch one off to see why it matters)", expanded=True):
        t1, t2, t3, t4 = st.columns(4)
        t1.radio(
            "Invert dark ink",
            INVERT,
            INVERT.index(PREPROCESSING["pp_invert"]),
            horizontal=True,
            key="pp_invert",
        )
        t2.toggle("Crop to the ink", PREPROCESSING["pp_crop"], key="pp_crop")
        t3.toggle("Fit in 20x20", PREPROCESSING["pp_scale"], key="pp_scale")
        t4.toggle("Centre by mass", PREPROCESSING["pp_center"], key="pp_center")
        if not_a_digit:
            st.info(not_a_digit)
        if prepared is not None:
            cols = st.columns(len(prepared.stages))
            for col, (name, img) in zip(cols, prepared.stages.items()):
                col.image(
                    square(img),
                    caption=STAGE_TITLES[name],
                    alt=f"your digit after the step: {STAGE_TITLES[name]}",
                    width="stretch",
                    clamp=True,
                    output_format="PNG",
                )
    if prepared is None:
        return

    # ---------------- robustness probe ----------------
    with st.expander("Robustness probe: rotate, shift and thicken your digit"):
        r1, r2, r3, r4 = st.columns(4)
        r1.slider("Rotate (degrees)", -60, 60, PROBE["probe_rotate"], key="probe_rotate")
        r2.slider("Shift right (pixels)", -8, 8, PROBE["probe_dx"], key="probe_dx")
        r3.slider("Shift down (pixels)", -8, 8, PROBE["probe_dy"], key="probe_dy")
        r4.slider("Thicken (pixels)", 0, 3, PROBE["probe_thicken"], key="probe_thicken")

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
                        with one_thread():
                            attr = attribute(model, x, method, target)
                        saliency_map(image28, attr, method.replace("_", " ").capitalize())
                        st.caption(METHODS[method])
                        if sanity:
                            with one_thread():
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
