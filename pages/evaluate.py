"""Evaluate: placeholder until its issue lands."""
import streamlit as st

from pages.common import ensure_app_shell

ensure_app_shell()
st.title("Evaluate")
st.info("The evaluation page is coming: an interactive confusion matrix, misclassified digits and per-class metrics. Until then `python -m mnist_core evaluate CHECKPOINT` prints them.")
