"""mnist_core.figures.text: every chart's finding in words and its numbers as a short table, read
from hand-built figures of each kind of trace (and from the dashboard's own training curves)."""

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mnist_core.figures.compare import runs_epoch_figure
from mnist_core.figures.text import (
    MAX_ROWS,
    epoch_finding,
    figure_finding,
    figure_table,
    number,
    ordinal,
    sample,
)
from mnist_core.figures.training import epoch_figure

EPOCHS = [
    dict(epoch=1, train_loss=0.52, val_loss=0.31, train_acc=0.88, val_acc=0.912),
    dict(epoch=2, train_loss=0.21, val_loss=0.12, train_acc=0.95, val_acc=0.97),
    dict(epoch=3, train_loss=0.1, val_loss=0.09, train_acc=0.98, val_acc=0.978),
]


def test_numbers_are_written_as_the_dashboard_writes_them():
    assert number(60000) == "60,000" and number(6337785.0) == "6,337,785"
    assert number(0.2345678) == "0.2346" and number(3e-05) == "3e-05" and number(1234.5) == "1,234"
    assert number(0.978, percent=True) == "97.8%" and number(0.978, True, 2) == "97.80%"
    assert number(None) == number(math.nan) == number(np.float32("nan")) == number(math.inf) == "n/a"
    assert number(np.float32(0.5)) == "0.5" and number(np.int64(1135)) == "1,135"
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 35, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "35th", "111th",
    ]  # fmt: skip


def test_sample_keeps_every_nth_and_the_last_within_the_limit():
    assert sample(10, 30) == (list(range(10)), 1)
    keep, step = sample(1000, 30)
    assert len(keep) <= 30 and keep[0] == 0 and keep[-1] == 999 and step == 35
    assert all(b - a == step for a, b in zip(keep[:-2], keep[1:-1]))


def test_lines_with_the_same_x_merge_into_one_column_each():
    fig = go.Figure(
        [
            go.Scatter(x=[1, 2, 3], y=[0.9, 0.95, 0.97], mode="lines", name="train"),
            go.Scatter(x=[1, 2, 3], y=[0.91, 0.96, 0.95], mode="lines+markers", name="validation"),
        ]
    )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="accuracy", tickformat=".1%")
    columns, rows, note = figure_table(fig)
    assert columns == ["epoch", "train", "validation"] and note is None
    assert rows == [["1", "90.00%", "91.00%"], ["2", "95.00%", "96.00%"], ["3", "97.00%", "95.00%"]]
    finding = figure_finding(fig)
    assert "train rose from 90.0% at epoch 1 to 97.0% at epoch 3." in finding
    assert "validation rose from 91.0% at epoch 1 to 95.0% at epoch 3; highest 96.0% at epoch 2." in finding


def test_lines_whose_x_differ_are_merged_by_x_or_listed_point_by_point():
    short = go.Figure(
        [
            go.Scatter(x=[1, 2, 3], y=[3.0, 2.0, 1.0], mode="lines", name="a"),
            go.Scatter(x=[1, 2], y=[2.5, 1.5], mode="lines", name="b"),
        ]
    )
    columns, rows, _ = figure_table(short)
    assert columns == ["x", "a", "b"] and rows[-1] == ["3", "1", "n/a"]  # where b has no point
    long = go.Figure(
        [
            go.Scatter(x=np.arange(200) / 10, y=np.linspace(2, 0.1, 200), mode="lines", name="a"),
            go.Scatter(x=np.arange(90) / 3, y=np.linspace(2, 0.5, 90), mode="lines", name="b"),
        ]
    )
    long.update_xaxes(title_text="epoch")
    columns, rows, note = figure_table(long)
    assert columns == ["series", "epoch", "value"] and len(rows) <= MAX_ROWS and "sampled" in note
    assert rows[0] == ["a", "0", "2"] and ["a", "19.9", "0.1"] in rows and rows[-1] == ["b", "29.67", "0.5"]


def test_a_long_series_is_sampled_evenly_and_says_so():
    steps = np.arange(1, 1001)
    fig = go.Figure(go.Scatter(x=steps, y=2.3 / steps, mode="lines", name="batch loss"))
    fig.update_xaxes(title_text="batch")
    columns, rows, note = figure_table(fig)
    assert columns == ["batch", "batch loss"]
    assert len(rows) <= MAX_ROWS and rows[0][0] == "1" and rows[-1] == ["1,000", "0.0023"]
    assert note == f"{len(rows)} of 1,000 points: every 35th point, and the last."
    assert [int(r[0].replace(",", "")) for r in rows[:3]] == [1, 36, 71]
    assert figure_finding(fig) == "batch loss fell from 2.3 at batch 1 to 0.0023 at batch 1,000."


