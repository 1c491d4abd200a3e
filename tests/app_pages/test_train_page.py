"""AppTest for the Train page: widgets map to the config, validation shows inline, runs attach."""

import json

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.learn.config import TrainConfig
from support import PAGES_DIR

PAGE = str(PAGES_DIR / "train.py")


@pytest.fixture()
def at():
    st.cache_resource.clear()  # the page's JobManager must use this test's run store
    yield AppTest.from_file(PAGE, default_timeout=60).run()
    for run in JobManager().store.list(("running", "queued")):
        JobManager().stop(run.id, grace_s=2, actor=ADMIN)


def errors(at):
    return [e.value for e in at.error]


def start_button(at):
    return next(b for b in at.button if b.label == "Start training")


def test_defaults_come_from_the_registry_preset(at):
    assert not at.exception and not errors(at)
    preset = TrainConfig.for_model("fast_cnn")
    assert at.selectbox(key="cfg_model").value == "fast_cnn"
    for name in ("lr", "batch_size", "epochs", "schedule", "optimizer"):
        assert at.session_state[f"cfg_{name}"] == getattr(preset, name)
    at.selectbox(key="cfg_model").set_value("mlp_128_64").run()
    assert at.session_state["cfg_batch_size"] == 32 and at.session_state["cfg_weight_decay"] == 1e-4
    assert at.session_state["cfg_dropout"] == 0.2 and at.session_state["cfg_epochs"] == 10
    assert any("421,642" == m.value for m in at.metric) is False  # mlp, not cnn_basic
    at.selectbox(key="cfg_model").set_value("cnn_basic").run()
    assert any(m.value == "421,642" for m in at.metric)


@pytest.mark.parametrize(
    "change,needle",
    [
        (
            lambda at: (
                at.selectbox(key="cfg_optimizer").set_value("adam"),
                at.checkbox(key="cfg_nesterov").check(),
            ),
            "Nesterov momentum needs the sgd optimizer",
        ),
        (
            lambda at: (
                at.slider(key="cfg_patience").set_value(3),
                at.slider(key="cfg_val_fraction").set_value(0.0),
            ),
            "early stopping (patience > 0) needs a validation split",
        ),
    ],
)
def test_invalid_combination_is_one_inline_message_and_start_refuses(at, change, needle):
    change(at)
    at.run()
    assert len(errors(at)) == 1 and needle in errors(at)[0]
    assert start_button(at).disabled


def test_widgets_map_to_the_started_runs_config(at):
    at.selectbox(key="cfg_model").set_value("mlp_128_64").run()
    at.select_slider(key="cfg_lr").set_value(3e-3)
    at.select_slider(key="cfg_batch_size").set_value(128)
    at.slider(key="cfg_epochs").set_value(1)
    at.select_slider(key="cfg_weight_decay").set_value(1e-3)
    at.slider(key="cfg_dropout").set_value(0.35)
    at.slider(key="cfg_label_smoothing").set_value(0.1)
    at.selectbox(key="cfg_schedule").set_value("cosine")
    at.number_input(key="cfg_limit").set_value(600)
    at.number_input(key="cfg_seed").set_value(7)
    at.toggle(key="aug_on_rotate").set_value(True).run()
    at.slider(key="aug_rotate").set_value(12.0)
    at.run()
    assert not errors(at)
    start_button(at).click().run()
    assert not at.exception
    run_id = at.session_state["train_run_id"]
    run = JobManager().store.get(run_id)
    cfg = TrainConfig.from_dict(run.config)
    assert (cfg.model, cfg.lr, cfg.batch_size, cfg.epochs, cfg.weight_decay) == (
        "mlp_128_64",
        3e-3,
        128,
        1,
        1e-3,
    )
    assert (cfg.label_smoothing, cfg.schedule, cfg.limit, cfg.seed, cfg.rotate) == (
        0.1,
        "cosine",
        600,
        7,
        12.0,
    )
    assert cfg.translate == 0.0 and cfg.model_args == {"dropout": 0.35, "batchnorm": False}
    assert any(run_id in s.value for s in at.subheader)
    done = JobManager().wait(run_id, timeout_s=120)
    assert done.status == "completed", JobManager().log_tail(run_id)
    assert cfg.precision == "auto" and done.precision.split(" · ")[0] in ("bf16", "fp32")
    at.run()  # what it trained in, and why, beside the run's heading
    assert any(c.value == f"Precision: {done.precision}" for c in at.caption)


