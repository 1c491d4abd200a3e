"""AppTest: the app shell and the Home page run and report the machine's state."""

import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.learn.config import TrainConfig
from support import ROOT
from support.helpers import wait_until


def test_home_page_shows_status():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "MNIST Lab"
    assert any("MNIST found" in s.value for s in at.success)
    # the label carries the words so the value stays short enough to show whole
    assert any("test accuracy" in m.label and m.value == "99.56%" for m in at.metric)
    [precision] = [m for m in at.metric if m.label == "Training precision"]  # precision="auto" decided
    native = any(f in open("/proc/cpuinfo").read() for f in ("avx512_bf16", "amx_bf16"))
    assert precision.value == ("bf16" if native else "fp32")
    reason = "This CPU runs bf16 natively (" if native else "This CPU has no native bf16 ("
    assert any(c.value.startswith(reason) for c in at.caption)  # "CPU", not "cpu"


def test_home_page_explains_missing_data(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("MNIST_DATA_DIR" in w.value for w in at.warning)


def test_the_sidebar_tracks_active_runs_and_names_the_one_the_train_page_shows_live():
    """On any page an active run has a progress bar in the sidebar (redrawn on a timer); on the Train
    page showing that run live, the sidebar names it instead (no timer of its own to stand still)."""
    st.cache_resource.clear()  # the app's job manager on this test's store
    jobs = JobManager()
    idle = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert "None. Start one on the Train page." in [c.value for c in idle.sidebar.caption]
    run = jobs.submit(
        TrainConfig.from_dict(dict(model="cnn_basic", epochs=3, limit=20000, batch_size=32)), actor=ADMIN
    )
    try:
        wait_until(lambda: jobs.get(run.id).status == "running", timeout_s=60)
        home = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert not home.exception
        [bar] = [p.proto.text for p in home.sidebar.get("progress")]
        assert f"**cnn_basic** `{run.id[-6:]}`" in bar and "epoch" in bar, bar

        train = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        train.session_state["train_run_id"] = run.id  # the run this session's Train page shows
        train.switch_page("pages/train.py").run()
        assert not train.exception
        assert any(f"Run `{run.id}` · cnn_basic · running" in s.value for s in train.subheader)
        assert train.sidebar.get("progress") == []
        [live] = [c.value for c in train.sidebar.caption if run.id[-6:] in c.value]
        assert live.startswith("**cnn_basic**") and live.endswith("· running, shown live on this page")
    finally:
        jobs.stop(run.id, grace_s=2, actor=ADMIN)


def test_start_on_the_train_page_names_the_new_run_in_the_sidebar_at_once():
    """Start submits in its callback, before the script run that follows the click: the sidebar,
    drawn above the page, already lists the new run in that run (it used to read "None" until its
    idle timer, up to 10 s later)."""
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/train.py").run()
    assert "None. Start one on the Train page." in [c.value for c in at.sidebar.caption]
    at.number_input(key="cfg_limit").set_value(30000)  # still training when that script run ends
    at.slider(key="cfg_epochs").set_value(5)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    run_id = at.session_state["train_run_id"]
    try:
        assert any(f"Run `{run_id}` · fast_cnn · running" in s.value for s in at.subheader)
        [live] = [c.value for c in at.sidebar.caption if run_id[-6:] in c.value]
        assert live.startswith("**fast_cnn**") and "shown live on this page" in live
        assert "None. Start one on the Train page." not in [c.value for c in at.sidebar.caption]
    finally:
        JobManager().stop(run_id, grace_s=2, actor=ADMIN)
