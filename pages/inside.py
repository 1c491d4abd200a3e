"""Inside: the forward pass layer by layer, the first-layer filters over epochs, and the embedding map."""

import numpy as np
import streamlit as st

from mnist_core.analysis import inside
from pages.ui.inside_time import filters_tab, map_tab
from pages.ui.inside_views import layers_tab
from pages.ui.resources import checkpoint_path, choose_checkpoint, job_manager, load_model, mnist_or_stop
from pages.ui.shell import ensure_app_shell

ensure_app_shell()

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

# ---------------- the three views ----------------
stages = inside.activations(model, image)
caption = label + ("" if epoch == "best" else f", epoch {epoch}")
checkpoints = job_manager().store.checkpoints(run_id) if run_id else []
layers_box, time_box, map_box = st.tabs(["Layer by layer", "Filters over time", "Embedding map"])
with layers_box:
    layers_tab(model, path, image, source, caption, stages, x_test, run_id)
with time_box:
    filters_tab(checkpoints)
with map_box:
    records = {r["epoch"]: r for r in job_manager().store.epochs(run_id)} if checkpoints else {}
    map_tab(checkpoints, path, x_test, y_test, records, run_id)
