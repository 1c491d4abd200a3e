"""Code the tests share: a real browser, servers, waits, synthetic drawings, store snapshots, faults."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: app.py, pages/, mnist_core/
PAGES_DIR = ROOT / "pages"
