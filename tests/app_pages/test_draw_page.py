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
    """What the canvas component (pages/ui/canvas.py) reports for a drawing: a PNG data URL of it."""
    buf = io.BytesIO()
    Image.fromarray((gray * 255).astype(np.uint8)).convert("RGBA").save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"drawing": {"png": url, "strokes": 1}}


@pytest.fixture()
def at():
    st.cache_resource.clear()
    return AppTest.from_file(PAGE, default_timeout=90)


def test_empty_canvas_asks_for_a_digit_without_calling_the_model(at):
    at.run()
    assert not at.exception
    assert any("Draw a digit on the canvas" in i.value for i in at.info)
    assert [m.value for m in at.metric if m.label == "Prediction"] == ["–"]  # no digit read yet


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


def test_a_digit_opened_from_another_page_is_read_until_back_to_drawing(at, mnist):
    at.session_state["draw_digit"] = mnist.test_images[0].numpy() / 255.0
    at.session_state["draw_digit_from"] = "Evaluate"
    at.run()
    assert next(m for m in at.metric if m.label == "Prediction").value == str(int(mnist.test_labels[0]))
    assert any("opened from the Evaluate page" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Back to drawing").click().run()
    assert not at.exception and "draw_digit" not in at.session_state
    assert [m.value for m in at.metric if m.label == "Prediction"] == ["–"]


def test_a_drawing_that_is_not_an_image_is_reported(at):
    at.session_state["canvas_0"] = {"drawing": {"png": "data:image/png;base64,bm90IGEgcG5n", "strokes": 1}}
    at.run()
    assert not at.exception and any("not an image" in e.value for e in at.error)
    assert [m.value for m in at.metric if m.label == "Prediction"] == ["–"]


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
