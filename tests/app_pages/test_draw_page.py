"""AppTest for the Draw page: a drawing injected into the canvas state is read and explained."""

import base64
import io

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from support import PAGES_DIR
from support.drawings import render_like_canvas

PAGE = str(PAGES_DIR / "draw.py")


def canvas_state(gray: np.ndarray) -> dict:
    """What the canvas component reports for a drawing: a PNG data URL of the RGBA image."""
    rgba = Image.fromarray((gray * 255).astype(np.uint8)).convert("RGBA")
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url}, "backgroundFit": None}


@pytest.fixture()
def at():
    st.cache_resource.clear()
    return AppTest.from_file(PAGE, default_timeout=90)


def test_empty_canvas_asks_for_a_digit_without_calling_the_model(at):
    at.run()
    assert not at.exception
    assert any("Draw a digit on the canvas" in i.value for i in at.info)
    assert not any(m.label == "Prediction" for m in at.metric)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_drawn_test_digit_is_predicted_and_explained(at, mnist, index):
    gray = render_like_canvas(
        mnist.test_images[index].numpy(), np.random.default_rng(index), dark_on_light=True
    )
    at.session_state["canvas_0"] = canvas_state(gray)
    at.run()
    assert not at.exception
    metric = next(m for m in at.metric if m.label == "Prediction")
    assert metric.value == str(int(mnist.test_labels[index]))
    captions = " ".join(c.value for c in at.caption)
    assert "Gradient magnitude" in captions and "black image" in captions  # one sentence per method
    assert len(saliency_maps(at)) == 4  # one picture per method (better_cnn: Grad-CAM too)


def test_switching_stages_off_and_probing_keeps_the_page_working(at, mnist):
    gray = render_like_canvas(mnist.test_images[0].numpy(), np.random.default_rng(0), dark_on_light=True)
    at.session_state["canvas_0"] = canvas_state(gray)
    at.run()
    at.radio(key="pp_invert").set_value("no")
    at.toggle(key="pp_center").set_value(False)
    at.slider(key="probe_rotate").set_value(30)
    at.toggle(key="sal_sanity").set_value(True)
    at.run()
    assert not at.exception
    assert any(m.label == "Prediction" for m in at.metric)
    assert any("random weights" in c.value for c in at.caption)
    assert len(saliency_maps(at)) == 8  # and each method's map from random weights below it
    at.multiselect(key="sal_methods").set_value(["saliency"]).run()
    assert not at.exception and len(saliency_maps(at)) == 2


def saliency_maps(at) -> list:
    """The saliency pictures (st.image, one per map; the stage strip has five captioned ones)."""
    return [im for im in at.get("image") if not any(im.captions)]
