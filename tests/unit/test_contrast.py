"""Every number the confusion matrix writes in a cell reads at WCAG 2.1 AA (4.5:1) on its colour."""

import numpy as np
import pytest

from mnist_core.figures.evaluation import confusion_cells


def _luminance(hex_colour: str) -> float:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("mode", [dict(), dict(percent=True), dict(diff=True)])
def test_every_cell_reads_at_aa_across_the_whole_colour_scale(mode):
    n = 10
    # counts from 0 to the largest mistake and beyond (the diagonal saturates); diffs of both signs
    values = np.linspace(-60, 60, n * n) if mode.get("diff") else np.linspace(0, 120, n * n)
    cm = values.reshape(n, n).round().astype(int).tolist()
    cells = confusion_cells(cm, **mode)
    worst = min(_contrast(bg, fg) for bgs, fgs in zip(cells["bg"], cells["fg"]) for bg, fg in zip(bgs, fgs))
    assert worst >= 4.5
