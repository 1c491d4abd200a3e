"""Real Chromium with axe-core: no critical or serious WCAG 2.1 A/AA violation on any page, in the
light and the dark theme, with an empty store, a run training, a finished run, each Inside tab and
a drawn digit with its saliency maps. A failure lists every violation with its element."""

import pytest

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from support.axe import axe_version, blocking_violations
from support.browser import draw_strokes, wait_until

PAGES = ["", "lessons", "data", "models", "train", "runs", "wall", "evaluate", "inside", "draw"]


def settled(page, server, path: str) -> None:
    """Open a page and wait until the script has run and its pictures and charts are drawn."""
    page.goto(f"{server.url}/{path}")
    page.get_by_text("ACTIVE RUNS").wait_for(state="attached", timeout=120_000)  # a phone hides it
    running = page.locator("[data-testid='stStatusWidgetRunningIcon']")
    wait_until(lambda: running.count() == 0 or None, timeout_s=60)
    page.wait_for_timeout(2500)  # the last pictures decode and the charts draw


def announced(page) -> str:
    """The text of the page's polite live region (pages/ui/announce.py)."""
    region = page.locator("#mnist-lab-announcer[role='status'][aria-live='polite']")
    wait_until(lambda: region.count() == 1 or None, timeout_s=30)
    return region.text_content() or ""


def check(page, where: str, problems: list[str]) -> None:
    problems += [f"{where}: {line}" for line in blocking_violations(page)]


@pytest.fixture()
def themed(browser, server, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=request.param)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(server.url)
    yield pg
    context.close()


@pytest.mark.parametrize("themed", ["light", "dark"], indirect=True)
def test_every_page_of_a_fresh_dashboard(themed, server):
    problems: list[str] = []
    for path in PAGES:
        settled(themed, server, path)
        check(themed, f"/{path}", problems)
    assert not problems, f"axe-core {axe_version()} found:\n" + "\n".join(problems)


def test_inside_tabs_a_drawn_digit_and_a_run_from_start_to_finish(page, server):
    problems: list[str] = []
    settled(page, server, "inside")
    for tab in ("Embedding map", "Filters over time"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(4000)
        check(page, f"/inside {tab}", problems)

    settled(page, server, "draw")
    draw_strokes(page, [[(70, 60), (140, 60), (210, 60), (165, 145), (120, 240)]])
    page.get_by_text("Why? Saliency maps").wait_for(timeout=60_000)
    page.wait_for_timeout(3000)
    check(page, "/draw with a digit and its maps", problems)
    assert "The network reads a" in announced(page)  # the prediction, said politely

    jobs = JobManager(RunStore(server.store))
    cfg = TrainConfig(model="mlp_128_64", epochs=3, limit=20_000, batch_size=64)
    run = jobs.submit(cfg, actor=ADMIN)
    wait_until(lambda: jobs.get(run.id).progress or not jobs.get(run.id).active or None, timeout_s=90)
    settled(page, server, "train")
    check(page, f"/train while a run trains ({jobs.get(run.id).status})", problems)
    assert jobs.wait(run.id, timeout_s=240).status == "completed", jobs.get(run.id).reason
    for path in ("train", "runs", f"evaluate?run={run.id}"):
        settled(page, server, path)
        check(page, f"/{path} after the run", problems)
        if path == "train":  # the live region says how the last epoch went, not each batch
            assert announced(page).startswith("Epoch 3 done: validation accuracy ")
    assert not problems, f"axe-core {axe_version()} found:\n" + "\n".join(problems)


# Streamlit's main area scrolls, not the document: a page too wide shows in its scroll width
WIDER = """() => { const main = document.querySelector('[data-testid="stMain"]');
  return main.scrollWidth - main.clientWidth; }"""


@pytest.mark.parametrize("width", [390, 700])
def test_every_page_reflows_on_a_phone_and_at_200_percent_zoom(browser, server, width):
    """WCAG 1.4.10: no page scrolls sideways on a 390-pixel phone, nor at 200% zoom of a 1,400-pixel
    window (700 CSS pixels wide); wide tables and charts scroll inside their own box."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        wide = []
        for path in PAGES:
            settled(page, server, path)
            over = page.evaluate(WIDER)
            if over > 1:
                wide.append(f"/{path}: {over} px wider than the {width}-pixel window")
        assert not wide, "\n".join(wide)
    finally:
        context.close()
