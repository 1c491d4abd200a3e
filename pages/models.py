"""Models: placeholder until its issue lands."""
import streamlit as st

from pages.common import ensure_app_shell

ensure_app_shell()
st.title("Models")
st.info("The model zoo is coming: every architecture's layer diagram, parameters, FLOPs and best accuracy so far. Until then `python -m mnist_core models` lists them.")
