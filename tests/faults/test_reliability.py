"""Faults and load, driven as they happen: real worker processes, a real dashboard, real Chromium.

The scenarios live in tests/reliability.py, which also prints the report (`python tests/reliability.py`).
"""

import os
import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.cli import main as cli
from mnist_core.jobs.integrity import verify
from mnist_core.jobs.store import RunStore
from support import PAGES_DIR, ROOT, reliability
from support.browser import require_browser
from support.snapshots import records_lost, snapshot
from support.tmpfs import require_mount

TRAIN_PAGE = str(PAGES_DIR / "train.py")


def store_root() -> Path:
    return Path(os.environ["MNIST_LAB_CHECKPOINTS"])  # this test's own folder (conftest)


@pytest.fixture()
def warm_workers(monkeypatch):
    """As the product runs by default: runs go to warm standby workers (conftest turns them off)."""
    monkeypatch.setenv("MNIST_LAB_WARM_WORKERS", "1")
    monkeypatch.setenv("MNIST_LAB_WARM_IDLE_S", "30")  # none outlives the suite by long


def assert_survived(result: reliability.FaultResult) -> None:
    assert result.records_before > 0
    assert result.lost == [], result.lost
    assert result.problems == [], result.problems
    assert result.survived, result.detail


def test_kill_9_mid_epoch_loses_nothing_and_extend_finishes_it(warm_workers):
    result = reliability.fault_kill_9(store_root())
    assert_survived(result)
    assert "ended unexpectedly" in result.detail and "Extended: completed" in result.detail


def shows_in_the_dashboard_and_checks_clean(capsys):
    """The checks a full-disk scenario runs on its store while the tmpfs is still mounted."""

    def inspect(root: Path, failed) -> None:
        os.environ["MNIST_LAB_CHECKPOINTS"] = str(root)  # monkeypatch restores it after the test
        st.cache_resource.clear()
        at = AppTest.from_file(str(PAGES_DIR / "runs.py"), default_timeout=60).run()
        assert not at.exception
        shown = " ".join(e.value for e in at.error) + " ".join(m.value for m in at.markdown)
        assert "disk holding the checkpoints is full" in shown, shown[:2000]
        assert cli(["check"]) == 0
        assert "problems=0" in capsys.readouterr().out

    return inspect


FULL_DISK_FAULTS = [
    reliability.fault_full_disk_checkpoint,
    reliability.fault_full_disk_sqlite,
    reliability.fault_full_disk_log,
]


@pytest.mark.parametrize("scenario", FULL_DISK_FAULTS, ids=lambda f: f.__name__.removeprefix("fault_"))
def test_a_real_full_disk_fails_the_run_clearly_and_loses_nothing(scenario, capsys, monkeypatch):
    require_mount()
    monkeypatch.setenv("MNIST_LAB_CHECKPOINTS", store_root().as_posix())
    result = scenario(inspect=shows_in_the_dashboard_and_checks_clean(capsys))
    assert_survived(result)
    reason = result.detail
    assert re.search(r"full: [\d.,]+ MB free, this run needs about [\d.,]+ MB", reason), reason
    assert "Left over: nothing" in reason and "Queued run: completed" in reason


def test_a_run_over_its_memory_limit_fails_with_advice_and_the_queue_goes_on():
    result = reliability.fault_out_of_memory(store_root())
    assert_survived(result)
    assert "ran out of memory" in result.detail and "smaller batch size" in result.detail
    assert "Queued run: completed" in result.detail


def test_nan_loss_fails_with_advice_and_leaves_other_runs_alone():
    result = reliability.fault_nan(store_root())
    assert_survived(result)
    assert "training diverged" in result.detail and "smaller learning rate" in result.detail
    # every failed run's log holds its whole traceback, down to the line that raised
    store = RunStore(store_root())
    failed = next(r for r in store.list() if r.status == "failed")
    log = store.layout.log_path(failed.id).read_text()
    assert "Traceback (most recent call last)" in log and "NoneType: None" not in log
    assert 'mnist_core/learn/engine.py", line' in log and "Diverged: The loss became nan" in log
    # and the record says where it diverged (the Lessons page counts that as a measurement)
    assert failed.test_metrics["diverged"]["epoch"] >= 1 and failed.test_metrics["diverged"]["batch"] >= 1


