"""MNIST Lab: Streamlit entry point. Navigation and the shared sidebar; pages live in pages/."""
import streamlit as st

from pages.common import page_shell, sidebar_runs

st.set_page_config(page_title="MNIST Lab", page_icon="✍️", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/grid_on:"),
    st.Page("pages/models.py", title="Models", icon=":material/account_tree:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/stacked_line_chart:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    st.Page("pages/inside.py", title="Inside", icon=":material/layers:"),
    st.Page("pages/draw.py", title="Draw", icon=":material/draw:"),
]
page = st.navigation(PAGES)
with st.sidebar:
    sidebar_runs()
with page_shell():
    page.run()
