"""Links that can be shared: the address names the run and the confusion cell a view shows, a copied
address opens the same view, and a bad value in it is one message and the default (AppTest)."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.learn.config import TrainConfig
from pages.ui.links import parse_cell
from support import PAGES_DIR

EVALUATE = str(PAGES_DIR / "evaluate.py")


def page(**params) -> AppTest:
    st.cache_resource.clear()
    at = AppTest.from_file(EVALUATE, default_timeout=120)
    at.query_params.update(params)
    return at.run()


@pytest.fixture()
def run_id():
    jobs = JobManager()
    run = jobs.wait(
        jobs.submit(TrainConfig.from_dict(dict(model="mlp_128_64", epochs=1, limit=1500)), actor=ADMIN).id
    )
    assert run.status == "completed", jobs.log_tail(run.id)
    return run.id


def test_cells_are_two_digits():
    assert parse_cell("4-9") == (4, 9) and parse_cell("0-0") == (0, 0)
    for bad in ("", "4", "4-", "10-1", "a-b", "4-9-1", "-1-2", " 4-9"):
        assert parse_cell(bad) is None, bad


def test_a_copied_address_opens_the_same_run_and_cell(run_id):
    at = page(run=run_id, cell="4-9")
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.selectbox(key="eval_model").value.startswith(f"Run {run_id[-6:]}")
    assert any("True 4, predicted 9" in md.value for md in at.markdown)
    assert at.query_params["run"] == run_id  # the address still says what is shown
    # picking another model, then another cell, moves the address with the view
    default = next(o for o in at.selectbox(key="eval_model").options if not o.startswith("Run "))
    at.selectbox(key="eval_model").set_value(default).run()
    assert not at.exception and "run" not in at.query_params
    pair = next(b for b in at.button if " read as " in b.label)
    pair.click().run()
    true, pred = (int(v) for v in pair.label.split(":")[0].split(" read as "))
    assert at.query_params["cell"] == f"{true}-{pred}"
    again = page(**at.query_params)  # the same address in a fresh session: the same view
    assert any(f"True {true}, predicted {pred}" in md.value for md in again.markdown)


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(run="../../etc/passwd"), "names no valid run"),
        (dict(run="20990101-000000-gone00"), "has no checkpoint yet (or was deleted)"),
        (dict(cell="4-x"), "names no cell of the matrix"),
    ],
)
def test_a_bad_or_stale_address_is_one_message_and_the_default(params, message):
    at = page(**params)
    assert not at.exception
    assert [w.value for w in at.warning if message in w.value] and len(at.warning) == 1
    assert next(m for m in at.metric if m.label == "Accuracy").value.endswith("%")  # the default model