def test_a_new_session_reattaches_to_the_running_run(at, tmp_path):
    run = JobManager().submit(
        TrainConfig.from_dict(dict(model="cnn_basic", epochs=2, limit=20000)), actor=ADMIN
    )
    second = AppTest.from_file(PAGE, default_timeout=60).run()  # a reload or another tab
    assert second.session_state["train_run_id"] == run.id
    assert any(f"{run.id}" in s.value and "running" in s.value for s in second.subheader)
    assert any(b.label == "Stop" for b in second.button)
    assert len(JobManager().store.list()) == 1  # nothing started twice


def epoch_curves(view) -> list[dict]:
    """The per-epoch charts on the page (their subplot titles say so)."""
    charts = [json.loads(c.proto.spec) for c in view.get("plotly_chart")]
    titles = lambda c: [a.get("text") for a in c["layout"].get("annotations", [])]  # noqa: E731
    return [c for c in charts if "Loss per epoch" in titles(c)]


def test_one_epoch_is_shown_as_figures_and_curves_start_with_the_second():
    """After one epoch, train against validation is four figures (a curve would be a dot); from the
    second epoch on it is the per-epoch chart."""
    st.cache_resource.clear()
    jobs = JobManager()
    run = jobs.submit(TrainConfig.from_dict(dict(model="mlp_128_64", epochs=1, limit=2000)), actor=ADMIN)
    done = jobs.wait(run.id, timeout_s=120)
    assert done.status == "completed", done.reason
    [record] = jobs.store.epochs(run.id)
    view = AppTest.from_file(PAGE, default_timeout=60)
    view.session_state["train_run_id"] = run.id
    view.run()
    assert not view.exception
    shown = {m.label: m.value for m in view.metric}
    assert shown["Epoch 1 · validation accuracy"] == f"{record['val_acc']:.2%}"
    assert shown["Epoch 1 · train loss"] == f"{record['train_loss']:.4f}"
    assert not epoch_curves(view) and any("from the second epoch" in c.value for c in view.caption)
    jobs.extend(run.id, 1, actor=ADMIN)
    assert jobs.wait(run.id, timeout_s=120).status == "completed"
    view.run()
    assert not view.exception and len(epoch_curves(view)) == 1
    assert not [m for m in view.metric if m.label.startswith("Epoch ")]


def threads_script():
    import streamlit as st
    import torch

    from pages.ui.faults import beside_a_run

    torch.set_num_threads(2)
    with beside_a_run():
        st.write(f"inside {torch.get_num_threads()}")
    st.write(f"after {torch.get_num_threads()}")


def test_pages_compute_on_one_thread_while_a_run_trains_here():
    """Page code (app.py's page_shell, fragments through guarded) beside a training run: a team of
    threads would wait for cores the run keeps busy."""
    st.cache_resource.clear()
    idle = AppTest.from_function(threads_script, default_timeout=30).run()
    assert [m.value for m in idle.markdown] == ["inside 2", "after 2"]
    jobs = JobManager()
    run = jobs.submit(
        TrainConfig.from_dict(dict(model="cnn_basic", epochs=3, limit=20000, batch_size=32)), actor=ADMIN
    )
    try:
        busy = AppTest.from_function(threads_script, default_timeout=30).run()
        assert jobs.get(run.id).status == "running"
        assert [m.value for m in busy.markdown] == ["inside 1", "after 2"]
    finally:
        jobs.stop(run.id, grace_s=2, actor=ADMIN)


