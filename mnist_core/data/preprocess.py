"""Any digit image -> an MNIST-style 28x28 input, made the way MNIST itself was, stage by stage."""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .pixels import normalize

# What the Draw page's uploader accepts; Image.open tries these plugins only, so a file of any
# other kind (an EPS or PostScript file named .png would reach Ghostscript) is refused unread.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
FORMAT_NAMES = "a PNG, JPEG, WebP, BMP or GIF file"
# Pixels an image may declare before it is decoded. PNG, WebP, BMP and GIF decode in full: 16 MP
# is more than a 12 MP phone photo or a 5K screenshot, and at most 64 MB while it is decoded. A
# JPEG decodes at 1/2 to 1/8 scale (Image.draft), so a 48-50 MP phone photo is allowed.
MAX_PIXELS = 16_000_000
MAX_JPEG_PIXELS = 50_000_000
WORK_SIDE = 1024  # images are reduced to this longest side before any float copy: 4 MB, not 100s
CACHE_BYTES = 32 * 1024 * 1024  # decoded, reduced uploads kept (a toggle re-reads none of them)
BOX = 20  # MNIST digits were scaled to fit 20x20, then centred by mass in 28x28
SIDE = 28

_cache: OrderedDict[tuple[bytes, tuple[str, ...]], Image.Image] = OrderedDict()
_cache_lock = threading.Lock()


class InputError(ValueError):
    """The image cannot be read as a digit; the message tells the learner what to do."""


def load_image(source: str | Path | bytes | Image.Image, formats: tuple[str, ...] = FORMATS) -> Image.Image:
    """Open a file path, raw bytes or a PIL image, refusing huge, corrupt and non-image input and
    any format but `formats`; the image comes back reduced to WORK_SIDE at most. Raw bytes are
    decoded once: the same bytes again (the page's next rerun) come from a small cache."""
    if isinstance(source, Image.Image):
        return _reduced(source, "the image")
    if not isinstance(source, bytes):
        return _decode(source, Path(source).name, formats)
    key = (hashlib.sha256(source).digest(), tuple(formats))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key].copy()
    img = _decode(io.BytesIO(source), "The upload", formats)
    with _cache_lock:
        _cache[key] = img
        while len(_cache) > 1 and sum(_image_bytes(i) for i in _cache.values()) > CACHE_BYTES:
            _cache.popitem(last=False)
    return img.copy()


def _image_bytes(img: Image.Image) -> int:
    return img.width * img.height * len(img.getbands())


def _too_large(name: str, img: Image.Image, limit: int) -> InputError:
    return InputError(
        f"{name} is {img.width}x{img.height} pixels, too large; use an image under "
        f"{limit // 1_000_000} megapixels (a digit needs only 28x28)."
    )


def _decode(source, name: str, formats: tuple[str, ...]) -> Image.Image:
    try:
        img = Image.open(source, formats=list(formats))
    except FileNotFoundError:
        raise InputError(f"{name}: file not found.") from None
    except Image.DecompressionBombError:  # PIL refuses to open more than ~179 megapixels at all
        raise InputError(
            f"{name} is too large; use an image under {MAX_PIXELS // 1_000_000} megapixels "
            "(a digit needs only 28x28)."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InputError(
            f"{name} is not an image this app reads ({FORMAT_NAMES}); save it as a PNG or JPEG."
        ) from None
    limit = MAX_JPEG_PIXELS if img.format == "JPEG" else MAX_PIXELS
    if img.width * img.height > limit:
        raise _too_large(name, img, limit)
    try:
        if img.format == "JPEG":  # decode at the smallest scale that keeps WORK_SIDE
            img.draft(None, (WORK_SIDE, WORK_SIDE))
        img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{name} is corrupt or truncated ({exc}).") from None
    return _reduced(img, name)


def _reduced(img: Image.Image, name: str) -> Image.Image:
    """`img` with its longest side WORK_SIDE at most (its EXIF, hence its rotation, kept)."""
    if max(img.size) <= WORK_SIDE:
        return img
    try:
        if img.mode in ("1", "P", "PA"):  # PIL resizes these by nearest pixel: thin ink would vanish
            img = img.convert("RGBA" if img.mode != "1" else "L")
        k = WORK_SIDE / max(img.size)
        size = (max(1, round(img.width * k)), max(1, round(img.height * k)))
        img = img.resize(size, Image.Resampling.BOX, reducing_gap=2.0)  # a new image, its info kept
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(
            f"{name} ({img.mode}) cannot be reduced ({exc}); save it as a PNG or JPEG."
        ) from None
    return img


def to_gray(img: Image.Image) -> np.ndarray:
    """Grayscale in [0, 1]; transparency is composited over white, as a page would show it."""
    try:
        img = ImageOps.exif_transpose(img)  # phone photos carry their rotation in EXIF
        if img.mode in ("P", "PA", "LA", "RGBA", "La") or "transparency" in img.info:
            img = img.convert("RGBA")
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, img)
        if img.mode == "CMYK":
            img = img.convert("RGB")
        elif img.mode in ("LAB", "HSV"):  # PIL cannot convert these; their lightness band is the gray
            img = img.getchannel("L" if img.mode == "LAB" else "V")
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except (OSError, ValueError, SyntaxError) as exc:  # corrupt metadata or a mode PIL cannot convert
        raise InputError(
            f"This image ({img.mode}) cannot be turned into grayscale ({exc}); save it as a PNG or JPEG."
        ) from None