def test_missing_values_are_left_out_of_the_words_and_shown_as_n_a():
    fig = go.Figure(go.Scatter(x=[1, 2, 3, 4], y=[None, 0.5, math.nan, 0.25], mode="lines", name="loss"))
    fig.update_xaxes(title_text="epoch")
    _, rows, _ = figure_table(fig)
    assert [r[1] for r in rows] == ["n/a", "0.5", "n/a", "0.25"]
    assert figure_finding(fig) == "loss fell from 0.5 at epoch 2 to 0.25 at epoch 4."
    empty = go.Figure(go.Scatter(x=[1, 2], y=[math.nan, None], mode="lines", name="loss"))
    assert figure_finding(empty) == "loss: no values yet."


def test_grouped_bars_are_one_row_per_category_with_their_totals():
    fig = go.Figure(
        [
            go.Bar(x=[str(d) for d in range(10)], y=[5923 + 10 * d for d in range(10)], name="train"),
            go.Bar(x=[str(d) for d in range(10)], y=[600] * 10, name="validation"),
        ]
    )
    fig.update_xaxes(title_text="digit")
    fig.update_yaxes(title_text="images")
    columns, rows, note = figure_table(fig)
    assert columns == ["digit", "train", "validation"] and note is None
    assert [r[0] for r in rows] == [str(d) for d in range(10)] and rows[1] == ["1", "5,933", "600"]
    finding = figure_finding(fig)
    assert "train: highest 6,013 for digit 9, lowest 5,923 for digit 0; 59,680 in all." in finding
    assert "validation: 600 for every digit." in finding


def test_few_bars_are_listed_and_horizontal_bars_read_top_first():
    few = go.Figure(go.Bar(x=["baseline", "dropout"], y=[0.978, 0.981]))
    few.update_yaxes(title_text="test accuracy", tickformat=".0%")
    assert figure_finding(few) == "Test accuracy: baseline 97.8%, dropout 98.1%."
    assert figure_table(few)[:2] == (
        ["bar", "test accuracy"],
        [["baseline", "97.80%"], ["dropout", "98.10%"]],
    )
    probs = go.Figure(go.Bar(x=[0.01, 0.09, 0.9], y=["4", "9", "7"], orientation="h"))  # drawn bottom up
    probs.update_xaxes(title_text="probability", tickformat=".0%")
    probs.update_yaxes(title_text="digit")
    assert figure_table(probs)[1] == [["7", "90.00%"], ["9", "9.00%"], ["4", "1.00%"]]


def test_a_heatmap_is_a_grid_read_top_down_with_its_columns_bounded():
    z = np.arange(28 * 28, dtype=float).reshape(28, 28)
    z[5, 7] = -5000.0  # the strongest value, 5 rows from the top as drawn
    z[0, 0] = math.nan
    top_down = go.Figure(go.Heatmap(z=z))
    top_down.update_yaxes(autorange="reversed")
    columns, rows, note = figure_table(top_down)
    assert columns[0] == "row" and columns[1:3] == ["column 0", "column 3"] and columns[-1] == "column 27"
    assert (
        len(columns) - 1 <= 12 and len(rows) == 28 and note == "Shown: every 3rd column of 28, and the last."
    )
    assert rows[0][:3] == ["row 0", "n/a", "3"] and rows[-1][-1] == number(27 * 28 + 27)
    assert figure_finding(top_down) == "Values from -5,000 to 783; the strongest, -5,000, at row 5, column 7."
    bottom_up = go.Figure(go.Heatmap(z=z[::-1]))  # an image flipped for a normal axis: row 0 at the bottom
    assert figure_table(bottom_up)[1] == rows and figure_finding(bottom_up) == figure_finding(top_down)