def test_check_finds_damage(capsys):
    reliability.fault_nan(store_root())
    store = RunStore(store_root())
    before = snapshot(store)
    good = next(r for r in store.list() if r.status == "completed")
    path = Path(store.epochs(good.id)[0]["checkpoint"])
    path.write_bytes(path.read_bytes()[:1000])  # damage a saved checkpoint behind the store's back
    (store.layout.run_dir(good.id) / ".epoch-009.pt.abc.tmp").write_bytes(b"half")
    problems = verify(store)
    assert any("truncated" in p for p in problems) and any("leftover temporary file" in p for p in problems)
    assert records_lost(before, snapshot(store)) == [f"{path} is changed"]
    assert cli(["check"]) == 1
    assert "problems=2" in capsys.readouterr().out


def test_dashboard_killed_mid_training_and_restarted(warm_workers):
    require_browser()
    result = reliability.fault_server_restart(store_root())
    assert_survived(result)
    assert "run went on while the dashboard was down" in result.detail


def check_load(result: reliability.LoadResult, sessions: int) -> dict:
    figures = result.figures()
    print(" ".join(f"{k}={v}" for k, v in figures.items()))  # the figures, for the log
    assert result.errors == []
    assert figures["sessions_held"] == sessions and figures["second_run_queued"]
    # every page kept redrawing: the live chart reruns every 2 s (pages/ui/live.py LIVE_EVERY_S), and
    # under this load at least every other of those redraws arrives
    assert figures["redraws_per_session_min"] >= result.seconds / 4
    # The ten browsers share this machine's two cores with the dashboard and the training (they take
    # about 1.6 cores), so the timings swing with the machine: the same commit measured a page-switch
    # median of 0.66 s one day and 1.5 s another. Speed figures are the benchmark's job (python
    # tests/support/reliability.py prints them); this test only catches a collapse, such as the 9 s
    # page switches before the fixes, with bounds well above a slow day's figures.
    assert figures["refresh_p95_s"] <= 5.0 and figures["refresh_max_s"] < 8.0
    assert figures["page_switch_median_s"] < 4.0 and figures["page_switch_max_s"] < 8.0
    assert figures["server_rss_max_mb"] - figures["server_rss_start_mb"] < 150  # memory bounded
    return figures


def test_ten_sessions_watch_a_live_run_short(warm_workers):
    """CI's version: ten real Chromium sessions on the Train page for 15 s while a second run waits."""
    require_browser()
    check_load(reliability.load(store_root(), sessions=10, seconds=15), 10)


@pytest.mark.load
def test_ten_sessions_watch_a_live_run_for_a_minute():
    """The full load run (`pytest -m load`): ten sessions for 60 s."""
    require_browser()
    check_load(reliability.load(store_root(), sessions=10, seconds=60), 10)


@pytest.mark.parametrize(
    "target,error",
    [
        ("mnist_core.learn.system.environment_status", OSError(28, "No space left on device")),
        ("mnist_core.jobs.store.RunStore.list", __import__("sqlite3").OperationalError("disk I/O error")),
    ],
)
def test_machine_faults_in_the_dashboard_are_a_message_not_a_traceback(target, error):
    def fail(*args, **kwargs):
        raise error

    st.cache_resource.clear()
    # a patch of its own: undoing the test's `monkeypatch` would also undo conftest's, and the page's
    # next run would then start a warm worker on the repository's own checkpoints/ folder
    with pytest.MonkeyPatch.context() as fault:
        fault.setattr(target, fail)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert not at.exception
        assert any(str(error) in e.value and "free some space" in e.value for e in at.error)
    # the space is freed: the next run of the page is whole again
    st.cache_resource.clear()
    at.run()
    assert not at.exception and not at.error and at.title[0].value == "MNIST Lab"
