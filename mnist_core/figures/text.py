"""Every chart's text equivalent, read from the figure itself: a finding in plain words and the
numbers as a short table (pages/ui/charts.py shows both under the chart).

Generic over the kinds of trace the dashboard draws: lines and bars (one column per series, merged
by x where their x values match), point clouds (one row per series), heatmaps (a grid of values, or
one row per tile or channel when the grid is tiled) and pictures (their titles). Long series are
sampled evenly to at most MAX_ROWS rows, the last one always kept, and the table says so."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go

MAX_ROWS = 30  # rows of a table: a screen reader reads them one by one
MAX_COLUMNS = 12  # value columns of a heatmap's grid
MAX_DESCRIBED = 5  # series a finding describes one by one; the rest are counted
MISSING = "n/a"

Table = tuple[list[str], list[list[str]], str | None]


# ---------------- numbers in words ----------------
def number(v: float | None, percent: bool = False, digits: int = 1) -> str:
    """A value as the dashboard writes it: 97.8% on a percent axis, counts with thousands
    separators (60,000), other values to 4 significant digits (0.2345, 3e-05); n/a when missing."""
    if isinstance(v, str):
        return v
    if v is None or not math.isfinite(v := float(v)):
        return MISSING
    if percent:
        return f"{v:.{digits}%}"
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """words.count's agreement with thousands separators: "1 epoch", "1,000 points"."""
    return f"{number(n)} {noun if n == 1 else plural or noun + 's'}"


def ordinal(n: int) -> str:
    """2nd, 3rd, 11th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _short(title: str | None) -> str:
    """An axis title without its parenthesis: "learning rate (log scale)" is "learning rate"."""
    return re.sub(r"\s*\(.*\)\s*$", "", title or "").strip()


def sample(n: int, limit: int) -> tuple[list[int], int]:
    """Indices of at most `limit` of n evenly spaced items, every step-th and the last; and step."""
    if n <= limit:
        return list(range(n)), 1
    step = math.ceil((n - 1) / max(1, limit - 1))
    keep = list(range(0, n, step))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    return keep, step


def sampled_note(shown: int, total: int, step: int, what: str = "point") -> str | None:
    if step == 1:
        return None
    return f"{shown} of {_count(total, what)}: every {ordinal(step)} {what}, and the last."


# ---------------- reading a figure ----------------
def _axis(fig: go.Figure, ref: str | None, letter: str):
    """The layout axis a trace is drawn against ("x2" -> layout.xaxis2)."""
    suffix = (ref or letter)[1:]
    try:
        return fig.layout[f"{letter}axis{suffix}"]
    except (KeyError, ValueError):
        return None


def _axis_title(axis) -> str:
    return _short(axis.title.text) if axis is not None and axis.title is not None else ""


def _is_percent(axis) -> bool:
    return axis is not None and "%" in str(axis.tickformat or "")


def _values(data) -> list:
    """A trace's array as Python values, None where missing (NaN, None)."""
    if data is None:
        return []
    out: list = []
    for v in np.asarray(data, dtype=object).ravel().tolist():
        if isinstance(v, (bool, np.bool_)):
            out.append(float(v))
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out.append(None if isinstance(v, float | np.floating) and not math.isfinite(v) else v)
        else:
            out.append(v)
    return out


def _finite(values: Iterable) -> list[tuple[int, float]]:
    return [
        (i, float(v))
        for i, v in enumerate(values)
        if isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v)
    ]


class _Series:
    """One line or bar trace: its x (categories or numbers), its y, and how to write them."""

    def __init__(self, fig: go.Figure, trace, bar: bool):
        horizontal = bar and trace.orientation == "h"
        x_axis = _axis(fig, trace.xaxis, "x")
        y_axis = _axis(fig, trace.yaxis, "y")
        cat_axis, val_axis = (y_axis, x_axis) if horizontal else (x_axis, y_axis)
        xs, ys = (trace.y, trace.x) if horizontal else (trace.x, trace.y)
        self.y = _values(ys)
        self.x = _values(xs) if xs is not None else list(range(len(self.y)))
        if len(self.x) != len(self.y):
            n = min(len(self.x), len(self.y))
            self.x, self.y = self.x[:n], self.y[:n]
        if horizontal:  # drawn from the bottom up: the table and the words read top first
            self.x, self.y = self.x[::-1], self.y[::-1]
        self.name = str(trace.name or "")
        self.x_title = _axis_title(cat_axis)
        self.y_title = _axis_title(val_axis)
        self.percent = _is_percent(val_axis)
        self.bar = bar
        self.label = self.name or self.y_title or "value"

    def fmt(self, v, digits: int = 1) -> str:
        return number(v, self.percent, digits)

    def at(self, x) -> str:
        """Where a value sits: "epoch 3", "digit 7", "batch 400" on an axis "batch within the epoch",
        or the bare x."""
        shown = number(x) if not isinstance(x, str) else x
        words = self.x_title.split()
        return f"{words[0] if len(words) > 2 else self.x_title} {shown}" if words else shown


