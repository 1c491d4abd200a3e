"""Real Chromium: click an off-diagonal cell of the confusion matrix and see those digits."""

from support.browser import decoded_images, wait_until

CELL_GALLERY = ".st-key-cell_gallery [data-testid='stImage'] img"


def test_clicking_a_confusion_cell_opens_its_gallery(page, server):
    page.goto(server.url + "/evaluate")
    page.get_by_text("Most confused pairs").wait_for(timeout=120_000)
    # the matrix: an HTML table, one cell per (true, predicted) pair; no chart library on the page
    cells = page.locator(".st-key-cm_chart td[data-true][data-pred]")
    assert wait_until(lambda: cells.count() == 100, timeout_s=30)
    assert page.locator("[data-testid='stPlotlyChart']").count() == 0
    true, pred = 5, 3  # the default model's most confused pair
    page.locator(f".st-key-cm_chart td[data-true='{true}'][data-pred='{pred}']").click()
    page.get_by_text(f"True {true}, predicted {pred}, most confident first").wait_for(timeout=30_000)
    # the gallery: a picture per digit (PNGs made on the server), captioned true -> predicted
    assert wait_until(lambda: decoded_images(page, CELL_GALLERY) > 0, timeout_s=30)
    assert page.get_by_text(f"{true}→{pred}").first.is_visible()
    picked = page.locator(".st-key-cm_chart td.picked")
    assert wait_until(lambda: picked.count() == 1, timeout_s=10)
    assert (picked.get_attribute("data-true"), picked.get_attribute("data-pred")) == (str(true), str(pred))
