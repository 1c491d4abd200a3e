"""The class's one visibility rule (mnist_core.jobs.classroom): runs are seen by all, acted on by
their owner or a teacher; predictions, drawings and e-mail addresses stay with their owner."""

import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs import classroom
from mnist_core.jobs.identity import ADMIN, LOCAL, User
from mnist_core.jobs.store import RunStore
from mnist_core.lessons import attempts as lessons
from mnist_core.lessons.book import LESSONS
from support import APPTEST_AUTH as AUTH
from support import ROOT

ADA = User("ada@school.example", "Ada", "learner")
BEN = User("ben@school.example", "Ben", "learner")
TEACHER = User("t@school.example", "Ms T", "teacher")


def _run(store: RunStore, owner: User):
    return store.create({"model": "mlp_128_64", "epochs": 1}, owner=owner.id, owner_name=owner.name)


def test_runs_are_seen_by_all_and_acted_on_by_owner_teacher_or_admin(tmp_path):
    store = RunStore(tmp_path)
    adas = _run(store, ADA)
    assert all(classroom.sees_run(adas, who) for who in (ADA, BEN, TEACHER, ADMIN, LOCAL))
    assert classroom.can_act(adas, ADA) and classroom.can_act(adas, TEACHER)
    assert classroom.can_act(adas, ADMIN) and classroom.can_act(adas, LOCAL)
    assert not classroom.can_act(adas, BEN)
    try:
        classroom.check_control(adas, BEN, "stop")
    except classroom.NotAllowed as exc:
        assert "belongs to Ada" in str(exc) and "only they or a teacher" in str(exc)
    else:  # pragma: no cover - the rule failed
        raise AssertionError("a classmate could stop Ada's run")


def test_personal_things_are_the_owners_and_the_teachers_only():
    assert classroom.sees_personal(ADA.id, ADA)
    assert classroom.sees_personal(ADA.id, TEACHER)
    assert not classroom.sees_personal(ADA.id, BEN)


def test_pages_follow_only_the_viewers_own_runs(tmp_path):
    store = RunStore(tmp_path)
    adas, bens = _run(store, ADA), _run(store, BEN)
    runs = store.list()
    assert [r.id for r in classroom.reattaches_to(runs, BEN)] == [bens.id]
    assert {r.id for r in classroom.reattaches_to(runs, LOCAL)} == {adas.id, bens.id}


def test_a_classmates_lesson_prediction_is_not_shown_on_the_lessons_page():
    store = RunStore()  # the test session's store, the one the page opens
    adas = lessons.load_attempt(store, ADA.id, "line")
    adas.prediction = "hidden"
    lessons.save_attempt(store, adas)

    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets = {"auth": AUTH, "classroom": {}}
    at.user = {"is_logged_in": True, "sub": BEN.id, "email": BEN.id, "email_verified": True, "name": "Ben"}
    at.switch_page("pages/lessons.py")
    at.run()
    assert not at.exception
    assert at.radio(key="prediction_line_1").value is None  # Ben's own, empty attempt
    shown = " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.dataframe))
    assert ADA.id not in shown and "Ada" not in shown
    rows = lessons.overview(store, BEN.id, list(LESSONS))
    assert all(r["state"] == "not started" for r in rows)
