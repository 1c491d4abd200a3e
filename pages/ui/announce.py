"""A polite live region: what a screen reader says without moving the learner's focus.

One region for the whole browser tab (`#mnist-lab-announcer`, role "status", aria-live "polite",
visually hidden), made once outside Streamlit's own elements, so it stays in the document across
reruns and a screen reader notices when its text changes. Pages announce an outcome (an epoch done,
a prediction), never every batch: the same text twice says nothing new."""

from __future__ import annotations

import json

import streamlit as st

_JS = """<script>
(() => {
  let region = document.getElementById("mnist-lab-announcer");
  if (!region) {
    region = document.createElement("div");
    region.id = "mnist-lab-announcer";
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    region.setAttribute("aria-atomic", "true");
    region.style.cssText = "position:absolute;width:1px;height:1px;margin:-1px;padding:0;" +
      "overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0";
    document.body.appendChild(region);
  }
  const text = %s;
  if (region.textContent !== text) region.textContent = text;
})();
</script>"""


def announce(text: str) -> None:
    """Have the browser's screen reader say `text` politely (once: repeating it says nothing)."""
    st.html(_JS % json.dumps(text), unsafe_allow_javascript=True)
