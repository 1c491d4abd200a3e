"""The class on its pages, for signed-in users (AppTest through app.py): the exercise's rules on the
Train page; a crafted display name stays text wherever it is shown; the cluster's addresses are a
teacher's to see, learners get counts."""

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.ray.settings import ADDRESS_ENV
from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from mnist_core.words import plain_markdown
from support import APPTEST_AUTH as AUTH
from support import ROOT
from support.browser import free_port

CLASSROOM = {
    "teachers": ["t@school.example"],
    "exercise": "warm-up",
    "max_queued": 1,
    "at_most": {"epochs": 3, "limit": 10_000},
    "fixed": {"model": "cnn_basic"},
}


def page_as(page: str, email: str, name: str, classroom: dict = CLASSROOM, **state) -> AppTest:
    """`page` through app.py, signed in as `email` (verified by the provider); `state`: session state."""
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets = {"auth": AUTH, "classroom": classroom}
    at.user = {"is_logged_in": True, "sub": email, "email": email, "email_verified": True, "name": name}
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(f"pages/{page}.py")
    return at.run()


def train_page_as(email: str, name: str) -> AppTest:
    return page_as("train", email, name)


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


# A display name as a provider may send it: an image that tells a tracker who looks at the page, a
# link, a bare address GFM would link, a colour directive, a heading on a line of its own.
CRAFTED = "![](https://tracker.example/x.png) [click](http://evil.example) www.evil.example :red[x]\n# Hi"
TEACHER = ("t@school.example", "Ms T")
NODE = "ray: 10.1.2.3 (gpu-node-1, node abcd1234)"  # what the Ray driver records for a run


@pytest.fixture
def crafted_runs(monkeypatch):
    """Mallory's queued run and completed run, in a class whose Ray cluster (a closed port) does not
    answer: nothing starts, so the queued run stays in every sidebar."""
    monkeypatch.setenv(ADDRESS_ENV, f"127.0.0.1:{free_port()}")
    store = RunStore()  # the test's store, the one the app opens
    cfg = TrainConfig.from_dict(dict(model="mlp_128_64", epochs=1, limit=300, batch_size=50)).to_dict()
    queued = store.create(cfg, owner="mallory@school.example", owner_name=CRAFTED)
    done = store.create(cfg, owner="mallory@school.example", owner_name=CRAFTED)
    store.update(done.id, status="completed", best_val_acc=0.9, node=NODE)
    return queued, done


def markdown_shown(at) -> str:
    """Every Markdown text the page and the sidebar sent (progress bars' texts included)."""
    texts = [str(e.value) for e in (*at.markdown, *at.caption, *at.success, *at.error, *at.info)]
    texts += [e.proto.text for e in at.get("progress")]
    return "\n".join(texts)


def assert_inert(markdown: str) -> None:
    """The crafted name is there, escaped as literal text; no part of it as markup."""
    assert plain_markdown(CRAFTED) in markdown
    for markup in ("![", "](", "[click]", "://", "www.evil", ":red[", "\n# Hi"):
        assert markup not in markdown.replace(plain_markdown(CRAFTED), ""), markup
        assert markup not in plain_markdown(CRAFTED), markup


def test_a_crafted_display_name_is_text_in_the_sidebar_on_train_and_on_the_wall(crafted_runs):
    queued, done = crafted_runs
    ben = ("ben@school.example", "Ben")
    at = page_as("runs", *ben, classroom={"teachers": [TEACHER[0]]})
    assert not at.exception
    sidebar = "\n".join(e.proto.text for e in at.sidebar.get("progress"))
    assert "queued" in sidebar
    assert_inert(sidebar)  # every session's sidebar lists Mallory's queued run by name
    # the Train page watching Mallory's run: "NAME's run: you can watch it, not change it."
    at = page_as("train", *ben, classroom={"teachers": [TEACHER[0]]}, train_run_id=done.id)
    assert not at.exception
    assert any("s run: you can watch it" in c.value for c in at.caption)
    assert_inert(markdown_shown(at))
    at = page_as("wall", *ben, classroom={"teachers": [TEACHER[0]]})
    assert not at.exception
    assert any("Best so far" in s.value for s in at.success)
    assert_inert(markdown_shown(at))
    assert list(at.dataframe[0].value["name"]) == [CRAFTED]  # a table cell is text as it is


@pytest.mark.parametrize("who, sees", [(("ben@school.example", "Ben"), False), (TEACHER, True)])
def test_runs_shows_a_cluster_nodes_address_to_teachers_only(crafted_runs, who, sees):
    at = page_as("runs", *who, classroom={"teachers": [TEACHER[0]]})
    assert not at.exception
    nodes = set(at.dataframe[0].value["node"])
    assert nodes == ({NODE, ""} if sees else {"a Ray cluster node", ""})


@pytest.mark.parametrize("who, sees", [(("ben@school.example", "Ben"), False), (TEACHER, True)])
def test_home_shows_the_clusters_addresses_to_teachers_only(who, sees, monkeypatch):
    """A cluster that does not answer: its address is in the teacher's message only."""
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv(ADDRESS_ENV, address)
    at = page_as("home", *who, classroom={"teachers": [TEACHER[0]]})
    assert not at.exception and len(at.error) == 1
    assert (address in at.error[0].value) is sees
    assert "does not answer" in at.error[0].value


@pytest.mark.parametrize("who, sees", [(("ben@school.example", "Ben"), False), (TEACHER, True)])
def test_home_lists_the_clusters_nodes_to_teachers_and_counts_to_learners(who, sees, monkeypatch):
    """A cluster that answers (its status stands in for a real one: tests/ray has those)."""
    node = dict(cpus=4.0, gpus=0.0, head=False, alive=True)
    nodes = [
        {**node, "name": "head", "address": "10.1.2.2", "id": "aaaa1111", "head": True},
        {**node, "name": "gpu-node-1", "address": "10.1.2.3", "id": "abcd1234", "cpus": 8.0, "gpus": 1.0},
    ]
    status = dict(
        backend="ray", address="10.1.2.2:6379", error=None, nodes=nodes, cpus=12.0, gpus=1.0, max_runs=2
    )
    monkeypatch.setattr("mnist_core.jobs.executor.backend_status", lambda address=None: status)
    at = page_as("home", *who, classroom={"teachers": [TEACHER[0]]})
    assert not at.exception
    cluster = next(s.value for s in at.success if "Ray cluster" in s.value)
    assert "2 nodes, 12 CPUs, 1 GPU" in cluster
    tables = [d.value for d in at.dataframe]
    shown = cluster + " ".join(t.to_csv() for t in tables if isinstance(t, pd.DataFrame))
    assert ("10.1.2.2" in shown) is sees and ("10.1.2.3" in shown) is sees
    assert len(tables) == (1 if sees else 0)
