"""MNIST Lab: Streamlit entry point. Sign-in, navigation and the shared sidebar; pages live in pages/."""

import streamlit as st

st.set_page_config(page_title="MNIST Lab", page_icon="✍️", layout="wide")

from mnist_core import warmup  # noqa: E402
from mnist_core.paths import default_model_path  # noqa: E402
from pages.common import (  # noqa: E402  (page objects need the config first)
    app_pages,
    current_user,
    page_shell,
    sidebar_runs,
    signed_in_sidebar,
    watched_run,
)

# once per server (mnist_core/warmup.py): the late imports now (pandas: the pages' tables), then the
# default model's first run and evaluation in the background
warmup.start(default_model_path(), imports=("pandas",))
user = current_user()  # LOCAL without [auth]; else the signed-in user, or the sign-in screen and a stop
page = st.navigation(app_pages())
with st.sidebar:
    signed_in_sidebar(user)
    sidebar_runs(watched_run(page))
with page_shell():
    page.run()
