"""AppTest: a damaged runs.db gets one plain message and a rebuild button on any page, not a traceback."""

import os
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from support import ROOT
from support.snapshots import records_lost, snapshot
from support.store_faults import damage_db, workers_exited

REBUILD_BUTTON = "Rebuild the run store from the run folders"  # pages.ui is imported by the app only


def test_damaged_store_message_button_and_rebuild():
    root = Path(os.environ["MNIST_LAB_CHECKPOINTS"])  # this test's own folder (conftest)
    jobs = JobManager(RunStore(root), max_concurrent=1)
    cfg = TrainConfig.from_dict(dict(model="mlp_128_64", epochs=2, limit=1500, batch_size=50))
    run = jobs.wait(jobs.submit(cfg, actor=ADMIN).id, timeout_s=180)
    assert run.status == "completed", jobs.log_tail(run.id)
    workers_exited()
    before = snapshot(jobs.store)
    jobs.store.close()
    damage_db(root, "garbage")

    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    damaged = [e.value for e in at.error]
    assert len(damaged) == 1, damaged  # one message, on the page (the sidebar only points to it)
    assert "database is damaged" in damaged[0] and "run folders beside it are intact" in damaged[0]
    assert str(root / "runs.db") in damaged[0]
    assert [b.label for b in at.button] == [REBUILD_BUTTON]

    at.button(key="rebuild_run_store").click().run()  # rebuilds, then reruns with a fresh store
    assert not at.exception and not at.error
    assert any("Restored 1 run with 2 epoch records and 60 batch losses" in s.value for s in at.success)
    assert at.title[0].value == "MNIST Lab"  # the Home page, whole again
    assert records_lost(before, snapshot(RunStore(root))) == []
    at.run()  # and the message of the rebuild is shown once
    assert not at.exception and not at.error and not any("Restored" in s.value for s in at.success)


def test_a_learner_is_told_who_can_rebuild_and_sees_no_server_path(tmp_path):
    """The rebuild is the server's: a signed-in learner gets the message without the file's path and
    no button, only who can rebuild it."""
    from support import APPTEST_AUTH

    root = Path(os.environ["MNIST_LAB_CHECKPOINTS"])
    RunStore(root).close()
    damage_db(root, "garbage")
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets = {"auth": APPTEST_AUTH, "classroom": {"teachers": ["t@school.example"]}}
    email = "ada@school.example"
    at.user = {"is_logged_in": True, "sub": email, "email": email, "email_verified": True}
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "database is damaged" in at.error[0].value
    assert str(root) not in at.error[0].value
    assert not [b for b in at.button if b.label == REBUILD_BUTTON]
    assert any("A teacher or the administrator can rebuild it" in i.value for i in at.info)
