"""The class's rules on the Train page, for a signed-in learner (AppTest through app.py)."""

import streamlit as st
from streamlit.testing.v1 import AppTest

from support import APPTEST_AUTH as AUTH
from support import ROOT

CLASSROOM = {
    "teachers": ["t@school.example"],
    "exercise": "warm-up",
    "max_queued": 1,
    "at_most": {"epochs": 3, "limit": 10_000},
    "fixed": {"model": "cnn_basic"},
}


def train_page_as(email: str, name: str) -> AppTest:
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets = {"auth": AUTH, "classroom": CLASSROOM}
    at.user = {"is_logged_in": True, "sub": email, "email": email, "name": name}
    at.switch_page("pages/train.py")
    return at.run()


def start_button(at):
    return next(b for b in at.button if b.label == "Start training")


def test_a_learner_sees_the_exercise_locked_and_cannot_start_outside_it():
    at = train_page_as("ada@school.example", "Ada")
    assert not at.exception
    info = " ".join(i.value for i in at.info)
    assert "Exercise **warm-up**: at most 3 epochs; at most 10,000 training images" in info
    assert "set by your teacher" in info and "model is cnn_basic" in info
    model = at.selectbox(key="cfg_model")
    assert model.value == "cnn_basic" and model.disabled  # fixed by the exercise: shown locked
    errors = " ".join(e.value for e in at.error)
    assert "Not allowed in this class" in errors and "not all of them" in errors  # full data
    assert start_button(at).disabled
    at.number_input(key="cfg_limit").set_value(5000).run()
    at.slider(key="cfg_epochs").set_value(2).run()
    assert not at.exception and not at.error
    assert not start_button(at).disabled


def test_a_teacher_is_not_bound_by_the_exercise():
    at = train_page_as("t@school.example", "Ms T")
    assert not at.exception
    assert not any("set by your teacher" in i.value for i in at.info)
    assert not any("Not allowed in this class" in e.value for e in at.error)
    assert not start_button(at).disabled and not at.selectbox(key="cfg_model").disabled
