"""Real Chromium: click a point of the embedding map to look inside that digit; move the filters' epoch."""

import re

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from support.browser import wait_until

Z_JS = """(key) => {
    const plot = document.querySelector('.st-key-' + key + ' .js-plotly-plot');
    return plot && plot.data ? JSON.stringify(plot.data[0].z) : '';
}"""


def open_inside(page, server):
    page.goto(server.url + "/inside")
    page.get_by_text("ACTIVE RUNS").wait_for(timeout=120_000)
    page.get_by_text("One channel up close").wait_for(timeout=120_000)


def test_clicking_a_map_point_shows_that_digits_activations(page, server):
    open_inside(page, server)
    page.get_by_role("tab", name="Embedding map").click()
    chart = page.locator(".st-key-inside_map .js-plotly-plot")
    chart.wait_for(timeout=60_000)
    points = chart.locator(".scatterlayer .trace .points path")
    assert wait_until(lambda: points.count() >= 2000, timeout_s=60)
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    point = points.nth(points.count() // 2)  # a point in the middle of one digit's trace
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    heading = page.get_by_role("heading", name=re.compile(r"Test digit #\d+: a \d"))
    heading.wait_for(timeout=30_000)
    assert ", predicted " in heading.inner_text()
    # its activations: the conv grids of that digit, drawn below the map
    grids = page.locator(".st-key-clicked_1 .js-plotly-plot")
    grids.wait_for(timeout=30_000)
    assert wait_until(lambda: page.evaluate(Z_JS, "clicked_1") not in ("", "null"), timeout_s=30)
    assert page.get_by_role("button", name="Open in Draw").count() == 1  # the one beside the clicked digit


def test_moving_the_epoch_slider_changes_the_filter_images(page, server):
    jobs = JobManager(RunStore(server.store), max_concurrent=1)
    run = jobs.submit(TrainConfig.from_dict(dict(model="cnn_1", epochs=2, limit=2000)), actor=ADMIN)
    assert jobs.wait(run.id, timeout_s=240).status == "completed", jobs.log_tail(run.id)
    open_inside(page, server)
    page.get_by_role("combobox", name="Model").click()
    page.get_by_role("option", name=run.id[-6:]).click()
    page.get_by_role("tab", name="Filters over time").click()
    page.get_by_text("at epoch 2 (press play to animate)").wait_for(timeout=60_000)
    at_two = wait_until(lambda: page.evaluate(Z_JS, "filters_time") or None, timeout_s=30)
    page.locator(".st-key-inside_filter_epoch input[type='range']").focus()  # react-aria's hidden input
    page.keyboard.press("ArrowLeft")
    page.get_by_text("at epoch 1 (press play to animate)").wait_for(timeout=30_000)
    at_one = wait_until(
        lambda: (z := page.evaluate(Z_JS, "filters_time")) != at_two and z or None, timeout_s=30
    )
    assert at_one and at_one != at_two


def test_look_inside_from_evaluate_then_open_in_draw(page, server):
    """Evaluate's gallery -> Inside -> Draw, the same digit travelling, as a learner clicks through."""
    page.goto(server.url + "/evaluate")
    page.get_by_text("All mistakes").wait_for(timeout=120_000)
    page.locator(".st-key-errors_inside button").click()
    page.get_by_text("One channel up close").wait_for(timeout=120_000)
    assert page.url.endswith("/inside")
    page.get_by_text(re.compile(r"Input: Evaluate \(#\d+, a \d\)")).wait_for()
    page.locator(".st-key-inside_draw button").click()
    page.get_by_text("Showing a digit opened from the Inside page.").wait_for(timeout=60_000)
    assert page.url.endswith("/draw")
