"""Canvas/upload preprocessing, as MNIST was made, and the predict CLI."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnist_core.data.pixels import MNIST_MEAN, MNIST_STD
from mnist_core.data.preprocess import MAX_PIXELS, InputError, load_image, preprocess
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
