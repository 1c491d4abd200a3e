"""The fault guard (pages/ui/faults.py) through app.py (AppTest): a bug or a machine fault on a page is
one plain message; its details (the exception, the traceback, server paths) are shown to a teacher
or the administrator only, never to a learner; the server's log keeps them for everyone's faults."""

import logging

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from support import APPTEST_AUTH as AUTH
from support import ROOT

SECRET_PATH = "/srv/mnist-lab/private/store/runs.db"  # what a learner must never see
TEACHER, LEARNER = "t@school.example", "ada@school.example"


def home_as(email: str | None) -> AppTest:
    """Home through app.py, as the local user (None) or signed in as `email`."""
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if email:
        at.secrets = {"auth": AUTH, "classroom": {"teachers": [TEACHER]}}
        at.user = {"is_logged_in": True, "sub": email, "email": email, "email_verified": True}
    return at.run()


def shown(at) -> str:
    return " ".join(str(e.value) for e in (*at.error, *at.markdown, *at.caption, *at.exception))


@pytest.fixture
def bug(monkeypatch):
    """A bug in what Home calls: an exception whose message holds a server path."""

    def broken(*args, **kwargs):
        raise RuntimeError(f"cannot parse {SECRET_PATH}")

    monkeypatch.setattr("mnist_core.learn.system.environment_status", broken)


@pytest.mark.usefixtures("bug")
def test_a_learner_sees_a_bug_as_one_plain_sentence_and_the_log_keeps_the_traceback(caplog):
    caplog.set_level(logging.ERROR, logger="mnist_lab.faults")
    at = home_as(LEARNER)
    assert not at.exception  # no exception element: no type, message or stack
    assert len(at.error) == 1 and "Something went wrong on this page" in at.error[0].value
    assert "details are in the server's log" in at.error[0].value
    assert SECRET_PATH not in shown(at) and "RuntimeError" not in shown(at)
    assert "ACTIVE RUNS" in " ".join(c.value for c in at.sidebar.caption)  # the rest of the app runs
    assert SECRET_PATH in caplog.text and "Traceback" in caplog.text and "RuntimeError" in caplog.text


@pytest.mark.parametrize("who", [TEACHER, None], ids=["teacher", "local admin"])
@pytest.mark.usefixtures("bug")
def test_a_teacher_or_the_admin_sees_the_bugs_details(who, caplog):
    caplog.set_level(logging.ERROR, logger="mnist_lab.faults")
    at = home_as(who)
    assert len(at.error) == 1 and "Something went wrong on this page" in at.error[0].value
    assert len(at.exception) == 1
    assert SECRET_PATH in at.exception[0].message and at.exception[0].stack_trace  # the traceback
    assert SECRET_PATH in caplog.text


@pytest.mark.parametrize("who, sees_path", [(LEARNER, False), (TEACHER, True)])
def test_a_machine_faults_path_is_shown_to_teachers_only(who, sees_path, monkeypatch, caplog):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", SECRET_PATH)

    monkeypatch.setattr("mnist_core.learn.system.environment_status", full)
    caplog.set_level(logging.ERROR, logger="mnist_lab.faults")
    at = home_as(who)
    assert not at.exception
    assert len(at.error) == 1 and "free some space" in at.error[0].value
    assert (SECRET_PATH in at.error[0].value) is sees_path
    assert SECRET_PATH in caplog.text


@pytest.mark.parametrize("who", [LEARNER, TEACHER, None], ids=["learner", "teacher", "local admin"])
def test_the_data_folder_is_named_to_a_teacher_or_the_admin_only(who):
    """Home says whether MNIST is there; where on the server it lies is for a teacher or the admin."""
    from mnist_core.paths import data_dir

    at = home_as(who)
    assert not at.exception
    said = " ".join(e.value for e in (*at.success, *at.warning))
    assert "MNIST" in said
    assert (str(data_dir()) in said) == (who != LEARNER), said
