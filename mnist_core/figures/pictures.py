"""Pictures rendered on the server, for st.image: digits and saliency overlays as RGB/gray arrays.

A picture costs the browser one small PNG instead of a chart to lay out and draw, which is what
keeps the Draw and Evaluate pages quick. The colours are Plotly's (the same gray and RdBu_r
scales the Plotly figures use), pixels stay square and sharp (nearest-neighbour scaling).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

# one colour per digit (0-9), on every map of digits: the Inside page's charts and these pictures
DIGIT_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
OVERLAY_OPACITY = 0.6  # the attribution over the digit, as the saliency chart drew it


def _array(img) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().float().numpy()
    return np.asarray(img, dtype=np.float32)


def enlarge(img: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel as a scale x scale block (sharp pixels at any display size)."""
    return img.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else img


def digit_picture(img, scale: int = 4) -> np.ndarray:
    """A 28x28 digit (any range, any leading singleton axes) as uint8 gray, scaled to its own
    min/max like the charts' image grids."""
    a = _array(img).reshape(28, 28)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo + 1e-8)
    return enlarge(np.round(a * 255).astype(np.uint8), scale)


def digit_pictures(images, scale: int = 4) -> list[np.ndarray]:
    """digit_picture of each image of a batch (N, 28, 28) or (N, 1, 28, 28)."""
    return [digit_picture(img, scale) for img in images]