def _data_heatmap(trace) -> bool:
    return trace.type == "heatmap" and trace.hoverinfo != "skip" and trace.z is not None


def _kinds(fig: go.Figure) -> tuple[list[_Series], list, list]:
    """The figure's line and bar series, its point clouds and its data heatmaps."""
    series, clouds, heatmaps = [], [], []
    for trace in fig.data:
        if trace.type in ("scatter", "scattergl"):
            if trace.mode == "markers":
                clouds.append(trace)
            else:
                series.append(_Series(fig, trace, bar=False))
        elif trace.type == "bar":
            series.append(_Series(fig, trace, bar=True))
        elif _data_heatmap(trace):
            heatmaps.append(trace)
    names = [s.label for s in series]
    for s in series:  # the same name on two axes (train loss, train accuracy): say which axis
        if names.count(s.label) > 1 and s.name and s.y_title:
            s.label = f"{s.name} {s.y_title}"
    return series, clouds, heatmaps


def _unique(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        shown, n = name, 2
        while shown in out:
            shown, n = f"{name} ({n})", n + 1
        out.append(shown)
    return out


def _annotations(fig: go.Figure) -> list[str]:
    return [str(a.text) for a in fig.layout.annotations or () if a.text]


# ---------------- the table ----------------
def _series_table(series: list[_Series], max_rows: int) -> Table:
    xs = [tuple(map(str, s.x)) for s in series]
    x_title = next((s.x_title for s in series if s.x_title), "bar" if series[0].bar else "x")
    labels = _unique([s.label for s in series])
    if all(x == xs[0] for x in xs):
        keys = list(series[0].x)
        lookup = [dict(zip(range(len(s.y)), s.y)) for s in series]
        cells = [[s.fmt(look.get(i), 2) for s, look in zip(series, lookup)] for i in range(len(keys))]
    else:
        union: list = []
        seen: set = set()
        for s in series:
            for x in s.x:
                if str(x) not in seen:
                    seen.add(str(x))
                    union.append(x)
        if len(union) > max_rows:  # x values that do not match: one row per point, series by series
            per = max(2, max_rows // len(series))
            rows, notes = [], False
            for s, label in zip(series, labels):
                keep, step = sample(len(s.y), per)
                notes |= step > 1
                rows += [[label, number(s.x[i]), s.fmt(s.y[i], 2)] for i in keep]
            note = (
                f"Each series sampled evenly to at most {per} points, its last included." if notes else None
            )
            return ["series", x_title, "value"], rows, note
        if all(isinstance(x, (int, float)) for x in union):
            union.sort()
        keys = union
        maps = [{str(x): y for x, y in zip(s.x, s.y)} for s in series]
        cells = [[s.fmt(m.get(str(x)), 2) for s, m in zip(series, maps)] for x in keys]
    keep, step = sample(len(keys), max_rows)
    rows = [[number(keys[i]) if not isinstance(keys[i], str) else keys[i], *cells[i]] for i in keep]
    return _unique([x_title, *labels]), rows, sampled_note(len(keep), len(keys), step)


def _cloud_table(clouds: list, max_rows: int) -> Table:
    rows = []
    for trace in clouds:
        x, y = np.asarray(_floats(trace.x)), np.asarray(_floats(trace.y))
        symbol = (trace.marker.symbol if trace.marker is not None else None) or "circle"
        rows.append(
            [
                str(trace.name or ""),
                str(symbol),
                number(len(x)),
                number(float(np.nanmean(x)) if np.isfinite(x).any() else None),
                number(float(np.nanmean(y)) if np.isfinite(y).any() else None),
            ]
        )
    keep, step = sample(len(rows), max_rows)
    return (
        ["series", "marker", "points", "mean x", "mean y"],
        [rows[i] for i in keep],
        sampled_note(len(keep), len(rows), step, "series"),
    )


def _floats(data) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in _values(data)], dtype=np.float64)


