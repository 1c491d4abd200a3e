"""MNIST Lab: Streamlit entry point. Navigation only; each page lives in pages/."""
import streamlit as st

st.set_page_config(page_title="MNIST Lab", page_icon="✍️", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
]
st.navigation(pages).run()
