"""Real Chromium: click an off-diagonal cell of the confusion matrix and see those digits."""

from support.browser import decoded_images, wait_until

CELL_GALLERY = ".st-key-cell_gallery [data-testid='stImage'] img"


def test_clicking_a_confusion_cell_opens_its_gallery(page, server):
    page.goto(server.url + "/evaluate")
    page.get_by_text("Most confused pairs").wait_for(timeout=120_000)
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for()
    # the clickable layer: one transparent square per cell, in row-major order (true, predicted)
    points = chart.locator(".scatterlayer .trace .points path")
    wait_until(lambda: points.count() == 100, timeout_s=30)
    true, pred = 5, 3  # the default model's most confused pair
    box = points.nth(true * 10 + pred).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.get_by_text(f"True {true}, predicted {pred}, most confident first").wait_for(timeout=30_000)
    # the gallery: a picture per digit (PNGs made on the server), captioned true -> predicted
    assert wait_until(lambda: decoded_images(page, CELL_GALLERY) > 0, timeout_s=30)
    assert page.get_by_text(f"{true}→{pred}").first.is_visible()
