"""Home: what MNIST Lab is, and the state of this machine (data, device, default model)."""

import streamlit as st

from mnist_core.jobs.executor import backend_status
from mnist_core.jobs.ray.settings import configured_address
from mnist_core.learn.system import environment_status
from mnist_core.paths import data_dir
from mnist_core.words import count
from pages.ui.faults import sees_server_details
from pages.ui.shell import DRAW, EVALUATE, LESSONS, TRAIN, ensure_app_shell
from pages.ui.signin import current_user

ensure_app_shell()
user = current_user()
st.title("MNIST Lab")
st.write(
    "Learn how neural networks learn by training them on handwritten digits: pick an "
    "architecture, train it, see what it gets wrong, and draw your own digits for it to read."
)

status = st.cache_data(ttl=30, show_spinner=False)(environment_status)(str(data_dir()))
data_col, device_col, model_col = st.columns(3)
with data_col:
    st.subheader("Dataset")
    # the server's folders are for a teacher or the administrator; a learner reads that it is there
    admin = sees_server_details()
    where = f"in `{status['data_dir']}`" if admin else "on this server"
    other = f", or set `{status['data_env']}` to a folder holding the files" if admin else ""
    if status["data_missing"]:
        st.warning(
            f"MNIST is not {where} yet (missing: {', '.join(status['data_missing'])}). It is "
            f"downloaded on first use{other}."
        )
    else:
        st.success(f"MNIST found {where}.")
with device_col:
    st.subheader("Machine")
    st.metric("Device", status["device"])
    threads = status["torch_threads"]
    st.caption(f"{status['cpu_cores']} CPU cores, PyTorch uses {threads} thread{'s' if threads != 1 else ''}")
    precision, why = status["precision"]
    st.metric("Training precision", precision, help='precision="auto", every run\'s default')
    reason = why.removeprefix("auto: ")  # "this CPU runs bf16 natively (...)": keep "CPU" upper case
    st.caption(reason[:1].upper() + reason[1:] + ("." if precision == "bf16" else ": fp32 is faster here."))
with model_col:
    st.subheader("Default model")
    default = status["default_model"]
    if default.get("error"):
        st.error(default["error"])
    elif default["present"]:
        st.metric(f"{default['model']} · test accuracy", f"{default['test_acc']:.2%}")
        st.caption(f"{default['size_kb']:.0f} KB, shipped in `checkpoints/default.pt`")
    else:
        st.info("No default model shipped yet.")

st.subheader("Where runs train")
backend = st.cache_data(ttl=30, show_spinner="Asking the cluster...")(backend_status)(configured_address())
if backend["error"]:
    st.error(
        backend["error"]
        if user.is_teacher
        else "The Ray cluster this class trains on does not answer now, so runs cannot start; your "
        "teacher sees the details on this page."
    )
elif backend["backend"] == "ray":  # the machines' addresses for teachers only: learners get counts
    where = f" at `{backend['address']}`" if user.is_teacher else ""
    st.success(
        f"Ray cluster{where}: {count(len(backend['nodes']), 'node')}, "
        f"{count(float(backend['cpus']), 'CPU')}, {count(float(backend['gpus']), 'GPU')}; "
        f"up to {count(backend['max_runs'], 'run')} at a time, the rest queue."
    )
    if user.is_teacher:
        st.dataframe(backend["nodes"], hide_index=True)
else:
    st.info(
        f"This machine: {count(backend['cpus'], 'CPU core')}, {count(backend['gpus'], 'GPU')}; "
        f"{count(backend['max_runs'], 'run')} at a time, the rest queue. "
        "Set `MNIST_LAB_RAY_ADDRESS=HOST:PORT` to train on a Ray cluster."
    )

st.subheader("The quick path")
step0, step1, step2, step3 = st.columns(4)
with step0:
    st.markdown("**1. Lessons**: predict a classic finding, run it, and let your runs judge.")
    st.page_link(LESSONS, label="Open Lessons")
with step1:
    st.markdown("**2. Train** a network. Start with `fast_cnn`: it passes 99% in two epochs, in seconds.")
    st.page_link(TRAIN, label="Open Train")
with step2:
    st.markdown("**3. Evaluate** it: which digits does it confuse, and why?")
    st.page_link(EVALUATE, label="Open Evaluate")
with step3:
    st.markdown("**4. Draw** a digit and watch the network read it.")
    st.page_link(DRAW, label="Open Draw")

st.divider()
st.caption(
    " · ".join(f"{k} {v}" for k, v in status["versions"].items())
    + " · everything here is also on the command line: `mnist-lab --help`"
)
