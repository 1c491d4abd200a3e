"""The worst case a learner can reach through the UI on Inside and Evaluate, in the real app.

python benchmarks/worst_case.py                      # better_cnn, 1,000 epochs (about 2 GB of files)
python benchmarks/worst_case.py --epochs 40 --model fast_cnn --skip-tsne   # a smoke run

A fresh run store holds one completed run with `--epochs` epoch checkpoints (the most a run may have
is 1,000, reachable by Extend or "Change one thing"; the largest model a learner can pick is
better_cnn), written through the worker's own epoch writer, without training. `streamlit run
app.py` serves it, and headless Chromium opens Inside on that run (after one warm-up visit to Inside
on the default model, so the server has PyTorch and MNIST loaded as a server in use has), then asks
the embedding map for the most digits the page accepts (60,000) and t-SNE. The same for Evaluate.

Figures: `*_first_content_s`, from the address being opened to the page's first content (Inside: the
prediction for the digit; Evaluate: the confusion matrix), `*_complete_s` to the end of that script
run; `*_peak_rss_growth_mb`, the server process's peak resident memory (VmHWM, reset first through
/proc/PID/clear_refs) over its resident memory before the visit. Targets: <= 5 s and <= 1024 MB.
Prints key=value lines; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from mnist_core.analysis import inside, timeline  # noqa: E402
from mnist_core.jobs.store import RunStore  # noqa: E402
from mnist_core.paths import CACHE_ENV  # noqa: E402
from support.browser import CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402
from support.long_run import long_run  # noqa: E402

TARGETS = {"first_content_s": 5.0, "peak_rss_growth_mb": 1024.0}
STATE_JS = "() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"
SPINNING = '[data-testid="stSpinner"], [data-testid="stStatusWidget"]'


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int) -> int:
    """Reset the process's peak resident memory to its present one; returns that, in kB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory_kb(pid, "VmRSS")


def settled(page, timeout_s: float) -> float:
    """Wait until the script run has ended with nothing spinning; returns when (perf_counter)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if page.evaluate(STATE_JS) == "notRunning" and page.locator(SPINNING).count() == 0:
            return time.perf_counter()
        page.wait_for_timeout(50)
    raise TimeoutError(f"the page was still running after {timeout_s:.0f} s")


def visit(page, url: str, first, timeout_s: float) -> tuple[float, float]:
    """(first content s, complete s) of opening `url`; `first` is a locator of the first content."""
    start = time.perf_counter()
    page.goto(url)
    first.first.wait_for(timeout=timeout_s * 1000)
    shown = time.perf_counter()
    return shown - start, settled(page, timeout_s) - start


def after(page, action, text: str, timeout_s: float) -> float:
    """Seconds from `action()` until `text` is on the page and the script run has ended."""
    start = time.perf_counter()
    action()
    page.get_by_text(text).first.wait_for(timeout=timeout_s * 1000)
    return settled(page, timeout_s) - start


def measure(args, tmp: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    store = RunStore(tmp / "store")
    started = time.perf_counter()
    run_id = long_run(store, args.epochs, args.model)
    checkpoints = store.checkpoints(run_id)
    log(f"{args.epochs} epochs of {args.model} written in {time.perf_counter() - started:.1f} s")
    fig: dict[str, float] = {"epochs": args.epochs}
    server = Server(store.root, env={"MNIST_LAB_WARM_WORKERS": "0", CACHE_ENV: str(tmp / "cache")})
    pid = server.proc.pid
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            prediction = page.locator('[data-testid="stMetricLabel"]', has_text="Prediction")
            visit(page, server.url + "/inside", prediction, args.timeout)  # the warm-up visit
            log(f"warm server: {memory_kb(pid, 'VmRSS') / 1024:.0f} MB resident")

            before = reset_peak(pid)
            url = f"{server.url}/inside?run={run_id}"
            first, complete = visit(page, url, prediction, args.timeout)
            fig["inside_first_content_s"], fig["inside_complete_s"] = first, complete
            fig["inside_epochs_shown"] = len(timeline.sample_epochs(checkpoints))
            page.get_by_role("tab", name="Embedding map").click()
            digits = page.locator(".st-key-inside_sample input")
            most = timeline.plan_maps(checkpoints, 60_000, "pca")
            asked = f"{most.digits:,} test digits"
            fig["inside_largest_map_s"] = after(
                page, lambda: (digits.fill("60000"), digits.press("Enter")), asked, args.timeout
            )
            if not args.skip_tsne:
                tsne = timeline.plan_maps(checkpoints, 60_000, "tsne")
                button = page.locator(".st-key-inside_method button", has_text="t-SNE")
                ready = f"t-SNE map of {tsne.digits:,} digits ready"
                fig["inside_tsne_s"] = after(page, button.click, ready, args.timeout)
            fig["inside_peak_rss_growth_mb"] = (memory_kb(pid, "VmHWM") - before) / 1024
            log(f"inside: {fig}")

            if not args.skip_evaluate:
                before = reset_peak(pid)
                cells = page.locator(".st-key-cm_chart td[data-true][data-pred]")
                url = f"{server.url}/evaluate?run={run_id}"
                first, complete = visit(page, url, cells, args.timeout)
                fig["evaluate_first_content_s"], fig["evaluate_complete_s"] = first, complete
                fig["evaluate_peak_rss_growth_mb"] = (memory_kb(pid, "VmHWM") - before) / 1024
            browser.close()
    finally:
        server.stop()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Inside and Evaluate on the longest run of the largest model a learner can make, "
        "in the real app: time to first content and the server's peak memory growth (key=value)."
    )
    parser.add_argument("--epochs", type=int, default=1000, help="epoch checkpoints of the run (<= 1000)")
    parser.add_argument("--model", default="better_cnn", help="the run's model (default: the largest)")
    parser.add_argument("--skip-tsne", action="store_true", help="leave out the t-SNE map")
    parser.add_argument("--skip-evaluate", action="store_true", help="leave out the Evaluate page")
    parser.add_argument("--timeout", type=float, default=300, help="seconds any one step may take")
    args = parser.parse_args(argv)
    if not 1 <= args.epochs <= 1000:
        parser.error("--epochs must be between 1 and 1000, as a run's epochs are")
    with tempfile.TemporaryDirectory(prefix="mnist-lab-worst-case-") as folder:
        fig = measure(args, Path(folder))
    print(f"model={args.model}")
    print(f"max_map_digits={inside.MAX_SAMPLE}")
    met = 0
    for key, value in fig.items():
        print(f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}")
        target = next((t for suffix, t in TARGETS.items() if key.endswith(suffix)), None)
        if target is not None:
            ok = value <= target
            met += ok
            print(f"{key}_target={target:g} {key}_pass={'yes' if ok else 'no'}")
    print(f"targets_met={met}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MNIST_LAB_WARM_WORKERS", "0")
    sys.exit(main())