def rgba_to_gray(rgba: np.ndarray) -> np.ndarray:
    """A canvas's RGBA array (H, W, 4) -> grayscale in [0, 1] composited over white."""
    return to_gray(Image.fromarray(np.asarray(rgba, dtype=np.uint8), "RGBA"))


@dataclass
class Preprocessed:
    """The model input plus every intermediate image (each a float array in [0, 1])."""

    tensor: torch.Tensor  # (1, 1, 28, 28), normalised
    stages: dict[str, np.ndarray] = field(default_factory=dict)
    inverted: bool = False


def _bbox(ink: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    rows, cols = np.where(ink > threshold)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear, anti-aliased resize of a 2-D float image."""
    t = torch.from_numpy(np.ascontiguousarray(img))[None, None]
    return F.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()


def preprocess(
    image,
    invert: str = "auto",
    crop: bool = True,
    scale: bool = True,
    center: bool = True,
    min_ink: float = 0.002,
) -> Preprocessed:
    """Grayscale -> (invert) -> crop to the ink -> fit 20x20 -> centre of mass at 28x28's centre.

    invert: "auto" (flip light backgrounds, judged from the border), "yes" or "no".
    Switching a stage off shows why it matters: crop=False keeps the margins, scale=False squashes
    the whole image to 28x28, center=False centres the box instead of the mass.
    """
    if isinstance(image, np.ndarray):
        if image.ndim == 3:
            gray = to_gray(Image.fromarray(np.asarray(image, dtype=np.uint8)))
        else:
            gray = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    else:
        gray = to_gray(load_image(image))
    gray = np.clip(gray.astype(np.float32), 0.0, 1.0)
    stages = {"grayscale": gray}
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    flip = invert == "yes" or (invert == "auto" and float(np.median(border)) > 0.5)
    ink = 1.0 - gray if flip else gray
    stages["inverted"] = ink
    if invert != "no":  # a grey paper or photo background becomes black; "no" shows the raw image
        ink = np.clip(
            ink - float(np.median(np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]]))), 0.0, None
        )
    peak = float(ink.max())
    if peak < 0.15 or float((ink > 0.5 * peak).mean()) < min_ink:
        raise InputError("The image looks empty: draw a digit (or upload one) with clearly visible ink.")
    ink = ink / peak
    if crop:
        r0, r1, c0, c1 = _bbox(ink, 0.1)
        ink = ink[r0:r1, c0:c1]
    stages["cropped"] = ink
    if scale:
        h, w = ink.shape
        k = BOX / max(h, w)
        ink = np.clip(resize(ink, max(1, round(h * k)), max(1, round(w * k))), 0.0, 1.0)
        stages["scaled"] = ink
        canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
        h, w = ink.shape
        top, left = (SIDE - h) // 2, (SIDE - w) // 2
        if center:
            ys, xs = np.indices(ink.shape)
            mass = ink.sum()
            cy, cx = (ys * ink).sum() / mass, (xs * ink).sum() / mass
            top = int(np.clip(round(SIDE / 2 - 0.5 - cy), 0, SIDE - h))
            left = int(np.clip(round(SIDE / 2 - 0.5 - cx), 0, SIDE - w))
        canvas[top : top + h, left : left + w] = ink
    else:
        canvas = np.clip(resize(ink, SIDE, SIDE), 0.0, 1.0)
        stages["scaled"] = canvas
    stages["centered"] = canvas
    tensor = normalize(canvas)
    return Preprocessed(tensor, stages, flip)


def perturb(
    canvas28: np.ndarray, rotate: float = 0.0, shift_x: float = 0.0, shift_y: float = 0.0, thicken: int = 0
) -> np.ndarray:
    """The robustness probe: rotate (degrees), shift (pixels) and thicken (dilate) a 28x28 digit."""
    x = torch.from_numpy(np.ascontiguousarray(canvas28, dtype=np.float32))[None, None]
    if thicken:
        x = F.max_pool2d(x, 2 * int(thicken) + 1, stride=1, padding=int(thicken))
    if rotate or shift_x or shift_y:
        a = np.radians(rotate)
        theta = torch.tensor(
            [[[np.cos(a), -np.sin(a), -2 * shift_x / SIDE], [np.sin(a), np.cos(a), -2 * shift_y / SIDE]]],
            dtype=torch.float32,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x[0, 0].clamp(0, 1).numpy()


def render_like_canvas(
    digit28: torch.Tensor | np.ndarray,
    rng: np.random.Generator,
    side: int = 280,
    dark_on_light: bool | None = None,
) -> np.ndarray:
    """An MNIST digit as a learner's canvas gives it: drawn big, off-centre, at a random size, and
    dark on light (like the Draw page's canvas) or light on dark (None: either, at random)."""
    img = np.asarray(digit28, dtype=np.float32) / (255.0 if np.asarray(digit28).max() > 1 else 1.0)
    size = int(rng.integers(side // 3, side))
    big = np.clip(resize(img, size, size), 0, 1)
    out = np.zeros((side, side), dtype=np.float32)
    top, left = rng.integers(0, side - size + 1, size=2)
    out[top : top + size, left : left + size] = big
    if dark_on_light if dark_on_light is not None else rng.random() < 0.5:
        out = 1.0 - out
    return out
