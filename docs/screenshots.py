"""Remake the README's screenshots: serve the app headless, open four pages in Chromium, save PNGs.

    .venv/bin/python docs/screenshots.py            # writes docs/screenshots/*.png

The server gets a store of its own in a temporary folder (nothing is written into checkpoints/),
no warm workers, and MNIST from $MNIST_DATA_DIR (default: ../shared/data/mnist, then ./data/mnist)
without downloading. The app and Playwright come from the project's venv; Chromium is Debian's
(/usr/bin/chromium). Each PNG is reduced to a palette of --colors colours to stay small.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [  # as tests/support/browser.py
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEVEN = [[(70, 60), (140, 60), (210, 60), (165, 145), (120, 240)]]  # a 7, in canvas pixels


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_data_dir() -> str:
    if os.environ.get("MNIST_DATA_DIR"):
        return os.environ["MNIST_DATA_DIR"]
    shared = ROOT.parent / "shared" / "data" / "mnist"
    return str(shared if shared.is_dir() else ROOT / "data" / "mnist")


def start_server(port: int, store: Path, data_dir: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "MNIST_DATA_DIR": data_dir,
        "MNIST_LAB_OFFLINE": "1",
        "MNIST_LAB_CHECKPOINTS": str(store),
        "MNIST_LAB_WARM_WORKERS": "0",  # nothing trains: no idle worker to leave behind
    }
    streamlit = ROOT / ".venv" / "bin" / "streamlit"
    cmd = [str(streamlit)] if streamlit.exists() else [sys.executable, "-m", "streamlit"]
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [*cmd, "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited ({proc.returncode}); see {log_path}")
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return proc
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(f"streamlit did not become healthy in 90 s; see {log_path}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # this server's own pid, nothing else
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def settle(page, text: str, settle_s: float) -> None:
    """Wait for `text`, for Streamlit's "Running..." widget to go, then a little longer."""
    page.get_by_text(text, exact=False).first.wait_for()
    page.get_by_text("ACTIVE RUNS").first.wait_for()  # the app's shell (sidebar) is drawn
    deadline = time.time() + 60
    while time.time() < deadline and page.locator("[data-testid='stStatusWidget']").count():
        page.wait_for_timeout(250)
    page.wait_for_timeout(int(settle_s * 1000))


def shrink(path: Path, colors: int) -> int:
    """Quantise the PNG to a palette (screenshots of a UI lose next to nothing); its new size."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    return path.stat().st_size


def draw(page, strokes) -> None:
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


def shoot(args: argparse.Namespace, url: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    desktop = {"width": args.width, "height": args.height}
    phone = {"width": args.phone_width, "height": int(args.phone_width * 2)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            for name, viewport in (("home-phone", phone), ("train", desktop), ("evaluate", desktop),
                                   ("draw", desktop)):  # fmt: skip
                if args.only and name not in args.only:
                    continue
                context = browser.new_context(viewport=viewport)
                page = context.new_page()
                page.set_default_timeout(args.timeout_s * 1000)
                if name == "home-phone":
                    page.goto(url + "/")
                    settle(page, "The quick path", args.settle_s)
                elif name == "train":
                    page.goto(url + "/train")
                    settle(page, "Hyperparameters", args.settle_s)
                elif name == "evaluate":
                    page.goto(url + "/evaluate")
                    settle(page, "Per-class metrics", args.settle_s)
                else:
                    page.goto(url + "/draw")
                    settle(page, "Draw a digit on the canvas", 0.5)
                    draw(page, SEVEN)
                    page.locator(".st-key-draw_prediction [data-testid='stMetricValue']").get_by_text(
                        "7", exact=True
                    ).wait_for()
                    settle(page, "Why? Saliency maps", args.settle_s)
                path = out / f"{name}.png"
                page.screenshot(path=str(path), scale="css")
                size = shrink(path, args.colors)
                print(f"screenshot={path} bytes={size} viewport={viewport['width']}x{viewport['height']}")
                written.append(path)
                context.close()
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder for the PNGs")
    ap.add_argument("--port", type=int, default=0, help="port for the app (default: a free one)")
    ap.add_argument("--width", type=int, default=1200, help="desktop viewport width (px)")
    ap.add_argument("--height", type=int, default=800, help="desktop viewport height (px)")
    ap.add_argument("--phone-width", type=int, default=390, help="phone viewport width (px; height 2x)")
    ap.add_argument("--colors", type=int, default=96, help="palette size of each PNG")
    ap.add_argument("--settle-s", type=float, default=3.0, help="extra wait once a page has drawn (s)")
    ap.add_argument("--timeout-s", type=int, default=120, help="longest wait for any one element (s)")
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--data-dir", default=default_data_dir(), help="the MNIST folder")
    ap.add_argument("--only", nargs="*", choices=["home-phone", "train", "evaluate", "draw"],
                    help="take only these screenshots")  # fmt: skip
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="mnist-lab-screenshots-"))
    port = args.port or free_port()
    proc = start_server(port, tmp / "store", args.data_dir, tmp / "streamlit.log")
    try:
        shoot(args, f"http://127.0.0.1:{port}")
    finally:
        stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
