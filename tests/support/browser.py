"""Real-browser helpers: serve the app headless and drive Debian's Chromium with Playwright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from mnist_core.jobs.identity import ADMIN
from support import ROOT
from support.helpers import wait_until  # noqa: F401  (re-exported for the browser tests)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser() -> None:
    """Locally a missing Chromium skips; under CI=true it is a failure, never a skip."""
    missing = [
        what
        for what, ok in (("chromium", Path(CHROMIUM).exists()), ("playwright", _has_playwright()))
        if not ok
    ]
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
    """`streamlit run app.py` headless on a free port, with its own run store; `args` are more
    `streamlit run` options (say `--secrets.files PATH`), `env` more environment variables."""

    def __init__(
        self,
        store: Path,
        port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ):
        self.store = store
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {
            **os.environ,
            "MNIST_LAB_CHECKPOINTS": str(store),
            "MNIST_LAB_MAX_RUNS": "1",
            **(env or {}),
        }
        store.mkdir(parents=True, exist_ok=True)
        self.log = open(store.parent / "streamlit.log", "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(self.port),
                "--server.fileWatcherType",
                "none",
                "--browser.gatherUsageStats",
                "false",
                *args,
            ],
            cwd=ROOT,
            env=environ,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("streamlit did not become healthy in 60 s")

    def kill(self) -> None:
        """SIGKILL, as a crash or an out-of-memory kill would end it: no clean-up runs."""
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def rss_mb(self) -> float:
        """Resident memory of the server process (Linux)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        for left in (self.store / "standby").glob("*.*.*"):  # the store's idle warm workers
            kind, _, rest = left.name.partition(".")
            if kind in ("claimed", "retired", "new") or left.suffix == ".dashboard":
                continue  # a run's own worker, one already leaving, or the server's own record
            try:
                os.kill(int(rest.split(".")[0]), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    # module-scoped: started before conftest's per-test environment, so warm workers are off here
    srv = Server(tmp_path_factory.mktemp("browser") / "store", env={"MNIST_LAB_WARM_WORKERS": "0"})
    yield srv
    srv.stop()
    from mnist_core.jobs.manager import JobManager
    from mnist_core.jobs.store import RunStore

    jobs = JobManager(RunStore(srv.store))
    for run in jobs.store.list(("running", "queued")):
        jobs.stop(run.id, grace_s=2, actor=ADMIN)


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


# x values of a trace, whether sent as a plain list or as base64 typed-array data (numpy arrays)
X_VALUES_JS = """(trace) => {
    const x = trace && trace.x;
    if (!x || !x.bdata) return x ? Array.from(x) : [];
    const types = {f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array,
                   u2: Uint16Array, i1: Int8Array, u1: Uint8Array};
    const bytes = Uint8Array.from(atob(x.bdata), (c) => c.charCodeAt(0));
    return Array.from(new types[x.dtype](bytes.buffer));
}"""


def chart_x(page, index: int = 0, key: str | None = None, last: bool = False) -> list[float]:
    """x values of the first trace of a Plotly chart: the one with this Streamlit key, else the
    index-th chart on the page ([] while it is not drawn); with last=True only the last value."""
    return page.evaluate(
        f"""([i, key, last]) => {{
        const xs = {X_VALUES_JS};
        const plot = key ? document.querySelector('.st-key-' + key + ' .js-plotly-plot')
                         : document.querySelectorAll('.js-plotly-plot')[i];
        const x = plot && plot.data ? xs(plot.data[0]) : [];
        return last ? x.slice(-1) : x;
    }}""",
        [index, key, last],
    )


def plotted_points(page, index: int = 0, key: str | None = None) -> int:
    """Number of points in the first trace of a Plotly chart (0 if none)."""
    return len(chart_x(page, index, key))


def decoded_images(page, selector: str) -> int:
    """How many <img> matching `selector` the browser has loaded and decoded (st.image pictures)."""
    return page.evaluate(
        "(s) => Array.from(document.querySelectorAll(s)).filter((i) => i.complete && i.naturalWidth).length",
        selector,
    )


def draw_strokes(page, strokes) -> None:
    """Draw on the Draw page's canvas with the mouse: each stroke a list of (x, y) in canvas pixels."""
    canvas = page.locator("canvas.draw-canvas")
    canvas.wait_for()
    box = canvas.bounding_box()
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=12)
        page.mouse.up()
