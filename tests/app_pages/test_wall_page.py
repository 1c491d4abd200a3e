"""The Class wall page (AppTest): every learner's completed runs, the exercise filter, the teacher's rules."""

import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.classroom import ClassPolicy
from mnist_core.jobs.identity import User
from mnist_core.jobs.manager import JobManager
from mnist_core.learn.config import TrainConfig
from support import PAGES_DIR

PAGE = str(PAGES_DIR / "wall.py")
ADA, BEN = User("ada@school.example", "Ada", "learner"), User("ben@school.example", "Ben", "learner")
TEACHER = User("t@school.example", "Ms T", "teacher")


def tiny(**kw):
    return TrainConfig.from_dict(dict(model="mlp_128_64", epochs=1, limit=300, batch_size=50, **kw))


def test_the_wall_lists_runs_by_owner_filters_by_exercise_and_saves_the_rules():
    jobs = JobManager(max_concurrent=1)
    jobs.wait(jobs.submit(tiny(), actor=ADA).id, timeout_s=120)
    jobs.set_policy(ClassPolicy(exercise="tiny data", at_most={"limit": 1000}), actor=TEACHER)
    jobs.wait(jobs.submit(tiny(seed=1), actor=BEN).id, timeout_s=120)
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["name"]) == ["Ben"]  # the current exercise is shown first
    assert not table.astype(str).apply(lambda col: col.str.contains("@")).any().any()  # no e-mails
    at.selectbox(key="wall_exercise").select("all runs").run()
    assert sorted(at.dataframe[0].value["name"]) == ["Ada", "Ben"]
    # the local user (no sign-in) is the teacher: the rules form is there and saves
    at.number_input[0].set_value(2)  # inside a form: sent with the submit button
    next(b for b in at.button if b.label == "Save the rules").click().run()
    assert not at.exception and any("Saved" in s.value for s in at.success)
    assert jobs.policy().max_queued == 2 and jobs.policy().exercise == "tiny data"
