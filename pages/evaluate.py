"""Evaluate: what the network gets wrong. Confusion matrix, galleries, per-class metrics, time travel.

Evaluations come from mnist_core.analysis.cache (memory, then disk, keyed by the checkpoint's
content; app.py warms the default model's when the server starts). Digits and saliency maps are
PNGs made on the server, the confusion matrix an HTML table (pages/ui/confusion.py) and the charts
plain HTML/SVG: the page loads no chart library. Each gallery is a fragment, so paging or picking
a digit reruns only it. Stable hooks: the matrix's cells are `.st-key-cm_chart td[data-true]
[data-pred]`, the galleries are the images in `.st-key-cell_gallery` and `.st-key-errors_gallery`."""

import streamlit as st

from mnist_core.analysis import cache as analysis_cache
from mnist_core.analysis.saliency import attribute, methods_for
from mnist_core.data.pixels import denormalize
from mnist_core.figures.evaluation import confusion_cells, per_class_svg, probability_bars_html
from mnist_core.figures.pictures import digit_pictures, saliency_picture
from mnist_core.learn.checkpoints import CheckpointError
from pages.ui.links import show_cell, wanted_cell
from pages.ui.resources import checkpoint_path, choose_checkpoint, job_manager, load_model, mnist_or_stop
from pages.ui.shell import DRAW, INSIDE, ensure_app_shell

ensure_app_shell()
from pages.ui.confusion import confusion_table  # noqa: E402  (after the shell check, as Draw's canvas)

PAGE = 24  # digits per gallery page

st.title("Evaluate")
st.caption("Where does the network go wrong? Click a cell of the confusion matrix to see those digits.")

pick, epoch_col, split_col = st.columns([3, 2, 2])
label, run_id, epoch = choose_checkpoint("eval", (pick, epoch_col))
split = split_col.radio(
    "Split",
    ["test", "val"],
    horizontal=True,
    key="eval_split",
    format_func=lambda s: {"test": "test", "val": "validation"}[s],
)


def analysis_for(run, ep, sp):
    """The checkpoint's evaluation (cached in memory and on disk by analysis_cache), or a message."""
    try:
        path = checkpoint_path(run, ep)
        if analysis_cache.cached(path, sp):
            return analysis_cache.evaluate_checkpoint(path, sp)
        with st.spinner("Evaluating (cached afterwards)..."):
            return analysis_cache.evaluate_checkpoint(path, sp, mnist_or_stop())
    except (CheckpointError, OSError, KeyError) as exc:
        st.error(f"This checkpoint cannot be evaluated: {exc}. Pick another model or epoch.")
        st.stop()


result = analysis_for(run_id, epoch, split)
errors = int((result.y_true != result.y_pred).sum())
m1, m2, m3 = st.columns(3)
m1.metric("Accuracy", f"{result.accuracy:.2%}")
m2.metric("Mistakes", f"{errors:,}", help=f"out of {len(result.y_true):,} {split} images")
m3.metric("Worst digit (F1)", min(result.per_class, key=lambda r: r["f1"])["digit"])


def per_class_table(rows: list[dict]) -> str:
    """The per-class metrics as a Markdown table, 4 decimals."""
    lines = ["| digit | precision | recall | f1 | support |", "|---:|---:|---:|---:|---:|"]
    lines += [
        f"| {r['digit']} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1']:.4f} | {r['support']:,} |"
        for r in rows
    ]
    return "\n".join(lines)


@st.fragment
def show_gallery(indices, title: str, key: str) -> None:
    """A paged grid of digits with true label, prediction and confidence; pick one to inspect it.
    A fragment: paging, picking and inspecting rerun only this gallery."""
    with st.container(key=f"{key}_gallery"):
        st.markdown(f"**{title}** ({len(indices)})")
        if not len(indices):
            st.caption("None here.")
            return
        pages = (len(indices) + PAGE - 1) // PAGE
        page = st.number_input("Page", 1, pages, 1, key=f"{key}_page") if pages > 1 else 1
        chunk = indices[(page - 1) * PAGE : page * PAGE]
        titles = [
            f"{int(result.y_true[i])}→{int(result.y_pred[i])} {float(result.probs[i].max()):.0%}"
            for i in chunk
        ]
        alts = [
            f"test digit {int(i):,}: a {int(result.y_true[i])}, read as {int(result.y_pred[i])} "
            f"with {float(result.probs[i].max()):.0%} confidence"
            for i in chunk
        ]
        st.image(
            digit_pictures(result.images[chunk]), caption=titles, alt=alts, width=72, output_format="PNG"
        )
        st.caption("Each digit: true → predicted, and the model's confidence.")
        pick = st.selectbox(
            "Inspect one",
            [int(i) for i in chunk],
            key=f"{key}_pick",
            format_func=lambda i: f"#{i}: true {int(result.y_true[i])}, predicted {int(result.y_pred[i])}",
        )
        inspect(pick, key)


