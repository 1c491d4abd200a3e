"""Draw: placeholder until its issue lands."""
import streamlit as st

from pages.common import ensure_app_shell

ensure_app_shell()
st.title("Draw")
st.info("The drawing canvas is coming: draw a digit and see the prediction, the preprocessing steps and saliency maps.")
