"""Real Chromium: start a run from the Train page, watch the live curve grow, press Stop."""

import time

from support.browser import X_VALUES_JS, plotted_points, wait_until


def set_up_run(page, server, model: str, described: str, images: int, epochs: int) -> None:
    """On a fresh Train page: pick `model` (its description, `described`, shows its preset is loaded),
    `images` training images and `epochs` epochs (the slider moved by keys from 1)."""
    page.goto(server.url + "/train")
    page.get_by_text("Start training").wait_for()
    page.get_by_role("combobox", name="Architecture").click()
    page.get_by_role("option", name=model).click()
    page.get_by_text(described).wait_for()
    limit = page.get_by_role("spinbutton", name="Training images (0 = all)")
    limit.fill(str(images))
    limit.press("Enter")
    slider = page.get_by_role("group", name="Epochs").locator("input")
    slider.focus()
    slider.press("Home")
    for _ in range(epochs - 1):
        slider.press("ArrowRight")
    page.wait_for_timeout(1000)
    assert page.get_by_role("group", name="Epochs").locator("input").input_value() == str(epochs)


def test_live_curve_grows_then_stop(page, server):
    # a 3-epoch cnn_basic run on a 20,000-image subset: long enough to be still training when Stop
    # is pressed after the page switches (one epoch, about 4 s now, could end before it)
    set_up_run(page, server, "cnn_basic", "The textbook CNN", 20000, 3)
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
    # a second of training on 1,000 images: its test pass is the larger part of the run
    set_up_run(page, server, "better_cnn", "Two conv pairs with BatchNorm", 1000, 1)
    # every text the progress bar shows, with the loss chart's points at that moment, noted by the
    # page as they change
    page.evaluate(
        """(xs) => {
      const points = new Function('return ' + xs)();
      window.__bar = [];
      new MutationObserver(() => {
        const plot = document.querySelector('.st-key-batch_chart .js-plotly-plot');
        const n = plot && plot.data ? points(plot.data[0]).length : 0;
        for (const bar of document.querySelectorAll('[data-testid="stProgress"]')) {
          const text = bar.innerText.trim();
          const last = window.__bar.at(-1);
          if (text && !(last && last[0] === text && last[1] === n)) window.__bar.push([text, n]);
        }
      }).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
    }""",
        X_VALUES_JS,
    )
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("better_cnn · completed").wait_for(timeout=120_000)
    seen = page.evaluate("window.__bar")
    texts = [text for text, _ in seen]
    trained = [i for i, t in enumerate(texts) if t.startswith("every batch trained")]
    assert trained, seen
    # meanwhile the chart shows the whole curve: 8 batches of 128 from 900 training images
    assert any(n == 8 for text, n in seen if text.startswith("every batch trained")), seen
    assert any(t.startswith("epoch 1/1") for t in texts[: trained[0]]), texts  # the training before it
