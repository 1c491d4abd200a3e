"""Error analysis in the core, the evaluation cache, and the Evaluate page (AppTest)."""

import subprocess

import pytest
import streamlit as st
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from streamlit.testing.v1 import AppTest

from mnist_core.analysis import cache as analysis_cache
from mnist_core.jobs.identity import ADMIN
from mnist_core.learn.checkpoints import save_checkpoint
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.evaluate import Analysis, confusion_matrix
from mnist_core.learn.models import build_model
from mnist_core.paths import DEFAULT_MODEL_ENV, default_model_path
from support import PAGES_DIR
from support.tmpfs import require_mount, tmpfs

PAGE = str(PAGES_DIR / "evaluate.py")


def test_confusion_matrix_equals_sklearns():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (5000,), generator=g)
    pred = torch.where(torch.rand(5000, generator=g) < 0.8, y, torch.randint(0, 10, (5000,), generator=g))
    assert (
        confusion_matrix(y, pred).tolist()
        == sk_confusion(y.numpy(), pred.numpy(), labels=list(range(10))).tolist()
    )


def toy() -> Analysis:
    y = torch.tensor([3, 3, 3, 5, 5, 8])
    probs = torch.full((6, 10), 0.01)
    for i, (p, c) in enumerate([(3, 0.9), (3, 0.6), (5, 0.7), (3, 0.95), (5, 0.8), (3, 0.5)]):
        probs[i, p] = c
    pred = probs.argmax(1)
    return Analysis(y, pred, probs, confusion_matrix(y, pred), (pred == y).float().mean().item())


def test_cells_pairs_and_error_gallery_order():
    a = toy()
    assert a.cell(3, 3).tolist() == [1, 0]  # correct digits: least sure first
    assert a.cell(5, 3).tolist() == [3]
    assert a.most_confused(3) == [(3, 5, 1), (5, 3, 1), (8, 3, 1)]
    assert a.errors().tolist() == [3, 2, 5]  # most confident mistakes first
    assert a.errors(true=8).tolist() == [5] and a.errors(pred=5).tolist() == [2]


def test_the_default_models_evaluation_is_cached(mnist, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_LAB_CACHE", str(tmp_path / "cache"))  # no evaluation on disk yet
    analysis_cache.clear_cache()
    calls = []
    real = analysis_cache.analyse
    monkeypatch.setattr(analysis_cache, "analyse", lambda *a: calls.append(1) or real(*a))
    first = analysis_cache.evaluate_checkpoint(default_model_path(), "test", mnist)
    again = analysis_cache.evaluate_checkpoint(default_model_path(), "test", mnist)
    assert (
        first is again and len(calls) == 1
    )  # the disk cache and the val split: tests/unit/test_analysis_cache.py
    assert first.accuracy >= 0.993 and sum(r["support"] for r in first.per_class) == 10000


@pytest.fixture()
def at():
    st.cache_resource.clear()
    return AppTest.from_file(PAGE, default_timeout=120).run()


def test_page_shows_accuracy_pairs_and_opens_a_cell(at):
    assert not at.exception
    acc = next(m for m in at.metric if m.label == "Accuracy")
    assert acc.value == "99.56%"
    pair = next(b for b in at.button if " read as " in b.label)
    pair.click().run()
    true, pred = (int(v) for v in pair.label.split(":")[0].split(" read as "))
    assert any(f"True {true}, predicted {pred}" in md.value for md in at.markdown)
    assert at.session_state["cm_cell"] == (true, pred)
    at.selectbox(key="err_true").set_value(9).run()
    assert not at.exception and any("Misclassified digits" in md.value for md in at.markdown)
    shown = gallery_captions(at)[-1]  # the mistakes gallery: pictures captioned true -> predicted
    assert 0 < len(shown) <= 24 and all(c.startswith("9→") for c in shown)


def gallery_captions(at) -> list[list[str]]:
    """The captions of each st.image list on the page (one list per gallery)."""
    return [el.captions for el in at.get("image") if len(el.captions) > 1]


def test_the_page_works_on_a_cache_disk_that_refuses_writes(tmp_path, monkeypatch):
    """A read-only cache folder: the page evaluates, shows, and evaluates again on a restart."""
    require_mount()
    torch.manual_seed(0)
    model_path = save_checkpoint(
        build_model("mlp_128_64"), TrainConfig.for_model("mlp_128_64"), tmp_path / "m.pt"
    )
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(model_path))  # a small model: quick to evaluate
    with tmpfs(1) as mnt:
        (mnt / "cache").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        monkeypatch.setenv("MNIST_LAB_CACHE", str(mnt / "cache"))
        for _ in range(2):  # the second time as after a restart: nothing in memory, nothing on disk
            analysis_cache.clear_cache()
            st.cache_resource.clear()
            at = AppTest.from_file(PAGE, default_timeout=120).run()
            assert not at.exception and not at.error
            assert next(m for m in at.metric if m.label == "Accuracy").value.endswith("%")
            assert gallery_captions(at) and list((mnt / "cache").iterdir()) == []


def test_a_deleted_run_and_a_corrupt_checkpoint_give_clear_messages(at, tmp_path, monkeypatch):
    at.session_state["selected_run"] = "20990101-000000-gone00"
    at.run()
    assert any("has no checkpoint yet (or was deleted)" in w.value for w in at.warning)
    bad = tmp_path / "default.pt"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(bad))
    st.cache_resource.clear()
    fresh = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not fresh.exception
    assert any("cannot be evaluated" in e.value for e in fresh.error)


def test_time_travel_and_the_difference_between_two_epochs(tmp_path):
    from mnist_core.jobs.manager import JobManager
    from mnist_core.learn.config import TrainConfig

    jobs = JobManager()
    run = jobs.wait(
        jobs.submit(TrainConfig.from_dict(dict(model="mlp_128_64", epochs=2, limit=1500)), actor=ADMIN).id
    )
    assert run.status == "completed", jobs.log_tail(run.id)
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["selected_run"] = run.id
    at.run()
    assert not at.exception and at.selectbox(key="eval_model").value.startswith(f"Run {run.id[-6:]}")
    at.select_slider(key="eval_epoch").set_value(1).run()
    epoch1 = next(m for m in at.metric if m.label == "Accuracy").value
    at.select_slider(key="eval_epoch").set_value(2).run()
    at.segmented_control(key="cm_view").set_value("difference").run()
    at.select_slider(key="cm_other").set_value(1).run()
    assert not at.exception
    assert any("Counts of epoch 2 minus epoch 1" in c.value for c in at.caption)
    assert epoch1 != next(m for m in at.metric if m.label == "Accuracy").value