def test_a_tiled_heatmap_is_one_row_per_channel_or_tile():
    maps = np.stack([np.full((3, 3), float(c)) for c in range(4)])
    maps[2, 1, 1] = 9.0
    grid = np.full((7, 7), math.nan)  # 2 x 2 tiles of 3 x 3, NaN between them
    for c in range(4):
        r, q = divmod(c, 2)
        grid[r * 4 : r * 4 + 3, q * 4 : q * 4 + 3] = maps[c]
    tiles = go.Figure(go.Heatmap(z=grid))
    columns, rows, _ = figure_table(tiles)
    assert columns == ["tile", "values", "lowest", "mean", "highest"]
    assert rows == [
        ["0", "9", "0", "0", "0"],
        ["1", "9", "1", "1", "1"],
        ["2", "9", "2", "2.778", "9"],
        ["3", "9", "3", "3", "3"],
    ]
    assert figure_finding(tiles) == "Values from 0 to 9 across 4 tiles; tile 2 reaches the highest."
    channel = np.where(np.isnan(grid), math.nan, np.zeros_like(grid))
    for c in range(4):
        r, q = divmod(c, 2)
        channel[r * 4 : r * 4 + 3, q * 4 : q * 4 + 3] = c
    named = go.Figure(go.Heatmap(z=grid, customdata=channel, hovertemplate="channel %{customdata:.0f}: %{z}"))
    assert figure_table(named)[0][0] == "channel" and figure_table(named)[1] == rows
    units = np.arange(300, dtype=float).reshape(3, 100)
    strip = go.Figure(go.Heatmap(z=units, customdata=units, hovertemplate="unit %{customdata:.0f}: %{z}"))
    columns, rows, note = figure_table(strip)
    assert columns == ["unit", "value"] and len(rows) <= MAX_ROWS and rows[-1] == ["299", "299"]
    assert note.startswith(f"{len(rows)} of 300 units: every")


def test_a_picture_behind_the_data_is_not_read():
    picture = go.Heatmap(z=np.ones((4, 4)), hoverinfo="skip")
    fig = go.Figure([picture, go.Heatmap(z=np.diag([1.0, 2.0, 3.0, -4.0]))])
    assert figure_finding(fig).startswith("Values from -4 to 3")
    grid = make_subplots(rows=1, cols=2, subplot_titles=["#12: 0.91", "#7: 0.88"])
    grid.add_trace(picture, row=1, col=1)
    grid.add_trace(picture, row=1, col=2)
    assert figure_table(grid)[:2] == (["picture", "title"], [["1", "#12: 0.91"], ["2", "#7: 0.88"]])
    assert figure_finding(grid) == "2 pictures: #12: 0.91, #7: 0.88."
    assert (
        figure_table(go.Figure()) == ([], [], None)
        and figure_finding(go.Figure()) == "The chart has no data yet."
    )


def test_a_point_cloud_is_counted_series_by_series():
    fig = go.Figure(
        [
            go.Scatter(x=[0, 2], y=[0, 2], mode="markers", name="0"),
            go.Scatter(x=[5, 6, 7], y=[1, 1, 1], mode="markers", name="1"),
            go.Scatter(x=[1], y=[1], mode="markers", name="0", marker=dict(symbol="x")),
        ]
    )
    columns, rows, _ = figure_table(fig)
    assert columns == ["series", "marker", "points", "mean x", "mean y"]
    assert rows == [["0", "circle", "2", "1", "1"], ["1", "circle", "3", "6", "1"], ["0", "x", "1", "1", "1"]]
    assert figure_finding(fig) == "6 points in 2 series (0, 1); 1 of them drawn as crosses."


def test_the_training_curves_say_their_best_epoch():
    sentence = epoch_finding(EPOCHS)
    assert sentence.startswith(
        "Validation accuracy rose from 91.2% to 97.8% over 3 epochs; the best was epoch 3."
    )
    assert "Its loss fell from 0.31 to 0.09." in sentence
    dip = [*EPOCHS, dict(epoch=4, train_acc=0.99, val_acc=0.975, val_loss=0.1)]
    assert "the best was epoch 3 (97.8%)" in epoch_finding(
        dip
    ) and "lowest at epoch 3 (0.09)" in epoch_finding(dip)
    no_val = [{k: v for k, v in e.items() if not k.startswith("val")} for e in EPOCHS]
    assert epoch_finding(no_val).startswith("Train accuracy rose from 88.0% to 98.0% over 3 epochs")
    assert epoch_finding([]) == "No finished epoch yet."
    fig = epoch_figure(EPOCHS)  # the figure carries its finding; the table has both subplots
    assert figure_finding(fig) == sentence
    columns, rows, _ = figure_table(fig)
    assert columns == [
        "epoch",
        "train cross-entropy loss",
        "validation cross-entropy loss",
        "train accuracy",
        "validation accuracy",
    ]
    assert rows[0] == ["1", "0.52", "0.31", "88.00%", "91.20%"]
    runs = figure_finding(runs_epoch_figure({"mlp 1a2b3c": EPOCHS, "cnn 4d5e6f": EPOCHS[:2]}))
    assert "mlp 1a2b3c: validation accuracy rose from 91.2% to 97.8% over 3 epochs" in runs
    assert (
        "cnn 4d5e6f: validation accuracy rose from 91.2% to 97.0% over 2 epochs; the best was epoch 2."
        in runs
    )
