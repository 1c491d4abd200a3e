"""MNIST Lab: Streamlit entry point. Navigation and the shared sidebar; pages live in pages/."""

import streamlit as st

st.set_page_config(page_title="MNIST Lab", page_icon="✍️", layout="wide")

from pages.common import app_pages, page_shell, sidebar_runs  # noqa: E402  (page objects need the config first)

page = st.navigation(app_pages())
with st.sidebar:
    sidebar_runs()
with page_shell():
    page.run()
