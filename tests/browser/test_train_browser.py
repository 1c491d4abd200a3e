"""Real Chromium: start a run from the Train page, watch the live curve grow, press Stop."""

import time

from support.browser import plotted_points, wait_until


def test_live_curve_grows_then_stop(page, server):
    page.goto(server.url + "/train")
    page.get_by_text("Start training").wait_for()
    # a 3-epoch cnn_basic run on a 20,000-image subset: long enough to be still training when Stop
    # is pressed after the page switches (one epoch, about 4 s now, could end before it)
    page.get_by_role("combobox", name="Architecture").click()
    page.get_by_role("option", name="cnn_basic").click()
    page.get_by_text("The textbook CNN").wait_for()
    limit = page.get_by_role("spinbutton", name="Training images (0 = all)")
    limit.fill("20000")
    limit.press("Enter")
    epochs = page.get_by_role("group", name="Epochs").locator("input")
    epochs.focus()
    epochs.press("Home")
    epochs.press("ArrowRight")
    epochs.press("ArrowRight")
    page.wait_for_timeout(1000)
    assert page.get_by_role("group", name="Epochs").locator("input").input_value() == "3"
    page.get_by_role("button", name="Start training").click()

    page.get_by_text("cnn_basic · running").wait_for()
    first = wait_until(lambda: plotted_points(page, key="batch_chart"), timeout_s=60)

    # Start sits at the foot of the settings: the page brought the run up, its live chart in full view
    # (polled: the chart's element is replaced while the page redraws, and has no box meanwhile)
    in_view = """() => {
      const chart = document.querySelector(".st-key-batch_chart");
      if (!chart) return false;
      const box = chart.getBoundingClientRect();
      return box.height > 0 && box.top >= 0 && box.bottom <= window.innerHeight;
    }"""
    wait_until(lambda: page.evaluate(in_view), timeout_s=10)
    later = wait_until(lambda: (n := plotted_points(page, key="batch_chart")) > first and n, timeout_s=30)
    assert later > first
    page.screenshot(path=str(server.log.name).replace("streamlit.log", "train-live.png"), full_page=True)

    # while it trains, leave for another page and come back: the run is still attached
    t0 = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Home").click()
    page.get_by_text("The quick path").wait_for()
    print(f"page switch while training: {time.perf_counter() - t0:.2f} s")  # a figure, not a gate
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
    page.get_by_text("cnn_basic · running").wait_for()
    # the view follows its run in one long script run: a click in it is served at once all the same
    # (Streamlit would hold it until that script run ends, a minute later)
    smoothing = page.locator(".st-key-run_view").get_by_role("slider", name="Smoothing")
    smoothing.focus()
    smoothing.press("ArrowRight")
    names = """() => Array.from(document.querySelectorAll('.st-key-batch_chart .js-plotly-plot'))
      .flatMap((p) => (p.data || []).map((t) => t.name))"""
    wait_until(lambda: "smoothed (0.61)" in page.evaluate(names), timeout_s=10)
    page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("cnn_basic · stopped").wait_for(timeout=15_000)
    page.get_by_text("Stopped by request").wait_for()


def test_after_the_last_batch_the_bar_says_what_is_left(page, server):
    """After a run's last batch come its last validation, the test pass on the 10,000 test digits and
    saving: the bar says so (full), rather than standing short of its end until "completed"."""
    page.goto(server.url + "/train")
    page.get_by_text("Start training").wait_for()
    page.get_by_role("combobox", name="Architecture").click()
    page.get_by_role("option", name="better_cnn").click()
    page.get_by_text("Two conv pairs with BatchNorm").wait_for()
    limit = page.get_by_role("spinbutton", name="Training images (0 = all)")
    limit.fill("1000")  # a second of training; its test pass is the larger part of the run
    limit.press("Enter")
    epochs = page.get_by_role("group", name="Epochs").locator("input")
    epochs.focus()
    epochs.press("Home")
    page.wait_for_timeout(1000)
    assert page.get_by_role("group", name="Epochs").locator("input").input_value() == "1"
    # every text the progress bar shows, noted by the page as it changes
    page.evaluate("""() => {
      window.__bar = [];
      new MutationObserver(() => {
        for (const bar of document.querySelectorAll('[data-testid="stProgress"]')) {
          const text = bar.innerText.trim();
          if (text && window.__bar.at(-1) !== text) window.__bar.push(text);
        }
      }).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
    }""")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("better_cnn · completed").wait_for(timeout=120_000)
    texts = page.evaluate("window.__bar")
    trained = [i for i, t in enumerate(texts) if t.startswith("every batch trained")]
    assert trained, texts
    assert any(t.startswith("epoch 1/1") for t in texts[: trained[0]]), texts  # the training before it
