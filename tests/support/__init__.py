"""Code the tests share: a real browser, servers, waits, synthetic drawings, store snapshots, faults."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: app.py, pages/, mnist_core/
PAGES_DIR = ROOT / "pages"

# An [auth] section for AppTest runs through app.py (at.user stands in for the provider's answer)
APPTEST_AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "c" * 64,
    "client_id": "mnist-lab",
    "client_secret": "s3cret",
    "server_metadata_url": "https://accounts.example/.well-known/openid-configuration",
}
