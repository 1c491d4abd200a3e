"""MNIST Lab: Streamlit entry point. Sign-in, navigation and the shared sidebar; pages live in pages/."""

import sys
from contextlib import nullcontext

import streamlit as st

st.set_page_config(page_title="MNIST Lab", page_icon="✍️", layout="wide")

# The first visit after the server starts imports PyTorch, captum and the pages (about 3 s on a
# 2-core laptop): the learner is told so instead of looking at an empty page.
starting = "mnist_core.warmup" not in sys.modules
loading = "Starting MNIST Lab: loading PyTorch and the pages, once per server start..."
with st.spinner(loading) if starting else nullcontext():
    from mnist_core import warmup
    from mnist_core.paths import default_model_path
    from pages.ui.shell import app_navigation, page_shell
    from pages.ui.sidebar import sidebar_runs, watched_run
    from pages.ui.signin import current_user, signed_in_sidebar

    # once per server (mnist_core/warmup.py): the late imports now (pandas: the pages' tables),
    # then the default model's first run and evaluation in the background
    warmup.start(default_model_path(), imports=("pandas",))
user = current_user()  # LOCAL without [auth]; else the signed-in user, or the sign-in screen and a stop
page = app_navigation()  # the app's pages in the sidebar (never the files in pages/)
with st.sidebar:
    signed_in_sidebar(user)
    sidebar_runs(watched_run(page))
with page_shell():
    page.run()
