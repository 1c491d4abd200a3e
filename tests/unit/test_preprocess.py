"""Canvas/upload preprocessing, as MNIST was made, and the predict CLI."""

import io
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from mnist_core.data.pixels import MNIST_MEAN, MNIST_STD
from mnist_core.data.preprocess import (
    MAX_JPEG_PIXELS,
    MAX_PIXELS,
    WORK_SIDE,
    InputError,
    load_image,
    preprocess,
    to_gray,
)
from support import ROOT
from support.drawings import render_like_canvas


def blob(h=280, w=280, box=(30, 60, 200, 120), value=1.0):
    img = np.zeros((h, w), dtype=np.float32)
    r0, c0, r1, c1 = box
    img[r0:r1, c0:c1] = value
    return img


def center_of_mass(img):
    ys, xs = np.indices(img.shape)
    return (ys * img).sum() / img.sum(), (xs * img).sum() / img.sum()


def test_output_is_normalised_28x28_and_black_background():
    out = preprocess(blob())
    assert out.tensor.shape == (1, 1, 28, 28)
    assert abs(out.tensor.min().item() - (0 - MNIST_MEAN) / MNIST_STD) < 1e-5
    assert list(out.stages) == ["grayscale", "inverted", "cropped", "scaled", "centered"]


def test_centring_by_mass_puts_an_off_centre_digit_in_the_middle():
    # an L shape: its mass centre is not its box centre
    img = blob(box=(10, 10, 200, 40)) + blob(box=(170, 10, 200, 150))
    out = preprocess(np.clip(img, 0, 1)).stages["centered"]
    cy, cx = center_of_mass(out)
    assert abs(cy - 13.5) <= 0.75 and abs(cx - 13.5) <= 0.75
    boxed = preprocess(np.clip(img, 0, 1), center=False).stages["centered"]
    assert abs(center_of_mass(boxed)[1] - 13.5) > 1  # without it, the mass sits off-centre


def test_dark_on_light_is_inverted_to_match_light_on_dark():
    light_on_dark = preprocess(blob())
    dark_on_light = preprocess(1.0 - blob())
    assert dark_on_light.inverted and not light_on_dark.inverted
    assert np.allclose(light_on_dark.stages["centered"], dark_on_light.stages["centered"], atol=1e-5)
    kept = preprocess(1.0 - blob(), invert="no").stages["centered"]
    assert (kept > 0.5).sum() > 300  # not inverted: the white page itself fills the 20x20 box


def test_aspect_ratio_is_kept_inside_a_20_pixel_box():
    tall = preprocess(blob(box=(20, 100, 260, 160))).stages["scaled"]  # 240 x 60
    assert tall.shape == (20, 5)
    squashed = preprocess(blob(box=(20, 100, 260, 160)), crop=False, scale=False).stages["centered"]
    assert squashed.shape == (28, 28)


@pytest.mark.parametrize("image", [np.zeros((280, 280)), np.ones((280, 280)), blob(box=(100, 100, 101, 101))])
def test_empty_or_nearly_empty_input_is_refused(image):
    with pytest.raises(InputError, match="looks empty"):
        preprocess(image)


def png_bytes(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_odd_image_modes_are_read():
    digit = Image.fromarray((blob() * 255).astype(np.uint8), "L")
    palette = digit.convert("P")
    cmyk = Image.fromarray((255 - blob() * 255).astype(np.uint8), "L").convert("CMYK")
    rgba = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (60, 30, 120, 200))  # black ink on a transparent canvas
    for img in (palette, cmyk, rgba):
        out = preprocess(load_image(png_bytes(img, "JPEG" if img.mode == "CMYK" else "PNG")))
        assert out.stages["centered"].max() > 0.9


