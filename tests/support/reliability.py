"""Faults and load, as scenarios shared by the tests and the report script.

    python tests/support/reliability.py              # the full report: 10 sessions watching for 60 s
    (as root: the full-disk faults mount a small tmpfs)
    python tests/support/reliability.py --seconds 15 # a shorter load phase

Each fault scenario snapshots the run store just before the fault and again after it (and after
the recovery), and counts the records saved before the fault that are missing or changed.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script: make the `support` package importable
    sys.path.insert(0, str(HERE.parent))

from mnist_core.jobs.identity import ADMIN  # noqa: E402
from mnist_core.jobs.integrity import verify  # noqa: E402
from mnist_core.jobs.manager import JobManager  # noqa: E402
from mnist_core.jobs.store import RunStore  # noqa: E402
from mnist_core.learn.config import TrainConfig  # noqa: E402
from support import ROOT  # noqa: E402
from support.browser import CHROMIUM, CHROMIUM_ARGS, X_VALUES_JS, Server, plotted_points  # noqa: E402
from support.helpers import wait_until  # noqa: E402
from support.snapshots import records_lost, snapshot  # noqa: E402
from support.tmpfs import fill, tmpfs  # noqa: E402


@dataclass
class FaultResult:
    fault: str
    survived: bool
    records_before: int
    lost: list[str]
    problems: list[str]
    detail: str = ""


def _cfg(**kw) -> TrainConfig:
    base = dict(model="cnn_basic", epochs=30, limit=3000, batch_size=32, val_fraction=0.1)
    return TrainConfig.from_dict({**base, **kw})


def _mid_epoch(jobs: JobManager, run_id: str) -> bool:
    """At least one epoch saved, and the next one partly trained."""
    r = jobs.store.get(run_id)
    p = r.progress
    return (
        r.epochs_done >= 1
        and p.get("epoch") == r.epochs_done + 1
        and 0 < p.get("batch", 0) < p.get("batches", 0)
    )


def _result(fault: str, store: RunStore, before, ok: bool, detail: str) -> FaultResult:
    lost = records_lost(before, snapshot(store))
    problems = verify(store)
    return FaultResult(fault, ok and not lost and not problems, before.records, lost, problems, detail)


def fault_kill_9(root: Path) -> FaultResult:
    """SIGKILL the training process in the middle of an epoch; then Extend it to the end."""
    jobs = JobManager(RunStore(root), max_concurrent=1)
    run = jobs.submit(_cfg(), actor=ADMIN)
    wait_until(lambda: _mid_epoch(jobs, run.id), timeout_s=120)
    before = snapshot(jobs.store)
    os.kill(jobs.store.get(run.id).pid, signal.SIGKILL)
    dead = wait_until(lambda: (r := jobs.get(run.id)).status == "interrupted" and r, timeout_s=15)
    first = _result("kill -9 mid-epoch", jobs.store, before, True, dead.reason)
    # recovery: Extend redoes the unfinished epoch; every finished epoch must stay as it was
    jobs.extend(run.id, 1, actor=ADMIN)
    done = jobs.wait(run.id, timeout_s=180)
    finished = snapshot(jobs.store)
    before.batches = {k: v for k, v in before.batches.items() if v[0] <= dead.epochs_done}
    lost = first.lost + records_lost(before, finished)
    problems = first.problems + verify(jobs.store)
    ok = first.survived and done.status == "completed" and done.epochs_done == dead.epochs_done + 1
    return FaultResult(
        first.fault,
        ok and not lost and not problems,
        before.records,
        lost,
        problems,
        f"{dead.reason} Extended: {done.status} after {done.epochs_done} epochs.",
    )


FULL_DISK = "The disk holding the checkpoints is full"


def _full_disk(
    fault: str, cfg: TrainConfig, when, leave_bytes: int, met_in: str, inspect=None
) -> FaultResult:
    """A run on a real 40 MB tmpfs, a second run queued behind it; once `when(jobs, run)` holds,
    the disk is filled to `leave_bytes` free. The first run must fail with the disk's numbers,
    leave no partial file and keep its finished epochs; the queue goes on once space is freed.
    The traceback in the run's log must show `met_in`: the write that met the full disk.
    `inspect(store_root, failed_run)` runs while the tmpfs is still mounted (the tests' checks)."""
    with tmpfs(40) as mnt:
        root = mnt / "store"
        jobs = JobManager(RunStore(root), max_concurrent=1)
        run = jobs.submit(cfg, actor=ADMIN)
        second = jobs.submit(_cfg(model="mlp_128_64", epochs=1, limit=1000, batch_size=50), actor=ADMIN)
        wait_until(lambda: when(jobs, run.id), timeout_s=120, poll_s=0.02)
        before = snapshot(jobs.store)
        filler = fill(mnt, leave_bytes)
        failed = wait_until(lambda: not (r := jobs.get(run.id)).active and r, timeout_s=90)
        filler.unlink()  # space freed: the queued run goes on
        after = jobs.wait(second.id, timeout_s=120)
        leftovers = [p.name for p in jobs.store.layout.run_dir(run.id).iterdir() if p.name.endswith(".tmp")]
        log = jobs.store.layout.log_path(run.id).read_text(errors="replace")
        ok = (
            failed.status == "failed"
            and FULL_DISK in (failed.reason or "")
            and not leftovers
            and "Traceback (most recent call last)" in log
            and met_in in log
            and after.status == "completed"
        )
        detail = (
            f"{failed.reason} Epochs kept: {failed.epochs_done}. Left over: {leftovers or 'nothing'}. "
            f"Queued run: {after.status}."
        )
        result = _result(fault, jobs.store, before, ok, detail)
        if inspect is not None:
            inspect(root, failed)
        return result


def _mid_epoch_2(jobs: JobManager, run_id: str) -> bool:
    return _mid_epoch(jobs, run_id) and jobs.store.get(run_id).epochs_done == 1


def _started(jobs: JobManager, run_id: str) -> bool:
    return jobs.store.get(run_id).pid is not None


def fault_full_disk_checkpoint(root: Path | None = None, inspect=None) -> FaultResult:
    """Mid-epoch, the disk fills to 1 MB free: the epoch's checkpoint save is what meets it."""
    fault = "real full disk during a checkpoint save"
    return _full_disk(fault, _cfg(epochs=6), _mid_epoch_2, 1 << 20, "in atomic_save", inspect)


def fault_full_disk_sqlite(root: Path | None = None, inspect=None) -> FaultResult:
    """Mid-epoch, the disk fills completely: the next write of batch losses into SQLite meets it."""
    fault = "real full disk during SQLite writes of batch losses"
    met_in = "sqlite3.OperationalError: database or disk is full"
    return _full_disk(fault, _cfg(epochs=6), _mid_epoch_2, 0, met_in, inspect)


def fault_full_disk_log(root: Path | None = None, inspect=None) -> FaultResult:
    """The disk fills completely while the worker starts: its first log line is what meets it."""
    fault, met_in = "real full disk during the run's log", "in log\n"
    return _full_disk(fault, _cfg(epochs=6), _started, 0, met_in, inspect)


def fault_out_of_memory(root: Path) -> FaultResult:
    """Each run may take 700 MB beyond its baseline (RLIMIT_AS): one that needs more fails with
    advice, and the run queued behind it starts and completes."""
    saved = os.environ.get("MNIST_LAB_RUN_MEMORY_MB")
    os.environ["MNIST_LAB_RUN_MEMORY_MB"] = "700"
    try:
        jobs = JobManager(RunStore(root), max_concurrent=1)
        jobs.wait(jobs.submit(_cfg(model="mlp_128_64", epochs=1, limit=1000, batch_size=50), actor=ADMIN).id)
        before = snapshot(jobs.store)
        huge = dict(model="mlp_500_125", model_args={"hidden": [16000, 2000]}, epochs=1, limit=2000)
        big = jobs.submit(_cfg(**huge, batch_size=50), actor=ADMIN)
        small = jobs.submit(_cfg(model="mlp_128_64", epochs=1, limit=1000, batch_size=50), actor=ADMIN)
        big, small = jobs.wait(big.id), jobs.wait(small.id)
    finally:
        os.environ.pop("MNIST_LAB_RUN_MEMORY_MB") if saved is None else os.environ.__setitem__(
            "MNIST_LAB_RUN_MEMORY_MB", saved
        )
    log = jobs.store.layout.log_path(big.id).read_text(errors="replace")
    ok = (
        big.status == "failed"
        and "ran out of memory" in (big.reason or "")
        and "can't allocate memory" in log
        and small.status == "completed"
    )
    return _result("out of memory", jobs.store, before, ok, f"{big.reason} Queued run: {small.status}.")


def fault_nan(root: Path) -> FaultResult:
    """A run whose loss becomes NaN fails with advice; the runs beside it are untouched."""
    jobs = JobManager(RunStore(root), max_concurrent=1)
    jobs.wait(jobs.submit(_cfg(model="mlp_128_64", epochs=2, limit=1500, batch_size=50), actor=ADMIN).id)
    before = snapshot(jobs.store)
    bad = jobs.wait(
        jobs.submit(_cfg(model="mlp_500_125", optimizer="sgd", lr=10.0, epochs=2, limit=3000), actor=ADMIN).id
    )
    ok = bad.status == "failed" and "training diverged" in (bad.reason or "")
    return _result("NaN loss", jobs.store, before, ok, bad.reason or "")


def _choose_model(page, key: str, limit: int) -> None:
    page.get_by_role("combobox", name="Architecture").click()
    page.get_by_role("option", name=key).click()
    field_ = page.get_by_role("spinbutton", name="Training images (0 = all)")
    field_.fill(str(limit))
    field_.press("Enter")
    page.wait_for_timeout(800)


def chart_points(page) -> int:
    return plotted_points(page, key="batch_chart")


def fault_server_restart(root: Path) -> FaultResult:
    """SIGKILL the dashboard while a run it started trains, then start it again on the same port."""
    from playwright.sync_api import sync_playwright

    server = Server(root)
    jobs = JobManager(RunStore(root), max_concurrent=1)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(server.url + "/train")
            _choose_model(page, "cnn_basic", 5000)
            page.get_by_role("button", name="Start training").click()
            page.get_by_text("cnn_basic · running").wait_for()
            run_id = wait_until(lambda: jobs.store.list(("running",)) and jobs.store.list(("running",))[0].id)
            wait_until(lambda: _mid_epoch(jobs, run_id), timeout_s=120)
            before = snapshot(jobs.store)
            server.kill()
            worker_alive = jobs.get(run_id).status == "running"  # the run outlives its dashboard
            t0 = time.time()
            server = Server(root, port=server.port)
            # the open page reconnects by itself and shows the run still training
            shown = chart_points(page)
            wait_until(lambda: chart_points(page) > shown, timeout_s=60)
            reconnect_s = time.time() - t0
            done = jobs.wait(run_id, timeout_s=240)
            page.get_by_text("cnn_basic · completed").wait_for(timeout=30_000)
            ok = worker_alive and done.status == "completed"
            return _result(
                "dashboard killed mid-training and restarted",
                jobs.store,
                before,
                ok,
                f"run went on while the dashboard was down; page live again {reconnect_s:.1f} s "
                f"after the restart began; run {done.status} with test accuracy {done.test_acc:.4f}",
            )
        finally:
            browser.close()
            server.stop()
            for run in jobs.store.list(("running", "queued")):
                jobs.stop(run.id, grace_s=2, actor=ADMIN)


FAULTS = [
    fault_kill_9,
    fault_server_restart,
    fault_full_disk_checkpoint,
    fault_full_disk_sqlite,
    fault_full_disk_log,
    fault_out_of_memory,
    fault_nan,
]


# ---------------- load: many learners watching one live run ----------------
# Installed in each page: every time Streamlit redraws the loss chart, note the time and the newest
# batch it shows (x is step / batches per epoch). The browser's clock is this machine's clock.
RECORD_UPDATES_JS = """() => {
    const xs = X_VALUES_JS;
    window.__chartUpdates = [];
    let seen = null;
    setInterval(() => {
        const plot = document.querySelector('.st-key-batch_chart .js-plotly-plot');
        const trace = plot && plot.data && plot.data[0];
        if (!trace || trace.x === seen) return;
        seen = trace.x;
        const x = xs(trace);
        if (x.length) window.__chartUpdates.push([Date.now() / 1000, x[x.length - 1]]);
    }, 50);
}""".replace("X_VALUES_JS", X_VALUES_JS)


@dataclass
class LoadResult:
    sessions: int
    seconds: float
    sessions_held: int = 0
    errors: list[str] = field(default_factory=list)
    waits_s: list[float] = field(default_factory=list)  # per redraw: how long new batches had waited
    redraws: list[int] = field(default_factory=list)  # chart redraws per session during the watch
    switch_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu_cores: dict[str, float] = field(default_factory=dict)  # mean cores used while watching
    queued_waited: bool = False

    def figures(self) -> dict:
        w = sorted(self.waits_s)
        pct = lambda q: round(w[int(q * (len(w) - 1))], 2) if w else None  # noqa: E731
        return dict(
            sessions=self.sessions,
            watch_s=self.seconds,
            sessions_held=self.sessions_held,
            errors=len(self.errors),
            redraws_per_session_min=min(self.redraws, default=0),
            refresh_median_s=pct(0.5),
            refresh_p95_s=pct(0.95),
            refresh_max_s=pct(1.0),
            page_switch_median_s=round(statistics.median(self.switch_s), 2) if self.switch_s else None,
            page_switch_max_s=round(max(self.switch_s), 2) if self.switch_s else None,
            server_rss_start_mb=round(self.rss_mb[0]),
            server_rss_max_mb=round(max(self.rss_mb)),
            server_rss_end_mb=round(self.rss_mb[-1]),
            second_run_queued=self.queued_waited,
            **{f"cpu_{k}_cores": round(v, 2) for k, v in self.cpu_cores.items()},
        )


class StoreWatcher(threading.Thread):
    """Polls the run store every 20 ms and notes when each batch became readable to the dashboard."""

    def __init__(self, store: RunStore, run_id: str):
        super().__init__(daemon=True)
        self.store, self.run_id, self.readable_at, self.done = store, run_id, {}, threading.Event()

    def run(self) -> None:
        top = 0
        while not self.done.is_set():
            now = time.time()
            new = self.store.batch_times(self.run_id, top)
            row = new[-1][0] if new else top
            for step in range(top + 1, row + 1):
                self.readable_at[step] = now
            top = max(top, row)
            time.sleep(0.02)


def _waits(
    updates: list[list[float]], readable_at: dict[int, float], batches: int, end: float
) -> list[float]:
    """For each redraw, and at the end of the watch: how long the first batch not yet on the chart
    had been readable in the store (0 when the chart was up to date). The maximum is the worst
    refresh delay a learner saw."""
    waits = []
    for (_t, x), (t_next, _) in zip(updates, updates[1:] + [[end, None]]):
        first_unshown = readable_at.get(round(x * batches) + 1)
        waits.append(t_next - first_unshown if first_unshown is not None and first_unshown < t_next else 0.0)
    return waits


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far by the dashboard, the training workers and the browsers (Linux /proc)."""
    out = {"server": 0.0, "workers": 0.0, "browsers": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        kind = (
            "workers"
            if b"mnist_core.jobs.worker" in cmd
            else "server"
            if b"streamlit" in cmd
            else "browsers"
            if b"chrom" in cmd
            else None
        )
        if kind:
            fields = stat.rsplit(")", 1)[1].split()
            out[kind] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _base_path_probe(url: str) -> bool:
    """Opened at a page URL such as /train, Streamlit's frontend first asks /train/_stcore/health and
    /train/_stcore/host-config to find its base path; the 404s it gets are expected."""
    return "/_stcore/health" in url or "/_stcore/host-config" in url


def load(root: Path, sessions: int = 10, seconds: float = 60.0, screenshot: Path | None = None) -> LoadResult:
    """`sessions` Chromium pages watch a live run on the Train page while a second run is queued."""
    from playwright.sync_api import sync_playwright

    out = LoadResult(sessions, seconds)
    server = Server(root)
    jobs = JobManager(RunStore(root), max_concurrent=1)
    live = jobs.submit(_cfg(epochs=40, limit=20000, batch_size=64), actor=ADMIN)
    queued = jobs.submit(_cfg(model="mlp_128_64", epochs=1, limit=1000), actor=ADMIN)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = []
            for i in range(sessions):
                page = browser.new_context(viewport={"width": 1200, "height": 1000}).new_page()
                page.set_default_timeout(120_000)
                page.on("pageerror", lambda exc, i=i: out.errors.append(f"session {i}: {exc}"))
                page.on(
                    "response",
                    lambda r, i=i: (
                        r.status >= 400
                        and not _base_path_probe(r.url)
                        and out.errors.append(f"session {i}: HTTP {r.status} {r.url}")
                    ),
                )
                page.goto(server.url + "/train")
                pages.append(page)
            for page in pages:
                page.get_by_text("cnn_basic · running").wait_for()
                wait_until(lambda p=page: chart_points(p) > 0, timeout_s=120)
                page.evaluate(RECORD_UPDATES_JS)
            out.rss_mb.append(server.rss_mb())
            watcher = StoreWatcher(RunStore(root), live.id)
            watcher.start()
            time.sleep(1.0)
            start, cpu_start = time.time(), cpu_seconds()
            while time.time() < start + seconds:
                time.sleep(1.0)
                out.rss_mb.append(server.rss_mb())
            end, cpu_end = time.time(), cpu_seconds()
            out.cpu_cores = {k: (cpu_end[k] - cpu_start[k]) / (end - start) for k in cpu_end}
            watcher.done.set()
            watcher.join()
            batches = jobs.store.get(live.id).progress["batches"]  # the chart's x is step / batches
            for i, page in enumerate(pages):
                updates = [u for u in page.evaluate("() => window.__chartUpdates") if start <= u[0] <= end]
                out.redraws.append(len(updates))
                if not updates:
                    out.errors.append(f"session {i}: the chart was never redrawn")
                    continue
                out.waits_s += _waits(updates, watcher.readable_at, batches, end)
            out.queued_waited = (
                jobs.get(queued.id).status == "queued" and jobs.get(live.id).status == "running"
            )
            out.sessions_held = sum(page.get_by_text("cnn_basic · running").count() == 1 for page in pages)
            for i, page in enumerate(pages):
                n = page.locator("[data-testid='stException']").count()
                if n:
                    out.errors.append(f"session {i}: {n} exception(s) shown")
                if page.get_by_text("ACTIVE RUNS").count() != 1:  # app.py's sidebar, not Streamlit's fallback
                    out.errors.append(f"session {i}: the page opened without the app's navigation")
            if screenshot:
                pages[0].screenshot(path=str(screenshot))
            for page in pages:  # each learner leaves for the Runs page while the run trains
                t0 = time.perf_counter()
                page.get_by_test_id("stSidebarNav").get_by_role("link", name="Runs").click()
                page.get_by_role("heading", name="Runs").first.wait_for()
                page.get_by_text("Select runs to compare").wait_for()
                out.switch_s.append(time.perf_counter() - t0)
            out.rss_mb.append(server.rss_mb())
        finally:
            browser.close()
            server.stop()
            for run in jobs.store.list(("running", "queued")):
                jobs.stop(run.id, grace_s=2, actor=ADMIN)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Faults, bad inputs and load: print the reliability figures.")
    ap.add_argument("--sessions", type=int, default=10, help="browser sessions watching the live run")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long they watch")
    ap.add_argument("--skip-fuzz", action="store_true", help="do not run the hypothesis bad-input tests")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mnist-lab-reliability-"))
    os.environ.setdefault("MNIST_LAB_CHECKPOINTS", str(work / "default-store"))

    bad_inputs = 0
    if not args.skip_fuzz:
        import pytest

        sys.path.insert(0, str(ROOT / "tests" / "unit"))  # the fuzz tests count what they tried
        import test_fuzz

        code = pytest.main(
            [str(ROOT / "tests" / "unit" / "test_fuzz.py"), "-q", "-p", "no:cacheprovider", "-W", "ignore"]
        )
        bad_inputs = sum(test_fuzz.TRIED.values())
        print(
            "bad inputs tried: "
            + ", ".join(f"{k}={v}" for k, v in test_fuzz.TRIED.items())
            + f" (pytest exit {int(code)})",
            flush=True,
        )
        if code != 0:
            return 1
    results = []
    from support.store_faults import fault_damaged_db  # it builds on this module's helpers

    for scenario in [*FAULTS, fault_damaged_db]:
        t0 = time.time()
        r = scenario(work / scenario.__name__ / "store")
        results.append(r)
        print(
            f"fault: {r.fault}: {'survived' if r.survived else 'NOT SURVIVED'} "
            f"({time.time() - t0:.0f} s; {r.records_before} records before, {len(r.lost)} lost, "
            f"{len(r.problems)} problems) {r.detail}",
            flush=True,
        )
        for line in r.lost + r.problems:
            print(f"  {line}")
    lr = load(work / "load" / "store", args.sessions, args.seconds, screenshot=work / "load.png")
    for e in lr.errors[:10]:
        print(f"  error: {e}")
    figures = dict(
        sessions_held=lr.sessions_held,
        faults_survived=sum(r.survived for r in results),
        faults=len(results),
        bad_inputs_tried=bad_inputs,
        records_lost=sum(len(r.lost) for r in results),
        store_problems=sum(len(r.problems) for r in results),
        **{k: v for k, v in lr.figures().items() if k != "sessions_held"},
    )
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    print(f"screenshot={work / 'load.png'}")
    good = (
        figures["records_lost"] == 0
        and figures["faults_survived"] == len(results)
        and lr.sessions_held == args.sessions
        and not lr.errors
    )
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
