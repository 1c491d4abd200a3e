"""Real Chromium: draw a 1 and a 7 with the mouse; the default model reads them, then explains them."""

from support.browser import decoded_images, wait_until

PREDICTION = ".st-key-draw_prediction [data-testid='stMetricValue']"
SALIENCY = ".st-key-draw_saliency [data-testid='stImage'] img"


def draw(page, strokes):
    canvas = page.locator("canvas.draw-canvas")
    canvas.wait_for()
    box = canvas.bounding_box()
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=12)
        page.mouse.up()


def prediction(page) -> str:
    shown = page.locator(PREDICTION)
    return shown.first.inner_text().strip() if shown.count() else ""


def test_drawn_one_and_seven_are_read(page, server):
    page.goto(server.url + "/draw")
    page.get_by_text("Draw a digit on the canvas").wait_for()
    page.get_by_text("ACTIVE RUNS").wait_for()  # the app's shell is up: no rerun will remount the canvas
    page.wait_for_timeout(500)
    draw(page, [[(140, 40), (138, 150), (136, 250)]])
    assert wait_until(lambda: prediction(page) == "1" or None, timeout_s=30)
    page.get_by_role("button", name="Clear", exact=True).click()
    page.get_by_text("Draw a digit on the canvas").wait_for()
    assert prediction(page) == "–"  # the metric stays, without a digit
    draw(page, [[(70, 60), (140, 60), (210, 60), (165, 145), (120, 240)]])
    assert wait_until(lambda: prediction(page) == "7" or None, timeout_s=30)
    page.get_by_text("Why? Saliency maps").wait_for()
    # the maps follow as pictures: one per method (the default better_cnn has all four)
    assert wait_until(lambda: decoded_images(page, SALIENCY) == 4 or None, timeout_s=30)
    assert page.locator(".st-key-draw_saliency [data-testid='stPlotlyChart']").count() == 0
    # the canvas's own toolbar: undo takes the stroke back (nothing left to read), redo restores it
    page.get_by_role("button", name="Undo").click()
    assert wait_until(lambda: prediction(page) == "–" or None, timeout_s=30)
    page.get_by_role("button", name="Redo").click()
    assert wait_until(lambda: prediction(page) == "7" or None, timeout_s=30)