def digit_sheet(images, cols: int = 12, scale: int = 3, gap: int = 4) -> np.ndarray:
    """A batch of digits (N, 28, 28) or (N, 1, 28, 28) as one gray picture, `cols` to a row, each
    digit scaled to its own min/max (as digit_picture) and `gap` white pixels between them: a grid
    of digits for one st.image, instead of a chart with a heatmap per digit."""
    tiles = digit_pictures(images, scale)
    side = 28 * scale
    rows = max(1, -(-len(tiles) // cols))
    sheet = np.full((rows * side + (rows - 1) * gap, cols * side + (cols - 1) * gap), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * (side + gap) : r * (side + gap) + side, c * (side + gap) : c * (side + gap) + side] = tile
    return sheet


@functools.cache
def _scale_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(positions in [0, 1], RGB rows in [0, 1]) of a Plotly colour scale."""
    from plotly.colors import get_colorscale, unlabel_rgb

    stops = get_colorscale(name)
    pos = np.array([float(p) for p, _ in stops])
    rgb = np.array([unlabel_rgb(c) if c.startswith("rgb") else _hex(c) for _, c in stops]) / 255.0
    return pos, rgb


def _hex(c: str) -> tuple[int, int, int]:
    c = c.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def colorize(values: np.ndarray, name: str, lo: float, hi: float) -> np.ndarray:
    """Values mapped through a Plotly colour scale between lo and hi: float RGB (..., 3) in [0, 1]."""
    pos, rgb = _scale_table(name)
    t = np.clip((values - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    return np.stack([np.interp(t, pos, rgb[:, k]) for k in range(3)], axis=-1)


def saliency_picture(image28, attribution, scale: int = 8) -> tuple[np.ndarray, float]:
    """The digit in gray with the attribution on top (red raises the score, blue lowers it, white
    neither), symmetric around 0: (uint8 RGB picture, the attribution at full colour)."""
    image = _array(image28).reshape(28, 28)
    attr = _array(attribution).reshape(28, 28)
    limit = float(np.abs(attr).max()) or 1.0
    gray = colorize(image, "gray", float(image.min()), float(image.max()))
    heat = colorize(attr, "RdBu_r", -limit, limit)
    rgb = OVERLAY_OPACITY * heat + (1 - OVERLAY_OPACITY) * gray
    return enlarge(np.round(rgb * 255).astype(np.uint8), scale), limit


def map_picture(a, signed: bool = False, target: int = 560) -> np.ndarray:
    """A 2-D array (NaN = background, as tile leaves between tiles) as uint8 RGB on the
    charts' scales (Viridis; RdBu_r around 0 if signed, one scale for the whole array), each value
    a square block so that the long side is about `target` pixels."""
    a = _array(a)
    ok = ~np.isnan(a)
    v = a[ok] if ok.any() else np.zeros(1, np.float32)
    if signed:
        m = float(np.abs(v).max()) or 1.0
        rgb = colorize(np.nan_to_num(a), "RdBu_r", -m, m)
    else:
        rgb = colorize(np.nan_to_num(a, nan=float(v.min())), "Viridis", float(v.min()), float(v.max()))
    rgb[~ok] = 1.0
    return enlarge(np.round(rgb * 255).astype(np.uint8), max(1, target // max(a.shape)))


def embedding_picture(xy: np.ndarray, labels, wrong=None, width: int = 640, height: int = 640) -> np.ndarray:
    """A 2-D map of digits as uint8 RGB: one dot per digit coloured by true digit (the Inside
    page's colours), mistakes as dark crosses, a legend of the ten digits along the top."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    size = max(11, min(height // 15, width // 30))  # the legend fits the width
    font = ImageFont.load_default(size=size)
    top = 8 + size + 8  # the legend's row
    xy = np.asarray(xy, dtype=np.float64)
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    px = 10 + (xy[:, 0] - lo[0]) / span[0] * (width - 20)
    py = height - 10 - (xy[:, 1] - lo[1]) / span[1] * (height - top - 20)
    wrong = np.zeros(len(xy), bool) if wrong is None else np.asarray(wrong, bool)
    r = max(2.0, height / 120)
    for x, y, lab in zip(px[~wrong], py[~wrong], np.asarray(labels)[~wrong]):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=DIGIT_COLORS[int(lab)])
    for x, y in zip(px[wrong], py[wrong]):  # mistakes on top
        draw.line([x - 1.6 * r, y - 1.6 * r, x + 1.6 * r, y + 1.6 * r], fill="#111827", width=2)
        draw.line([x - 1.6 * r, y + 1.6 * r, x + 1.6 * r, y - 1.6 * r], fill="#111827", width=2)
    step = size * 2.2
    for d in range(10):
        x = 10 + d * step
        draw.ellipse([x, 8 + size * 0.2, x + size * 0.7, 8 + size * 0.9], fill=DIGIT_COLORS[d])
        draw.text((x + size * 0.85, 8), str(d), fill="#334155", font=font)
    draw.text((10 + 10 * step + 6, 8), "x mistake", fill="#334155", font=font)
    return np.asarray(img)


def tile(maps: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """(C, H, W) maps -> one 2-D array of C tiles in a grid, NaN between them (drawn as background)."""
    maps = np.asarray(maps, dtype=np.float32)
    c, h, w = maps.shape
    cols = cols or int(np.ceil(np.sqrt(c)))
    rows = int(np.ceil(c / cols))
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan, dtype=np.float32)
    for i in range(c):
        r, q = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, q * (w + pad) : q * (w + pad) + w] = maps[i]
    return out


# ---------------- PNG files for the command line (PIL only, no browser) ----------------
def save_png(a: np.ndarray, path: str | Path, signed: bool = False, target: int = 560) -> Path:
    """Write a 2-D array as a PNG (map_picture), about `target` pixels on its long side."""
    from PIL import Image

    Image.fromarray(map_picture(a, signed, target)).save(path)
    return Path(path)


def save_scatter_png(xy: np.ndarray, labels, path: str | Path, wrong=None, size: int = 640) -> Path:
    """The embedding map as a PNG (embedding_picture)."""
    from PIL import Image

    Image.fromarray(embedding_picture(xy, labels, wrong, size, size)).save(path)
    return Path(path)


def write_pngs(
    model: nn.Module,
    image28: np.ndarray,
    out: str | Path,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    n: int = 2000,
) -> dict:
    """The activation grids, first-layer filters and a PCA embedding map of one digit as PNG files."""
    from ..analysis.inside import activations, embedding_maps, first_weight, prediction

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = activations(model, image28)
    files = [save_png(stages[0].value[0], out / "00-input.png")]
    for i, s in enumerate(stages[1:], 1):
        slug = s.title.split(":")[0].replace(" ", "")
        if s.kind == "maps":
            files.append(save_png(tile(s.value), out / f"{i:02d}-{slug}.png"))
        elif s.kind in ("vector", "output"):
            files.append(save_png(s.value[None, :], out / f"{i:02d}-{slug}.png", target=1200))
    kind, weights = first_weight(model)
    files.append(save_png(tile(weights), out / "filters.png", signed=True))
    [emap] = embedding_maps([model], x_test, y_test, n, "pca")
    files.append(save_scatter_png(emap.xy, emap.labels, out / "embedding.png", emap.preds != emap.labels))
    pred, conf = prediction(stages)
    return dict(
        prediction=pred,
        confidence=round(conf, 4),
        files=len(files),
        out=str(out),
        separation=round(emap.separation, 4),
    )