def _grid(trace) -> np.ndarray:
    z = np.array(trace.z, dtype=object)
    z = np.where(z == None, np.nan, z).astype(np.float64)  # noqa: E711  (elementwise)
    return z if z.ndim == 2 else z.reshape(1, -1)


def _groups(trace, z: np.ndarray) -> tuple[str, np.ndarray] | None:
    """How a tiled heatmap's cells belong together: (the word for one, a group number per cell, -1
    for none). From its customdata where its hover names it ("channel %{customdata}"), else from the
    rows and columns of NaN that separate its tiles; None for a plain grid."""
    word = re.match(r"\s*(\w+) %\{customdata", str(trace.hovertemplate or ""))
    if trace.customdata is not None and word:
        custom = np.array(trace.customdata, dtype=object)
        if custom.shape == z.shape:
            ids = np.where(custom == None, np.nan, custom).astype(np.float64)  # noqa: E711
            ok = np.isfinite(ids) & np.isfinite(z)
            return word.group(1), np.where(ok, np.nan_to_num(ids, nan=-1), -1).astype(np.int64)
    empty_rows, empty_cols = np.isnan(z).all(1), np.isnan(z).all(0)
    if not (empty_rows.any() or empty_cols.any()):
        return None
    row_block = np.cumsum(np.diff(np.concatenate([[True], empty_rows]).astype(int)) == -1) - 1
    col_block = np.cumsum(np.diff(np.concatenate([[True], empty_cols]).astype(int)) == -1) - 1
    if row_block.max() == 0 and col_block.max() == 0:
        return None
    ids = row_block[:, None] * (col_block.max() + 1) + col_block[None, :]
    ids = np.where(empty_rows[:, None] | empty_cols[None, :] | np.isnan(z), -1, ids)
    present = np.unique(ids[ids >= 0])  # renumber the tiles that hold values 0, 1, 2, ...
    return "tile", np.where(ids >= 0, np.searchsorted(present, ids), -1)


def _group_stats(z: np.ndarray, ids: np.ndarray) -> list[tuple[int, int, float, float, float]]:
    """(group, cells, lowest, mean, highest) of every group with a value."""
    flat, values = ids.ravel(), z.ravel()
    ok = flat >= 0
    order = np.argsort(flat[ok], kind="stable")
    flat, values = flat[ok][order], values[ok][order]
    if not len(flat):
        return []
    groups, starts, cells = np.unique(flat, return_index=True, return_counts=True)
    lows, highs = np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts)
    means = np.add.reduceat(values, starts) / cells
    return [
        (int(g), int(n), float(lo), float(m), float(hi))
        for g, n, lo, m, hi in zip(groups, cells, lows, means, highs)
    ]


