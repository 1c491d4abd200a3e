"""AppTest for the Draw page's canvas channel as an attacker drives it: the browser reports the
drawing, so a crafted message may carry any image of any size. Only a PNG of the canvas's own size
is decoded; anything else is one message, no prediction and no traceback."""

import base64
import io

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from pages.ui.canvas import SIZE, max_png_bytes
from support import PAGES_DIR
from support.drawings import render_like_canvas

PAGE = str(PAGES_DIR / "draw.py")
NOT_PNG = "not an image the canvas makes"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 280 280\n%%EndComments\nshowpage\n%%EOF\n"


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def sent(url: str) -> dict:
    return {"drawing": {"png": url, "strokes": 1}}


def digit(side: int = SIZE) -> Image.Image:
    gray = render_like_canvas(np.pad(np.ones((20, 4)), 4), np.random.default_rng(0), side, dark_on_light=True)
    return Image.fromarray((gray * 255).astype(np.uint8)).convert("RGBA")


def as_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "state, message",
    [
        (sent(as_url(encoded(digit().convert("RGB"), "JPEG"), "image/jpeg")), NOT_PNG),
        (sent(as_url(encoded(digit().convert("RGB"), "JPEG"))), NOT_PNG),  # PNG label
        (sent(as_url(EPS)), NOT_PNG),
        (sent(as_url(encoded(digit(1000), "PNG"))), "1000x1000 pixels, not the canvas's 280x280"),
        (sent(as_url(b"\0" * (2 * max_png_bytes(SIZE)))), "larger than a 280x280 drawing can be"),
        (sent("data:image/png;base64,%%%"), NOT_PNG),
        (sent(12345), NOT_PNG),
    ],
    ids=["jpeg", "jpeg-as-png", "eps", "wrong-size", "oversized", "bad-base64", "not-text"],
)
def test_a_crafted_drawing_is_refused_with_a_message(state, message):
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state["canvas_0"] = state
    at.run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert [m.value for m in at.metric if m.label == "Prediction"] == ["–"]


def test_the_canvas_own_png_is_still_read():
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state["canvas_0"] = sent(as_url(encoded(digit(), "PNG")))
    at.run()
    assert not at.exception and not at.error
    assert [m.value for m in at.metric if m.label == "Prediction"] == ["1"]