def test_start_shows_the_first_point_in_the_same_script_run(at):
    """The learner who presses Start waits for the first batch inside that script run: the chart is
    there when it returns, with no quick-cadence rerun in between."""
    at.selectbox(key="cfg_model").set_value("cnn_basic").run()
    at.number_input(key="cfg_limit").set_value(20000).run()
    start_button(at).click().run()
    assert not at.exception
    run = JobManager().get(at.session_state["train_run_id"])
    assert run.active and run.progress.get("step")
    assert at.get("plotly_chart"), [c.value for c in at.caption]
    assert "Waiting for the first batch..." not in [c.value for c in at.caption]
    [live] = [
        c
        for c in map(json.loads, (c.proto.spec for c in at.get("plotly_chart")))
        if c["data"][0].get("name") == "batch loss"
    ]
    assert live["layout"]["xaxis"]["range"] == [
        0,
        run.config["epochs"],
    ]  # the whole run, filled from the left


def test_the_last_seconds_of_a_run_are_waited_for_in_place():
    """Mid-run a view run returns at once (the live cadence redraws it every LIVE_EVERY_S); within
    FINISH_WINDOW_S of the end (the ETA) it waits for the end and redraws the page with the summary."""
    import time

    st.cache_resource.clear()  # the page's job manager on this test's store
    jobs = JobManager()
    run = jobs.submit(
        TrainConfig.from_dict(dict(model="cnn_basic", epochs=2, limit=20000, batch_size=64)), actor=ADMIN
    )
    try:
        view = AppTest.from_file(PAGE, default_timeout=60)
        view.session_state["train_run_id"] = run.id
        deadline = time.time() + 120
        while (jobs.get(run.id).eta_s or 99) <= 6 or not jobs.get(run.id).progress.get("step"):
            assert time.time() < deadline and jobs.get(run.id).active
            time.sleep(0.2)
        t0 = time.monotonic()
        view.run()
        assert not view.exception and time.monotonic() - t0 < 3
        assert f"Run `{run.id}` · cnn_basic · running" in [h.value for h in view.subheader]
        while (jobs.get(run.id).eta_s or 99) > 2.5:
            assert time.time() < deadline and jobs.get(run.id).active
            time.sleep(0.1)
        view.run()
        assert not view.exception and not jobs.get(run.id).active
        assert f"Run `{run.id}` · cnn_basic · completed" in [h.value for h in view.subheader]
        assert any(m.label == "Test accuracy" for m in view.metric)  # the summary, in that same run
    finally:
        jobs.stop(run.id, grace_s=2, actor=ADMIN)


def schedule_chart(at) -> list[float] | None:
    """The learning rates the page's schedule preview plots (None when it shows none)."""
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    charts = [
        c for c in charts if c["layout"].get("yaxis", {}).get("title", {}).get("text") == "learning rate"
    ]
    return charts[0]["data"][0]["y"] if charts else None


def test_the_schedule_preview_follows_the_settings(at):
    lrs = schedule_chart(at)  # fast_cnn's preset: one cycle, up to its learning rate and down
    top = at.session_state["cfg_lr"]
    assert lrs is not None and max(lrs) == pytest.approx(top) and lrs[0] < top / 10 and lrs[-1] < top / 100
    assert 0.2 < lrs.index(max(lrs)) / len(lrs) < 0.3
    assert any("one cycle" in c.value for c in at.caption)
    at.selectbox(key="cfg_schedule").set_value("constant").run()
    assert set(schedule_chart(at)) == {top}
    at.selectbox(key="cfg_schedule").set_value("step")
    at.slider(key="cfg_epochs").set_value(6).run()
    lrs = schedule_chart(at)
    assert sorted(set(lrs), reverse=True) == pytest.approx([top, top / 2, top / 4])  # halved every 2
    assert any("multiplied by 0.5 every 2 epochs" in c.value for c in at.caption)
    at.selectbox(key="cfg_optimizer").set_value("adam")
    at.checkbox(key="cfg_nesterov").check().run()
    assert errors(at) and schedule_chart(at) is None  # no valid config, no preview
