"""Real Chromium: draw a 1 and a 7 with the mouse; the default model reads them, then explains them.
Upload a phone photo (read) and an EPS named .png (refused) through the real uploader."""

from PIL import Image

from support.browser import decoded_images, wait_until
from support.browser import draw_strokes as draw

PREDICTION = ".st-key-draw_prediction [data-testid='stMetricValue']"
SALIENCY = ".st-key-draw_saliency [data-testid='stImage'] img"


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


def phone_photo(gray28, path) -> None:
    """A 12 MP (4032x3024) phone photo of a digit written in dark ink on grey paper, as a JPEG."""
    ink = Image.fromarray(gray28).resize((1400, 1400), Image.Resampling.BILINEAR)
    paper = Image.new("L", (4032, 3024), 200)
    paper.paste(Image.eval(ink, lambda v: 200 - v * 170 // 255), (1300, 800))
    paper.convert("RGB").save(path, "JPEG", quality=85)


def test_an_uploaded_phone_photo_is_read_and_a_disguised_eps_is_refused(page, server, mnist, tmp_path):
    """The real uploader: an EPS file named .png gets one sentence (it is never decoded); a 12 MP
    phone photo is read and predicted."""
    eps = tmp_path / "digit.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 280 280\n%%EndComments\nshowpage\n%%EOF\n")
    photo = tmp_path / "photo.jpg"
    phone_photo(mnist.test_images[0].numpy(), photo)
    assert photo.stat().st_size < 5 * 2**20  # within the server's upload limit
    page.goto(server.url + "/draw")
    page.get_by_text("Draw a digit on the canvas").wait_for()
    page.get_by_role("tab", name="Upload").click()
    uploader = page.locator("[data-testid='stFileUploaderDropzoneInput']")
    uploader.set_input_files(str(eps))
    page.get_by_text("is not an image this app reads").wait_for()
    assert prediction(page) == "–"
    uploader.set_input_files(str(photo))
    label = str(int(mnist.test_labels[0]))
    assert wait_until(lambda: prediction(page) == label or None, timeout_s=60)
    # the refusal goes once the run that read the photo ends (Streamlit keeps a rerun's stale
    # elements on screen until the script has drawn past them)
    refusal = page.get_by_text("is not an image this app reads")
    assert wait_until(lambda: refusal.count() == 0 or None, timeout_s=30)
