"""Run comparison: config diffs, summaries, the reference table, and the Runs page (AppTest)."""

from types import SimpleNamespace

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.analysis.compare import change_summary, comparison_rows, config_diff, to_csv
from mnist_core.figures.text import number
from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.learn.config import TrainConfig
from support import PAGES_DIR
from support.helpers import chart_numbers

PAGE = str(PAGES_DIR / "runs.py")


def test_config_diff_finds_exactly_the_changed_keys():
    a = TrainConfig.for_model("cnn_basic").to_dict()
    b = {**a, "weight_decay": 1e-3, "rotate": 10.0, "threads": 4}
    c = {**a, "weight_decay": 1e-3}
    diff = config_diff({"a": a, "b": b, "c": c})
    assert set(diff) == {"weight_decay", "rotate"}  # threads is how it ran, not what it trained
    assert diff["weight_decay"] == {"a": 0.0, "b": 1e-3, "c": 1e-3}
    assert config_diff({"a": a, "b": dict(a)}) == {} and config_diff({"a": a}) == {}


def test_change_summary_and_comparison_rows():
    base = SimpleNamespace(
        config={"weight_decay": 0.0, "seed": 0}, test_acc=0.9786, status="completed", id="x"
    )
    new = SimpleNamespace(
        config={"weight_decay": 1e-3, "seed": 0}, test_acc=0.9810, status="completed", id="y"
    )
    ep = lambda t, v: [{"epoch": 1, "train_acc": t, "val_acc": v}]  # noqa: E731
    text = change_summary(base, new, ep(0.99, 0.97), ep(0.985, 0.978))
    assert "weight_decay from 0.0 to 0.001" in text and "+0.24 points" in text and "less overfitting" in text
    done = SimpleNamespace(
        status="completed", test_acc=0.92, id="p", config=TrainConfig.for_model("perceptron").to_dict()
    )
    rows = comparison_rows([done])
    assert [r["model"] for r in rows] == ["Perceptron", "Deep", "Deep + L2", "CNN", "BetterCNN"]
    assert rows[0]["test_accuracy"] == 0.92 and rows[1]["test_accuracy"] is None
    assert rows[1]["config"].weight_decay == 0.0 and rows[2]["config"].weight_decay == 1e-4
    assert to_csv([{"a": 1}, {"a": 2, "b": 3}]).splitlines() == ["a,b", "1,", "2,3"]


@pytest.fixture()
def two_runs():
    jobs = JobManager()
    base = jobs.wait(
        jobs.submit(TrainConfig.from_dict(dict(model="mlp_128_64", epochs=2, limit=1500)), actor=ADMIN).id
    )
    other = jobs.wait(jobs.clone(base.id, weight_decay=1e-3, actor=ADMIN).id)
    assert base.status == other.status == "completed"
    st.cache_resource.clear()
    return jobs, base, other


def test_page_lists_runs_and_compares_a_selection(two_runs):
    jobs, base, other = two_runs
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["id"]) == {base.id, other.id}
    comparison = at.dataframe[-1].value  # limit=1500 runs are not full-data: nothing filled in yet
    assert list(comparison["test_accuracy"]) == ["—"] * 5
    assert list(comparison["run"]) == ["not run yet"] * 5  # words, not "None"
    at.multiselect(key="runs_selected").set_value([base.id, other.id]).run()
    assert not at.exception
    assert any("Comparing 2 runs" in s.value for s in at.subheader)
    # every chart says its finding, and its numbers are a table one click away
    name = f"{base.model} {base.id[-6:]}"
    records = jobs.store.epochs(base.id)
    best = max(records, key=lambda e: e["val_acc"])
    said = [c.value.replace("\\", "") for c in at.caption]  # as typed: the captions escape Markdown
    finding = f"{name}: validation accuracy"
    assert any(finding in c and f"the best was epoch {best['epoch']}" in c for c in said)
    curves, gaps = chart_numbers(at)[:2]
    assert curves["epoch"].tolist() == ["1", "2"]
    assert curves[f"{name} val accuracy"].tolist() == [f"{e['val_acc']:.2%}" for e in records]
    assert curves[f"{name} train cross-entropy loss"].tolist() == [number(e["train_loss"]) for e in records]
    assert gaps[name].tolist() == [f"{e['train_acc'] - e['val_acc']:.2%}" for e in records]
    overlaid = chart_numbers(at)[2]  # the epochs overlaid, one column each
    assert list(overlaid.columns) == ["batch within the epoch", "epoch 1", "epoch 2"]
    at.segmented_control(key="runs_view").set_value("per batch").run()
    batches = chart_numbers(at)[0]  # both runs trained the same batches: one row per batch
    assert list(batches.columns) == ["epoch", name, f"{other.model} {other.id[-6:]}"]
    assert 2 <= len(batches) <= 30 and batches["epoch"].iloc[-1] == "2"
    assert any("Changing weight_decay from 0.0 to 0.001" in i.value for i in at.info)
    assert any("What differs" in m.value for m in at.markdown)


def test_delete_needs_confirmation(two_runs):
    jobs, base, other = two_runs
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.multiselect(key="runs_selected").set_value([other.id]).run()
    delete = next(b for b in at.button if b.label == "Delete")
    assert delete.disabled
    at.checkbox(key="delete_sure").check().run()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert not at.exception and len(jobs.store.list()) == 1


def test_runs_page_shows_the_disk_and_prunes_epoch_files():
    jobs = JobManager(max_concurrent=1)
    cfg = TrainConfig.from_dict(dict(model="mlp_128_64", epochs=3, limit=1000, batch_size=50))
    run = jobs.wait(jobs.submit(cfg, actor=ADMIN).id, timeout_s=120)
    assert run.status == "completed"
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "Run store on disk" in labels and "Free on its disk" in labels
    before = float(next(m.value for m in at.metric if m.label == "Run store on disk").split()[0])
    next(b for b in at.button if b.label == "Prune epoch files of finished runs").click().run()
    assert not at.exception
    said = [s.value for s in at.success]
    kept = len(jobs.store.checkpoints(run.id))
    assert kept in (1, 2)  # best and last stay: one file when the last epoch was the best
    files = "1 epoch file" if kept == 2 else "2 epoch files"
    assert any(f"Removed {files} of 1 run and freed" in s for s in said), said
    after = float(next(m.value for m in at.metric if m.label == "Run store on disk").split()[0])
    assert after < before
