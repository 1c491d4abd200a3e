"""Real-browser helpers: serve the app headless and drive Debian's Chromium with Playwright."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import wait_until  # noqa: F401  (re-exported for the browser tests)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Locally a missing Chromium skips; under CI=true it is a failure, never a skip."""
    missing = [what for what, ok in (("chromium", Path(CHROMIUM).exists()),
                                      ("playwright", _has_playwright())) if not ok]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests but {', '.join(missing)} is missing")
        pytest.skip(f"{', '.join(missing)} not installed")


def _has_playwright() -> bool:
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
        return True
    except ImportError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run app.py` headless on a free port, with its own run store."""

    def __init__(self, store: Path):
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MNIST_LAB_CHECKPOINTS": str(store), "MNIST_LAB_MAX_RUNS": "1"}
        self.log = open(store.parent / "streamlit.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=self.log,
            stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("streamlit did not become healthy in 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    srv = Server(tmp_path_factory.mktemp("browser") / "store")
    yield srv
    srv.stop()
    from mnist_core.jobs import JobManager
    from mnist_core.runs import RunStore

    jobs = JobManager(RunStore(srv.store))
    for run in jobs.store.list(("running", "queued")):
        jobs.stop(run.id, grace_s=2)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def plotted_points(page, index: int = 0) -> int:
    """Number of x values in the first trace of the index-th Plotly chart on the page (0 if none)."""
    return page.evaluate("""(i) => {
        const plots = document.querySelectorAll('.js-plotly-plot');
        return plots.length > i && plots[i].data ? plots[i].data[0].x.length : 0;
    }""", index)


