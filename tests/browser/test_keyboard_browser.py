"""Real Chromium, keyboard only (no click, no mouse): set up a run on Train, start it and stop it;
on Evaluate pick a cell of the confusion matrix and page its gallery. Focus moves by Tab and the
arrow keys, as a learner who cannot use a mouse moves it."""

from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from support.browser import wait_until

FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return "";
  const td = e.closest("td[data-true]");
  if (td) return "cell " + td.dataset.true + "," + td.dataset.pred;
  const tags = ["BUTTON", "INPUT", "TEXTAREA", "SELECT", "A"];
  const control = tags.includes(e.tagName) || e.getAttribute("role");
  if (!control) return "";  // a container that takes focus (the main area) is not a control
  const label = e.labels && e.labels.length ? e.labels[0].innerText : "";
  return (e.getAttribute("aria-label") || label || e.innerText || "").trim();
}"""


def tab_to(page, wanted, limit: int = 300, exact: bool = False) -> str:
    """Press Tab until the focused element's name contains (or is) `wanted`; return that name."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        name = page.evaluate(FOCUSED)
        found = name == wanted if exact else wanted in name
        if found and not name.startswith("Help for"):  # not the label's help button
            return name
    raise AssertionError(f"{wanted!r} is not reachable with Tab within {limit} presses")


def test_train_set_up_start_and_stop_by_keyboard(page, server):
    jobs = JobManager(RunStore(server.store))
    before = {r.id for r in jobs.list()}
    page.goto(server.url + "/train")
    page.get_by_role("button", name="Start training").wait_for(timeout=120_000)
    tab_to(page, "Training images")
    page.keyboard.press("Control+A")
    page.keyboard.type("5000")
    page.keyboard.press("Enter")
    tab_to(page, "Start training")
    page.keyboard.press("Enter")
    run = wait_until(lambda: next((r for r in jobs.list() if r.id not in before), None), timeout_s=60)
    assert run.config["limit"] == 5000
    page.get_by_role("button", name="Stop").wait_for(timeout=60_000)
    tab_to(page, "Stop")
    page.keyboard.press("Enter")
    done = jobs.wait(run.id, timeout_s=120)
    assert done.status in ("stopped", "completed"), done.reason


def test_evaluate_pick_a_cell_and_page_its_gallery_by_keyboard(page, server):
    page.goto(server.url + "/evaluate")
    page.get_by_text("Most confused pairs").wait_for(timeout=120_000)
    cells = page.locator(".st-key-cm_chart td[data-true][data-pred]")
    assert wait_until(lambda: cells.count() == 100, timeout_s=30)
    first = tab_to(page, "cell ")  # one tab stop for the whole grid
    assert first == "cell 0,0"
    for key in ("ArrowDown", "ArrowDown", "ArrowRight", "ArrowLeft"):
        page.keyboard.press(key)
    assert page.evaluate(FOCUSED) == "cell 2,0"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(FOCUSED) == "cell 2,2"
    page.keyboard.press("Enter")  # the diagonal: the correct 2s the model was least sure of
    page.get_by_text("Correct 2s the model was least sure of").wait_for(timeout=30_000)
    picked = page.locator(".st-key-cm_chart td.picked")
    assert wait_until(lambda: picked.count() == 1, timeout_s=10)
    assert picked.get_attribute("aria-selected") == "true"
    shown = page.locator(".st-key-cell_gallery [data-testid='stImage'] img").first
    assert wait_until(lambda: shown.get_attribute("alt"), timeout_s=30)
    first_digit = shown.get_attribute("alt")  # "test digit 1,234: a 2, read as 2 with 51% confidence"
    assert first_digit.startswith("test digit ") and ": a 2, read as 2" in first_digit
    tab_to(page, "Page", exact=True)  # the gallery's page number
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    assert wait_until(lambda: shown.get_attribute("alt") != first_digit or None, timeout_s=30)