def test_transparent_corrupt_huge_and_non_images_are_refused(tmp_path):
    with pytest.raises(InputError, match="looks empty"):
        preprocess(load_image(png_bytes(Image.new("RGBA", (100, 100), (0, 0, 0, 0)))))
    good = png_bytes(Image.fromarray((blob() * 255).astype(np.uint8)))
    with pytest.raises(InputError, match="corrupt or truncated|not an image"):
        load_image(good[: len(good) // 2])
    with pytest.raises(InputError, match="not an image"):
        load_image(b"%PDF-1.4 definitely not a picture")
    side = int(MAX_PIXELS**0.5) + 100
    huge = tmp_path / "huge.png"
    Image.new("L", (side, side)).save(huge)  # compresses to a few KB; refused before decoding
    with pytest.raises(InputError, match="too large"):
        load_image(huge)


def test_rendered_test_digits_survive_preprocessing(mnist):
    import torch

    from mnist_core.learn.checkpoints import load_checkpoint
    from mnist_core.learn.evaluate import predict_logits
    from mnist_core.paths import default_model_path

    model = load_checkpoint(default_model_path()).model
    rng = np.random.default_rng(1)
    x = torch.cat(
        [preprocess(render_like_canvas(mnist.test_images[i].numpy(), rng)).tensor for i in range(300)]
    )
    acc = (predict_logits(model, x).argmax(1) == mnist.test_labels[:300]).float().mean().item()
    assert acc >= 0.98


def test_predict_cli_reads_a_batch_of_files(tmp_path, mnist):
    rng = np.random.default_rng(2)
    paths = []
    for i in range(4):
        img = render_like_canvas(mnist.test_images[i].numpy(), rng, dark_on_light=i % 2 == 0)
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    (tmp_path / "notes.txt").write_text("not an image")
    out = subprocess.run(
        [sys.executable, "-m", "mnist_core", "predict", *paths, str(tmp_path / "notes.txt")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith(str(tmp_path / "notes.txt")) and "error=" in lines[0]
    for path, line, label in zip(paths, lines[1:], mnist.test_labels[:4].tolist()):
        name, pred, conf = line.split()
        assert name == path and pred == f"prediction={label}"
        assert 0.5 < float(conf.split("=")[1]) <= 1.0


# A real Encapsulated PostScript header: Pillow's EPS plugin would hand such a file to Ghostscript.
EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 280 280\n%%EndComments\n"
    b"newpath 140 40 moveto 140 240 lineto 20 setlinewidth stroke\nshowpage\n%%EOF\n"
)


def test_an_eps_named_png_is_refused_unread(tmp_path):
    assert Image.open(io.BytesIO(EPS)).format == "EPS"  # what Image.open without formats= does
    path = tmp_path / "digit.png"
    path.write_bytes(EPS)
    for source in (path, EPS):
        with pytest.raises(
            InputError, match=r"is not an image this app reads \(a PNG, JPEG, WebP, BMP or GIF file\)"
        ):
            load_image(source)


def test_only_the_uploaders_formats_are_read():
    digit = Image.fromarray((blob() * 255).astype(np.uint8), "L")
    for fmt in ("PNG", "JPEG", "WEBP", "BMP", "GIF"):
        assert preprocess(load_image(png_bytes(digit, fmt))).stages["centered"].max() > 0.9
    for fmt in ("TIFF", "PPM", "ICO", "PCX"):
        with pytest.raises(InputError, match="not an image this app reads"):
            load_image(png_bytes(digit, fmt))


def phone_photo(width=4032, height=3024, orientation=1) -> bytes:
    """A 12 MP phone photo of a dark digit on grey paper, as a JPEG with its EXIF orientation."""
    a = np.full((height, width, 3), 200, np.uint8)
    a[height // 4 : 3 * height // 4, width // 2 - 120 : width // 2 + 120] = 30  # a thick "1"
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, exif=exif.tobytes())
    return buf.getvalue()


def test_a_12_megapixel_phone_photo_is_read_small_and_upright():
    img = load_image(phone_photo())
    assert max(img.size) <= WORK_SIDE  # decoded at a reduced scale, then reduced: no 12 MP copy
    out = preprocess(to_gray(img))
    assert out.stages["grayscale"].shape == (768, 1024)
    assert out.inverted and out.stages["centered"].max() > 0.9
    turned = preprocess(to_gray(load_image(phone_photo(orientation=6))))  # held upright: rotate 90
    assert turned.stages["grayscale"].shape == (1024, 768)
    assert turned.stages["cropped"].shape[0] < turned.stages["cropped"].shape[1]  # the 1 lies down


def test_a_largest_allowed_upload_never_makes_a_full_size_float_copy():
    side = int(MAX_PIXELS**0.5) - 10  # just under the cap: decoded in full, as a PNG is
    img = Image.new("L", (side, side), 255)
    img.paste(0, (side // 3, side // 5, side // 3 + side // 10, 4 * side // 5))
    data = png_bytes(img)
    tracemalloc.start()  # NumPy's arrays are traced; a float32 copy at full size would be 64 MB
    try:
        out = preprocess(to_gray(load_image(data)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert max(out.stages["grayscale"].shape) == WORK_SIDE
    assert peak < 40 * 2**20, f"{peak / 2**20:.0f} MB traced"
    assert out.stages["centered"].max() > 0.9


def test_a_big_jpeg_is_allowed_beyond_the_png_cap_and_every_format_has_a_cap():
    w, h = 6000, 4000  # 24 MP: a newer phone's photo, over MAX_PIXELS
    assert MAX_PIXELS < w * h <= MAX_JPEG_PIXELS
    big = Image.new("L", (w, h), 220)
    big.paste(20, (2800, 1000, 3200, 3000))
    assert max(load_image(png_bytes(big, "JPEG")).size) <= WORK_SIDE
    with pytest.raises(InputError, match="6000x4000 pixels, too large; use an image under 16 megapixels"):
        load_image(png_bytes(big, "PNG"))


def test_the_same_upload_is_decoded_once():
    from mnist_core.data import preprocess as module

    data = phone_photo(orientation=3)
    first = load_image(data)
    assert sum(1 for k in module._cache if k[0] == __import__("hashlib").sha256(data).digest()) == 1
    first.paste(0, (0, 0, 500, 500))  # a caller's change to its copy does not reach the cache
    again = load_image(data)
    assert again.size == first.size and again.getpixel((10, 10)) != 0
