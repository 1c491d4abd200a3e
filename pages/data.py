"""Data: placeholder until its issue lands."""
import streamlit as st

from pages.common import ensure_app_shell

ensure_app_shell()
st.title("Data")
st.info("The data explorer is coming: class balance per split, samples per class, mean images, pixel histograms and an augmentation preview.")
