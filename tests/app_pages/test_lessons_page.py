"""AppTest for the Lessons page: predict first, run through the job API, the verdict from the store,
progress kept per learner across sessions, retry after a stopped run, redo, and class rules."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.learn.config import TrainConfig
from mnist_core.lessons import attempts as lessons
from support import APPTEST_AUTH as AUTH
from support import PAGES_DIR, ROOT

PAGE = str(PAGES_DIR / "lessons.py")
START = "Record my prediction and run the experiment"


@pytest.fixture(autouse=True)
def small_lessons(monkeypatch):
    monkeypatch.setenv(lessons.IMAGES_ENV, "500")
    yield
    jobs = JobManager()
    for run in jobs.store.list(("running", "queued")):
        jobs.stop(run.id, grace_s=2, actor=ADMIN)


def open_page(lesson: str | None = None) -> AppTest:
    st.cache_resource.clear()  # the page's JobManager must use this test's run store
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    if lesson:
        at.selectbox(key="lesson_key").set_value(lesson).run()
    return at


def button(at, label):
    return next(b for b in at.button if b.label == label)


def test_nothing_runs_before_a_prediction_then_the_verdict_comes_from_the_runs():
    at = open_page()
    assert not at.exception
    assert len(at.selectbox(key="lesson_key").options) == 8
    at.selectbox(key="lesson_key").set_value("confusion").run()
    assert button(at, START).disabled
    assert not JobManager().store.list()  # nothing queued yet
    at.radio(key="prediction_confusion_1").set_value("49").run()
    button(at, START).click().run()
    assert not at.exception and not at.error
    jobs = JobManager()
    attempt = lessons.load_attempt(jobs.store, "local", "confusion")
    assert attempt.prediction == "49" and set(attempt.runs) == {"model"}
    run = jobs.wait(attempt.runs["model"], timeout_s=120)
    assert run.status == "completed" and run.config["limit"] == 500

    at = open_page("confusion")  # a new session: the verdict is rebuilt from the store
    assert not at.exception
    assert at.radio(key="prediction_confusion_1").disabled  # the prediction is fixed now
    said = " ".join(x.value for x in [*at.success, *at.warning])
    assert "mistakes" in said and ("was right" in said or "measured otherwise" in said)
    p = lessons.progress(jobs.store, lessons_book("confusion"), attempt)
    assert p.explanation in said  # the page shows exactly what the store's numbers give
    assert ("was right" in said) is (p.outcome == "49")
    assert len(at.get("plotly_chart")) >= 2  # the pair's mistakes and their saliency
    assert "1 of 8 lessons judged" in at.get("progress")[0].proto.text

    button(at, "Redo this lesson").click().run()
    assert not at.exception
    again = lessons.load_attempt(jobs.store, "local", "confusion")
    assert again.number == 2 and not again.runs and again.past[0]["prediction"] == "49"
    assert button(at, START).disabled and at.radio(key="prediction_confusion_2").value is None
    assert any("Attempt 1" in m.value for m in at.markdown)


def lessons_book(key):
    from mnist_core.lessons.book import BY_KEY

    return BY_KEY[key]


def test_a_stopped_run_is_reported_and_retried():
    at = open_page("preprocess")
    at.radio(key="prediction_preprocess_1").set_value("crop").run()
    button(at, START).click().run()
    jobs = JobManager()
    attempt = lessons.load_attempt(jobs.store, "local", "preprocess")
    first = attempt.runs["model"]
    jobs.stop(first, actor=ADMIN)
    at = open_page("preprocess")
    assert any("stopped" in e.value for e in at.error)
    button(at, "Retry the runs that did not finish").click().run()
    assert not at.exception
    assert lessons.load_attempt(jobs.store, "local", "preprocess").runs["model"] != first


def test_a_learner_in_a_class_with_a_fixed_model_gets_the_reason_not_a_traceback():
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets = {"auth": AUTH, "classroom": {"fixed": {"model": "cnn_basic"}}}
    at.user = {
        "is_logged_in": True,
        "sub": "ada@school.example",
        "email": "ada@school.example",
        "email_verified": True,
        "name": "Ada",
    }
    at.switch_page("pages/lessons.py")
    at.run()
    at.radio(key="prediction_line_1").set_value("hidden").run()
    button(at, START).click().run()
    assert not at.exception
    assert any("cnn_basic" in e.value for e in at.error)  # the class rule, in words
    assert not JobManager().store.list()
    saved = lessons.load_attempt(JobManager().store, "ada@school.example", "line")
    assert saved.prediction == "hidden" and not saved.runs  # her progress, under her own id


def test_a_next_step_opens_train_and_runs_set_up():
    from mnist_core.lessons.lr import LR

    st.cache_resource.clear()
    at = AppTest.from_file(str(PAGES_DIR / "train.py"), default_timeout=60)
    at.session_state["train_prefill"] = {**LR.arm("good").config, "lr": 0.067, "epochs": 2}
    at.run()
    assert not at.exception
    assert any("Set up by your lesson" in i.value for i in at.info)
    assert at.selectbox(key="cfg_model").value == "deep" and at.session_state["cfg_optimizer"] == "sgd"
    assert at.session_state["cfg_lr"] == 0.05  # the nearest step of the learning-rate slider
    assert at.session_state["cfg_limit"] == 10000 and at.session_state["cfg_momentum"] == 0.0

    jobs = JobManager()
    ids = [
        jobs.store.create(TrainConfig.from_dict({**LR.arm("good").config, "seed": s}).to_dict()).id
        for s in (1, 2)
    ]
    runs_page = AppTest.from_file(str(PAGES_DIR / "runs.py"), default_timeout=60)
    runs_page.session_state["runs_prefill"] = ids
    runs_page.run()
    assert not runs_page.exception
    assert sorted(runs_page.multiselect(key="runs_selected").value) == sorted(ids)


def test_live_curves_and_progress_while_a_lesson_trains(monkeypatch):
    import time

    monkeypatch.setenv(lessons.IMAGES_ENV, "2000")
    at = open_page("overfit")  # three 25-epoch runs on 2,000 images: several seconds each
    at.radio(key="prediction_overfit_1").set_value("both").run()
    button(at, START).click().run()
    jobs = JobManager()
    attempt = lessons.load_attempt(jobs.store, "local", "overfit")
    seen = set()
    deadline = time.time() + 90
    while time.time() < deadline and len(seen) < 2:
        at = open_page("overfit")
        assert not at.exception
        texts = " ".join(p.proto.text for p in at.get("progress"))
        if "unregularised" in texts and "L2 0.02" in texts:  # one bar per arm
            seen.add("bars")
        p = lessons.progress(jobs.store, lessons_book("overfit"), attempt, judge=False)
        if p.status == "running" and len(at.get("plotly_chart")) >= 1:
            seen.add("curves")  # the batch losses of the runs so far, while they train
        if p.status != "running":
            break
        time.sleep(0.5)
    assert seen == {"bars", "curves"}


def test_the_confusion_lessons_next_step_opens_evaluate_on_that_pair():
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/lessons.py")
    at.run()
    at.selectbox(key="lesson_key").set_value("confusion").run()
    at.radio(key="prediction_confusion_1").set_value("35").run()
    button(at, START).click().run()
    jobs = JobManager()
    jobs.wait(lessons.load_attempt(jobs.store, "local", "confusion").runs["model"], timeout_s=120)
    at.run()
    p = lessons.progress(
        jobs.store, lessons_book("confusion"), lessons.load_attempt(jobs.store, "local", "confusion")
    )
    button(at, "Open this pair in the confusion matrix").click().run()
    assert not at.exception and [t.value for t in at.title] == ["Evaluate"]
    a, b = p.numbers["a"], p.numbers["b"]
    assert any(m.value.startswith(f"**True {a}, predicted {b}, most confident first**") for m in at.markdown)