def _rows_top_down(fig: go.Figure, trace, z: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The grid's rows as drawn, top first, with their labels (row numbers counted from the top)."""
    axis = _axis(fig, trace.yaxis, "y")
    reversed_axis = axis is not None and axis.autorange == "reversed"
    labels = [str(v) for v in _values(trace.y)] if trace.y is not None else None
    order = list(range(z.shape[0])) if reversed_axis else list(range(z.shape[0]))[::-1]
    names = [labels[i] if labels and i < len(labels) else f"row {k}" for k, i in enumerate(order)]
    return z[order], names


def _heatmap_table(fig: go.Figure, trace, max_rows: int) -> Table:
    z = _grid(trace)
    grouped = _groups(trace, z)
    if grouped is not None:
        word, ids = grouped
        stats = _group_stats(z, ids)
        keep, step = sample(len(stats), max_rows)
        note = sampled_note(len(keep), len(stats), step, word)
        if all(s[1] == 1 for s in stats):
            return [word, "value"], [[str(stats[i][0]), number(stats[i][2])] for i in keep], note
        rows = [[str(g), number(n), number(lo), number(mean), number(hi)] for g, n, lo, mean, hi in stats]
        return [word, "values", "lowest", "mean", "highest"], [rows[i] for i in keep], note
    grid, row_names = _rows_top_down(fig, trace, z)
    rows_keep, row_step = sample(grid.shape[0], max_rows)
    cols_keep, col_step = sample(grid.shape[1], MAX_COLUMNS)
    x_labels = [str(v) for v in _values(trace.x)] if trace.x is not None else None
    columns = [x_labels[j] if x_labels and j < len(x_labels) else f"column {j}" for j in cols_keep]
    rows = [[row_names[i], *(number(grid[i, j]) for j in cols_keep)] for i in rows_keep]
    notes = [
        f"every {ordinal(step)} {what} of {total}, and the last"
        for step, what, total in ((row_step, "row", grid.shape[0]), (col_step, "column", grid.shape[1]))
        if step > 1
    ]
    note = f"Shown: {' and '.join(notes)}." if notes else None
    return _unique(["row", *columns]), rows, note


def figure_table(fig: go.Figure, max_rows: int = MAX_ROWS) -> Table:
    """The numbers a figure shows, as (columns, rows of text, note): the note says how the rows were
    sampled (None when every point is there). Empty columns and rows for a figure with no data."""
    series, clouds, heatmaps = _kinds(fig)
    if heatmaps:
        return _heatmap_table(fig, heatmaps[-1], max_rows)  # the top one: the data over a picture
    if series:
        return _series_table(series, max_rows)
    if clouds:
        return _cloud_table(clouds, max_rows)
    titles = _annotations(fig)
    if titles:
        keep, step = sample(len(titles), max_rows)
        return (
            ["picture", "title"],
            [[str(i + 1), titles[i]] for i in keep],
            sampled_note(len(keep), len(titles), step, "picture"),
        )
    return [], [], None


# ---------------- the finding ----------------
def _line_words(s: _Series) -> str:
    points = [(i, v) for i, v in _finite(s.y)]
    if not points:
        return f"{s.label}: no values yet"
    (i0, first), (i1, last) = points[0], points[-1]
    if len(points) == 1:
        return f"{s.label}: {s.fmt(first)} at {s.at(s.x[i0])}"
    verb = "rose" if last > first else "fell" if last < first else "stayed"
    if verb == "stayed":
        words = f"{s.label} stayed at {s.fmt(first)} from {s.at(s.x[i0])} to {s.at(s.x[i1])}"
    else:
        words = f"{s.label} {verb} from {s.fmt(first)} at {s.at(s.x[i0])} to {s.fmt(last)} at {s.at(s.x[i1])}"
    lo = min(points, key=lambda p: p[1])
    hi = max(points, key=lambda p: p[1])
    spread = (hi[1] - lo[1]) * 0.1  # an extreme between the ends is told when it stands out
    inner = [
        (name, p)
        for name, p in (("lowest", lo), ("highest", hi))
        if p[0] not in (i0, i1) and min(abs(p[1] - first), abs(p[1] - last)) > spread
    ]
    extra = [f"{name} {s.fmt(v)} at {s.at(s.x[i])}" for name, (i, v) in inner]
    return "; ".join([words, *extra])


def _bar_words(s: _Series) -> str:
    points = _finite(s.y)
    if not points:
        return f"{s.label}: no values yet"
    if len(points) <= 6:
        listed = ", ".join(f"{s.at(s.x[i])} {s.fmt(v)}" for i, v in points)
        return f"{s.label}: {listed}"
    lo = min(points, key=lambda p: p[1])
    hi = max(points, key=lambda p: p[1])
    if lo[1] == hi[1]:
        return f"{s.label}: {s.fmt(lo[1])} for every {s.x_title or 'bar'}"
    words = (
        f"{s.label}: highest {s.fmt(hi[1])} for {s.at(s.x[hi[0]])}, "
        f"lowest {s.fmt(lo[1])} for {s.at(s.x[lo[0]])}"
    )
    if not s.percent and all(v >= 0 and float(v).is_integer() for _, v in points):
        words += f"; {number(sum(v for _, v in points))} in all"
    return words


def _cloud_words(clouds: list) -> str:
    names = list(dict.fromkeys(str(t.name or "") for t in clouds))
    total = sum(len(_values(t.x)) for t in clouds)
    crosses = sum(
        len(_values(t.x)) for t in clouds if t.marker is not None and str(t.marker.symbol or "") == "x"
    )
    listed = f" ({', '.join(names)})" if all(names) and len(names) <= 12 else ""
    words = f"{number(total)} points in {_count(len(names), 'series', 'series')}{listed}"
    return words + (f"; {number(crosses)} of them drawn as crosses" if crosses else "")


def _heatmap_words(fig: go.Figure, trace) -> str:
    z = _grid(trace)
    if not np.isfinite(z).any():
        return "No values yet"
    lo, hi = float(np.nanmin(z)), float(np.nanmax(z))
    words = f"Values from {number(lo)} to {number(hi)}"
    grouped = _groups(trace, z)
    if grouped is not None:
        word, ids = grouped
        stats = _group_stats(z, ids)
        top = max(stats, key=lambda s: s[4])
        return f"{words} across {_count(len(stats), word)}; {word} {top[0]} reaches the highest"
    grid, names = _rows_top_down(fig, trace, z)
    r, c = np.unravel_index(int(np.nanargmax(np.abs(grid))), grid.shape)
    x_labels = [str(v) for v in _values(trace.x)] if trace.x is not None else None
    column = x_labels[c] if x_labels and c < len(x_labels) else f"column {c}"
    return f"{words}; the strongest, {number(float(grid[r, c]))}, at {names[r]}, {column}"


def _sentence(text: str, capital: bool = True) -> str:
    """`text` as a sentence: a full stop, and a capital unless it starts with a name from the data,
    kept as it is typed (a run's "perceptron 1a2b3c", a layer's "fc", a legend's "train")."""
    if capital:
        text = text[:1].upper() + text[1:]
    return text.rstrip(".") + "." if text else ""


def figure_finding(fig: go.Figure) -> str:
    """What a figure shows, in plain words from its data: each series first to last (with its
    lowest and highest where they fall between), bars' highest and lowest (and their total when they
    count), a point cloud's size, a heatmap's range and where it peaks. A figure that knows its
    finding better carries it as `layout.meta["finding"]` (the training curves: their best epoch)."""
    meta = fig.layout.meta
    if isinstance(meta, dict) and meta.get("finding"):
        return str(meta["finding"])
    series, clouds, heatmaps = _kinds(fig)
    if heatmaps:
        return _sentence(_heatmap_words(fig, heatmaps[-1]))
    if series:
        described = [_bar_words(s) if s.bar else _line_words(s) for s in series[:MAX_DESCRIBED]]
        more = len(series) - MAX_DESCRIBED
        if more > 0:
            described.append(f"and {_count(more, 'more series', 'more series')}, in the table")
        capitals = [not s.name for s in series[:MAX_DESCRIBED]] + [True]
        return " ".join(_sentence(d, c) for d, c in zip(described, capitals))
    if clouds:
        return _sentence(_cloud_words(clouds))
    titles = _annotations(fig)
    if titles:
        shown = ", ".join(titles[:12]) + (", ..." if len(titles) > 12 else "")
        return _sentence(f"{_count(len(titles), 'picture')}: {shown}")
    return "The chart has no data yet."


# ---------------- findings that know more than the figure ----------------
def epoch_finding(epochs: list[dict], label: str = "") -> str:
    """A run's epochs in a sentence: "Validation accuracy rose from 91.2% to 97.8% over 3 epochs;
    the best was epoch 3." (train accuracy when there is no validation split), then its loss."""
    split = "val" if any(e.get("val_acc") is not None for e in epochs) else "train"
    name = "validation" if split == "val" else "train"
    points = [(e["epoch"], e[f"{split}_acc"]) for e in epochs if e.get(f"{split}_acc") is not None]
    if not points:
        return f"{label}: no finished epoch yet." if label else "No finished epoch yet."
    head = f"{label}: {name}" if label else name.capitalize()
    (_, first), (last_epoch, last) = points[0], points[-1]
    best_epoch, best = max(points, key=lambda p: p[1])  # the first epoch to reach the best
    if len(points) == 1:
        words = f"{head} accuracy was {number(first, True)} after epoch {last_epoch}"
    else:
        moved = _moved(first, last, True)
        best_words = "" if best_epoch == last_epoch else f" ({number(best, True)})"
        words = (
            f"{head} accuracy {moved} over {_count(len(points), 'epoch')}; the best was epoch {best_epoch}"
        )
        words += best_words
    losses = [(e["epoch"], e[f"{split}_loss"]) for e in epochs if e.get(f"{split}_loss") is not None]
    if len(losses) > 1:
        low_epoch, low = min(losses, key=lambda p: p[1])
        words += f". Its loss {_moved(losses[0][1], losses[-1][1])}"
        if low_epoch != losses[-1][0]:
            words += f", lowest at epoch {low_epoch} ({number(low)})"
    return _sentence(words, capital=False)


def _moved(first: float, last: float, percent: bool = False) -> str:
    """ "rose from 91.2% to 97.8%", "fell from ...", "stayed at ..."."""
    if first == last:
        return f"stayed at {number(first, percent)}"
    return f"{'rose' if last > first else 'fell'} from {number(first, percent)} to {number(last, percent)}"


def runs_finding(series: dict[str, list[dict]]) -> str:
    """epoch_finding for each of several runs, one sentence each."""
    return " ".join(epoch_finding(epochs, label) for label, epochs in series.items())
