"""AppTest: the epochs overlaid and their reading, on the Train page and on the Runs page."""

import base64
import json

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.learn.config import TrainConfig
from support import PAGES_DIR

TRAIN = str(PAGES_DIR / "train.py")
RUNS = str(PAGES_DIR / "runs.py")
TITLE = "Each epoch's batch losses, overlaid"
ONE_EPOCH = "Only one epoch has finished"


@pytest.fixture()
def runs():
    """A finished two-epoch run and a finished one-epoch run (400 images each)."""
    jobs = JobManager(max_concurrent=1)
    two = jobs.submit(TrainConfig.from_dict(dict(model="mlp_128_64", epochs=2, limit=400)), actor=ADMIN)
    one = jobs.submit(TrainConfig.from_dict(dict(model="mlp_128_64", epochs=1, limit=400)), actor=ADMIN)
    two, one = jobs.wait(two.id, timeout_s=120), jobs.wait(one.id, timeout_s=120)
    assert two.status == one.status == "completed", (two.reason, one.reason)
    st.cache_resource.clear()  # the pages' JobManager on this test's store
    return jobs, two, one


def overlaid(at) -> list[dict]:
    """The convergence charts on the page (their title says so)."""
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [c for c in charts if c["layout"].get("title", {}).get("text") == TITLE]


def values(data) -> list:
    """A trace's x or y as numbers: Plotly sends arrays as base64 bytes with their dtype."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def readings(at) -> list[str]:
    return [e.value for e in (*at.info, *at.success, *at.warning) if "Has it converged?" in e.value]


def check_two_epochs(at, jobs, run, smoothing_key: str) -> None:
    assert not at.exception
    [chart] = overlaid(at)
    assert [t["name"] for t in chart["data"]] == ["epoch 1", "epoch 2"]
    bpe = run.progress["batches"]
    assert values(chart["data"][0]["x"]) == list(range(1, bpe + 1))
    [reading] = readings(at)
    assert "Epoch 2's batches sat" in reading and f"over batches 1-{bpe}" in reading, reading
    assert "validation loss" in reading
    # the page's smoothing control smooths these curves too: at 0, each curve is its raw batches
    at.slider(key=smoothing_key).set_value(0.0).run()
    [chart] = overlaid(at)
    raw = [r[2] for r in jobs.store.batch_losses(run.id)]
    assert values(chart["data"][1]["y"]) == pytest.approx(raw[bpe : 2 * bpe])


def test_train_page_overlays_the_epochs_and_reads_them(runs):
    jobs, two, one = runs
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.session_state["train_run_id"] = two.id
    at.run()
    check_two_epochs(at, jobs, two, "smoothing")
    single = AppTest.from_file(TRAIN, default_timeout=60)
    single.session_state["train_run_id"] = one.id
    single.run()
    assert not single.exception and not overlaid(single) and not readings(single)
    assert any(ONE_EPOCH in c.value for c in single.caption)


def test_runs_page_overlays_the_epochs_of_a_finished_run_and_reads_them(runs):
    jobs, two, one = runs
    at = AppTest.from_file(RUNS, default_timeout=60).run()
    assert not at.exception and not overlaid(at)  # nothing selected yet
    at.multiselect(key="runs_selected").set_value([two.id, one.id]).run()
    assert at.selectbox(key="runs_convergence_run").value == two.id
    check_two_epochs(at, jobs, two, "runs_smoothing")
    at.selectbox(key="runs_convergence_run").set_value(one.id).run()
    assert not at.exception and not overlaid(at) and not readings(at)
    assert any(ONE_EPOCH in c.value for c in at.caption)