def inspect(i: int, key: str) -> None:
    model = load_model(checkpoint_path(run_id, epoch))
    if model is None:
        return
    x = result.images[i : i + 1]
    left, mid, right = st.columns([2, 2, 1])
    left.markdown(probability_bars_html(result.probs[i], k=5), unsafe_allow_html=True)
    method = "grad_cam" if "grad_cam" in methods_for(model) else "saliency"
    pred = int(result.y_pred[i])
    image = denormalize(x[0, 0]).numpy()
    picture, limit = saliency_picture(image, attribute(model, x, method, pred))
    with mid:
        st.markdown(f"**{method.replace('_', ' ')} for {pred}**")
        st.image(
            picture,
            width=240,
            output_format="PNG",
            alt=f"{method.replace('_', ' ')} map of test digit {i:,} for the class {pred}: red where "
            f"ink raises that score, blue where it lowers it",
        )
        st.caption(f"Red raises the score of {pred} (full red +{limit:.2g}), blue lowers it.")
    if right.button("Open in Draw", icon=":material/draw:", key=f"{key}_draw"):
        st.session_state.draw_digit = image
        st.session_state.draw_digit_from = "Evaluate"
        st.session_state.selected_run = run_id or None
        st.switch_page(DRAW)
    if right.button("Look inside", icon=":material/layers:", key=f"{key}_inside"):
        st.session_state.inside_digit = dict(
            image=image, source=f"Evaluate (#{i}, a {int(result.y_true[i])})"
        )
        st.session_state.inside_fresh = True
        st.session_state.selected_run = run_id or None
        st.switch_page(INSIDE)


def pick_cell(true: int, pred: int) -> None:
    show_cell((true, pred))  # a callback, before the run: the matrix shows it picked, the address names it


# ---------------- confusion matrix ----------------
picked = wanted_cell()  # from the address (a shared link) or this session's last pick
cm_col, side_col = st.columns([3, 2], gap="large")
with cm_col:
    view = st.segmented_control("Show", ["counts", "row %", "difference"], default="counts", key="cm_view")
    cm, diff = result.confusion.tolist(), False
    if view == "difference":
        epochs = ["best"] + [e for e, _ in (job_manager().store.checkpoints(run_id) if run_id else [])]
        if len(epochs) < 3:
            st.info("The difference view compares two epochs of a run; pick a run with several epochs.")
        else:
            other = st.select_slider("Compare with epoch", epochs, value=epochs[1], key="cm_other")
            base = analysis_for(run_id, other, split)
            cm = (result.confusion - base.confusion).tolist()
            diff = True
            st.caption(
                f"Counts of epoch {epoch} minus epoch {other}: on the diagonal green-blue is better "
                "(more correct); off it, red is better (fewer mistakes)."
            )
    confusion_table(
        confusion_cells(cm, percent=view == "row %", diff=diff),
        "cm_chart",
        picked,
        on_pick=lambda cell: pick_cell(*cell),
    )


with side_col:
    st.markdown("**Most confused pairs**")
    for true, pred, count in result.most_confused(10):
        st.button(
            f"{true} read as {pred}: {count}",
            key=f"pair_{true}_{pred}",
            width="stretch",
            on_click=pick_cell,
            args=(true, pred),
        )

cell = picked
if cell:
    true, pred = int(cell[0]), int(cell[1])
    title = (
        f"Correct {true}s the model was least sure of"
        if true == pred
        else f"True {true}, predicted {pred}, most confident first"
    )
    show_gallery(result.cell(true, pred), title, "cell")

# ---------------- per-class metrics and the error gallery ----------------
st.subheader("Per-class metrics")
table_col, chart_col = st.columns([2, 3])
table_col.markdown(per_class_table(result.per_class))  # a plain table: no data-grid to load
with chart_col:
    st.markdown(per_class_svg(result.per_class), unsafe_allow_html=True)

st.subheader("All mistakes")
f1, f2 = st.columns(2)
only_true = f1.selectbox("True digit", ["any"] + list(range(10)), key="err_true")
only_pred = f2.selectbox("Predicted digit", ["any"] + list(range(10)), key="err_pred")
show_gallery(
    result.errors(None if only_true == "any" else only_true, None if only_pred == "any" else only_pred),
    "Misclassified digits, most confident mistakes first",
    "errors",
)
