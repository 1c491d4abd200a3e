"""Runs: placeholder until its issue lands."""
import streamlit as st

from pages.common import ensure_app_shell

ensure_app_shell()
st.title("Runs")
st.info("Run comparison is coming: overlaid curves, config diffs and 'change one thing' experiments. Until then `python -m mnist_core runs` lists every run.")
