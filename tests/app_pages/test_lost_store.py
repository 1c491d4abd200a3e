"""AppTest: runs.db deleted while the dashboard runs: the next page run says the store's records went
missing and offers the rebuild (no empty store is created), and the rebuild brings the runs back."""

import os
import time
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from support import ROOT


def test_a_runs_db_deleted_under_the_running_dashboard_gets_the_store_message_and_the_rebuild():
    root = Path(os.environ["MNIST_LAB_CHECKPOINTS"])  # this test's own folder (conftest)
    store = RunStore(root)
    cfg = TrainConfig.from_dict(dict(model="mlp_128_64", epochs=1, limit=500)).to_dict()
    run = store.create(cfg)
    store.update(run.id, status="completed", finished=time.time(), test_acc=0.91)
    store.close()

    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()  # the store is open now
    assert not at.exception and not at.error
    (root / "runs.db").unlink()
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert "records went missing" in errors[0] and str(root / "runs.db") in errors[0]
    assert [b.label for b in at.button] == ["Rebuild the run store from the run folders"]
    assert not (root / "runs.db").exists()  # the page's reads did not start an empty store
    at.button(key="rebuild_run_store").click().run()
    assert not at.exception and not at.error
    assert any("Restored 1 run" in s.value for s in at.success)
    assert RunStore(root).get(run.id).test_acc == 0.91
