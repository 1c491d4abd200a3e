"""Shared fixtures: real MNIST (from $MNIST_DATA_DIR, downloaded if absent) and tmp checkpoints."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from mnist_core.data.mnist import load_mnist
from mnist_core.jobs.identity import ADMIN
from support.browser import browser, page, server  # noqa: F401  (real-browser fixtures)


def pytest_configure(config):
    """The suite's derived files (decoded MNIST, saved evaluations) go to a cache folder of its
    own, for every process it starts too: a test never reads what an earlier session, or the
    user's app, left in ~/.cache/mnist-lab, and leaves nothing there."""
    if "MNIST_LAB_CACHE" not in os.environ:
        config._mnist_lab_cache = tempfile.mkdtemp(prefix="mnist-lab-test-cache-")
        os.environ["MNIST_LAB_CACHE"] = config._mnist_lab_cache


def pytest_unconfigure(config):
    folder = getattr(config, "_mnist_lab_cache", None)
    if folder:
        os.environ.pop("MNIST_LAB_CACHE", None)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def mnist():
    return load_mnist()


REPOSITORY_STORE = Path(__file__).resolve().parent.parent / "checkpoints"


def _repository_store() -> dict[str, int]:
    """What the repository's checkpoints/ folder holds: name -> modification time."""
    try:
        return {p.name: p.stat().st_mtime_ns for p in REPOSITORY_STORE.iterdir()}
    except OSError:
        return {}


@pytest.fixture(autouse=True)
def _tmp_checkpoints(tmp_path, monkeypatch):
    """No test writes into the repository's checkpoints/ folder (checked after each test: undoing a
    test's `monkeypatch` also undoes these settings, and a page run after that did write there)."""
    monkeypatch.setenv("MNIST_LAB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    # Runs start cold unless a test asks for warm workers (tests/unit/test_standby.py, the
    # reliability checks): an idle standby per test store would hold a PyTorch process each.
    monkeypatch.setenv("MNIST_LAB_WARM_WORKERS", "0")
    before = _repository_store()
    yield
    after = _repository_store()
    written = sorted(n for n in set(after) | set(before) if after.get(n) != before.get(n))
    assert not written, (
        f"this test wrote into the repository's checkpoints/ folder: {written} (new, changed or "
        "removed); set MNIST_LAB_CHECKPOINTS for what it starts"
    )


@pytest.fixture()
def jobs(tmp_path):
    """A JobManager on this test's own store, one run at a time; no worker outlives the test."""
    from mnist_core.jobs.manager import JobManager
    from mnist_core.jobs.store import RunStore, StoreLost

    manager = JobManager(RunStore(tmp_path / "store"), max_concurrent=1)
    yield manager
    try:
        manager.store.check_file()
    except StoreLost:  # the test rebuilt runs.db: the old store object refuses the new file
        manager.store = RunStore(manager.store.root)
    for run in manager.store.list(("running", "queued")):
        manager.stop(run.id, grace_s=2, actor=ADMIN)
