"""Real Chromium: a deep link that is a fresh server's first request still gets app.py's shell.

Streamlit runs its legacy pages/-folder mode until some session calls st.navigation; pages leave it
through ensure_app_shell() (public API only). If a Streamlit upgrade changes that behaviour, the
page would show without the app's navigation and sidebar, and this test fails."""

from support import ROOT
from support.browser import Server

# The app's navigation in order: every page file, Home first (a page added or lost fails the test).
TITLES = ["Home", "Lessons", "Data", "Models", "Train", "Runs", "Class wall", "Evaluate", "Inside", "Draw"]
SHARED = {"common", "canvas", "confusion"}  # shared modules (helpers, Draw's canvas, the matrix), not pages
assert len(TITLES) == len([p for p in (ROOT / "pages").glob("*.py") if p.stem not in SHARED])


def test_deep_link_on_a_fresh_server_runs_inside_the_app(browser, tmp_path):
    srv = Server(tmp_path / "store")  # nobody has opened this server yet
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(srv.url + "/runs")
        page.get_by_text("ACTIVE RUNS").wait_for()  # app.py's sidebar, not the bare page
        nav = page.get_by_test_id("stSidebarNav")
        titles = [text.strip().splitlines()[-1] for text in nav.get_by_role("link").all_inner_texts()]
        assert titles == TITLES  # app.py's titles, in its order
        assert page.url.endswith("/runs")
        # links made with page objects work from the deep-linked start
        nav.get_by_role("link", name="Home").click()
        page.get_by_text("The quick path").wait_for()
        page.get_by_role("link", name="Open Train").click()
        page.get_by_text("Start training").wait_for()
        assert page.url.endswith("/train")
        context.close()
    finally:
        srv.stop()
