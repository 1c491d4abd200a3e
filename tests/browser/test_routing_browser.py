"""Real Chromium: a deep link that is a fresh server's first request still gets app.py's shell.

Streamlit runs its legacy pages/-folder mode until some session calls st.navigation; pages leave it
through ensure_app_shell() (public API only). If a Streamlit upgrade changes that behaviour, the
page would show without the app's navigation and sidebar, and this test fails."""

from support import ROOT
from support.browser import Server

# The app's navigation in order: every page file, Home first (a page added or lost fails the test).
TITLES = ["Home", "Lessons", "Data", "Models", "Train", "Runs", "Class wall", "Evaluate", "Inside", "Draw"]
assert len(TITLES) == len(
    list((ROOT / "pages").glob("*.py"))
)  # pages/ holds pages only (the rest: pages/ui/)


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


def test_a_shared_link_that_is_a_fresh_servers_first_request_keeps_its_view(browser, tmp_path):
    """A copied Evaluate address with a confusion cell in it, opened on a server nobody has visited:
    the shell's rerun (the legacy-mode exit) keeps the address, so the same cell opens."""
    srv = Server(tmp_path / "store")
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(90_000)
        page.goto(srv.url + "/evaluate?cell=4-9")
        page.get_by_text("True 4, predicted 9").first.wait_for()
        page.get_by_text("ACTIVE RUNS").wait_for()  # inside app.py's shell
        assert "cell=4-9" in page.url
        context.close()
    finally:
        srv.stop()


WATCH_FIRST_LOAD_JS = """(() => {
  const seen = (window.__firstLoad = {nav: [], starting: false});
  const look = () => {
    for (const a of document.querySelectorAll('[data-testid="stSidebarNav"] a')) {
      const name = a.innerText.trim().split("\\n").pop();  // the title, after the icon's name
      if (a.checkVisibility() && !seen.nav.includes(name)) seen.nav.push(name);
    }
    if (document.body && document.body.innerText.includes("Starting MNIST Lab")) seen.starting = true;
    requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
})();"""


def test_a_fresh_servers_first_visit_says_it_is_starting_and_shows_only_the_apps_pages(browser, tmp_path):
    """The first visit imports PyTorch and the pages (seconds): meanwhile the learner reads that the
    app is starting, and the sidebar never lists the files in pages/ (common, canvas, ...), which
    Streamlit shows until app.py's st.navigation replaces them."""
    srv = Server(tmp_path / "store")
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(WATCH_FIRST_LOAD_JS)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(srv.url + "/")
        page.get_by_text("The quick path").wait_for()
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Draw").wait_for()
        seen = page.evaluate("window.__firstLoad")
        assert seen["starting"], "no word that the app is starting"
        assert sorted(seen["nav"]) == sorted(TITLES), seen["nav"]  # never a file of pages/
        assert not page.get_by_text("Starting MNIST Lab").is_visible()  # gone once the page is up
        context.close()
    finally:
        srv.stop()
