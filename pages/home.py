"""Home: what MNIST Lab is, and the state of this machine (data, device, default model)."""
import streamlit as st

from mnist_core.system import environment_status

st.title("MNIST Lab")
st.write(
    "Learn how neural networks learn by training them on handwritten digits: pick an "
    "architecture, train it, see what it gets wrong, and draw your own digits for it to read."
)

status = environment_status()
data_col, device_col, model_col = st.columns(3)
with data_col:
    st.subheader("Dataset")
    if status["data_missing"]:
        st.warning(
            f"MNIST is not in `{status['data_dir']}` yet (missing: {', '.join(status['data_missing'])}). "
            f"It is downloaded on first use, or set `{status['data_env']}` to a folder holding the files."
        )
    else:
        st.success(f"MNIST found in `{status['data_dir']}`.")
with device_col:
    st.subheader("Machine")
    st.metric("Device", status["device"])
    st.caption(f"{status['cpu_cores']} CPU cores, PyTorch uses {status['torch_threads']} threads")
with model_col:
    st.subheader("Default model")
    default = status["default_model"]
    if default.get("error"):
        st.error(default["error"])
    elif default["present"]:
        st.metric(default["model"], f"{default['test_acc']:.2%} test accuracy")
        st.caption(f"{default['size_kb']:.0f} KB, shipped in `checkpoints/default.pt`")
    else:
        st.info("No default model shipped yet.")

st.caption(" · ".join(f"{k} {v}" for k, v in status["versions"].items()))
st.info("The Train, Evaluate and Draw pages are coming. Until then, the command line does it all: "
        "`python -m mnist_core --help`.")
