"""Server-rendered pictures and the chart-free figures of Draw and Evaluate: the right colours in the
right places (what the Plotly versions showed)."""

import numpy as np
import torch

from mnist_core.figures.evaluation import confusion_cells, per_class_svg, probability_bars_html
from mnist_core.figures.pictures import (
    DIGIT_COLORS,
    digit_picture,
    digit_sheet,
    embedding_picture,
    map_picture,
    saliency_picture,
    tile,
)


def test_a_digit_picture_is_sharp_gray_scaled_to_its_own_range():
    img = torch.zeros(1, 28, 28)
    img[0, 10, 12] = 3.0  # any range: the brightest pixel becomes white
    pic = digit_picture(img, scale=4)
    assert pic.shape == (112, 112) and pic.dtype == np.uint8
    assert pic[40:44, 48:52].min() == 255 and pic[:40].max() == 0  # one pixel = a 4x4 block


def test_saliency_is_red_where_it_raises_the_score_and_blue_where_it_lowers_it():
    image = np.zeros((28, 28), np.float32)
    attr = np.zeros((28, 28), np.float32)
    attr[3, 3], attr[20, 20] = 0.5, -0.25
    pic, limit = saliency_picture(image, attr, scale=1)
    assert limit == 0.5 and pic.shape == (28, 28, 3)
    red, blue, neutral = pic[3, 3].astype(int), pic[20, 20].astype(int), pic[10, 10].astype(int)
    assert red[0] > 2 * max(red[1], red[2]) and blue[2] > 1.5 * blue[0]
    assert abs(neutral[0] - neutral[2]) < 10  # no attribution: no colour


def test_confusion_cells_saturate_the_diagonal_and_centre_a_difference_on_white():
    cm = [[50, 2, 0], [1, 60, 4], [0, 0, 70]]
    cells = confusion_cells(cm)
    assert cells["text"][0] == ["50", "2", ""] and "predicted 2: 4" in cells["hover"][1][2]
    assert cells["bg"][1][1] == cells["bg"][1][2]  # the largest mistake is as dark as the diagonal
    assert cells["fg"][1][1] == "#ffffff" and cells["fg"][0][2] != "#ffffff"  # readable on both
    row = confusion_cells(cm, percent=True)["text"][1]
    assert row == ["1.5%", "92.3%", "6.2%"]
    diff = confusion_cells([[3, -3], [0, 0]], diff=True)
    assert diff["text"][0] == ["+3", "-3"] and diff["bg"][1][0] == "#f7f7f7"  # 0: RdBu's white middle
    assert diff["bg"][0][0] != diff["bg"][0][1]


def test_the_html_bars_and_the_svg_chart_hold_every_value():
    probs = [0.01] * 10
    probs[7] = 0.91
    html = probability_bars_html(probs, "model <b>", k=3)
    assert html.count('class="prob-bar"') == 3 and 'data-digit="7" data-p="0.910000"' in html
    assert html.index('data-digit="7"') < html.index('data-digit="0"')  # the winner first
    assert "model &lt;b&gt;" in html  # a label is text, not markup
    rows = [dict(digit=d, precision=0.99, recall=0.98, f1=0.985, support=100) for d in range(10)]
    svg = per_class_svg(rows)
    assert svg.startswith("<svg") and svg.count("<title>") == 30 and "digit 9: f1 98.50%" in svg


def test_a_digit_sheet_lays_out_each_digit_as_its_picture_with_white_gaps():
    images = torch.rand(5, 1, 28, 28)
    sheet = digit_sheet(images, cols=3, scale=2, gap=4)
    side = 56
    assert sheet.dtype == np.uint8 and sheet.shape == (2 * side + 4, 3 * side + 2 * 4)
    for i, img in enumerate(images):
        r, c = divmod(i, 3)
        top, left = r * (side + 4), c * (side + 4)
        assert np.array_equal(sheet[top : top + side, left : left + side], digit_picture(img, scale=2))
    assert (sheet[side : side + 4] == 255).all() and (sheet[:, side : side + 4] == 255).all()  # gaps
    assert (sheet[side + 4 :, 2 * (side + 4) :] == 255).all()  # the sixth place of two rows of 3 is empty


def test_a_signed_map_picture_is_red_above_zero_blue_below_white_at_zero_and_between_tiles():
    maps = np.zeros((2, 3, 3), np.float32)
    maps[0, 0, 0], maps[1, 2, 2] = 2.0, -1.0
    pic = map_picture(tile(maps, 2), signed=True, target=70)  # 3 + 1 + 3 = 7 columns, 10 px each
    assert pic.dtype == np.uint8 and pic.shape == (30, 70, 3)
    red, blue = pic[5, 5].astype(int), pic[25, 65].astype(int)
    assert red[0] > red[2] + 50 and red[1] < 40  # the largest weight: the scale's dark red end
    assert blue[2] > blue[0] + 80 and blue.min() > 40  # -1 on a scale of +-2: a paler blue
    assert (pic[15, 15] > 240).all()  # a zero weight is white
    assert (pic[:, 30:40] == 255).all()  # the gap between the two tiles is background
    plain = map_picture(np.arange(4.0).reshape(2, 2), target=2)
    assert plain.shape == (2, 2, 3) and not np.array_equal(plain[0, 0], plain[1, 1])  # viridis ends


def test_an_embedding_picture_draws_each_digit_in_its_colour_and_mistakes_as_crosses():
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.2]])
    pic = embedding_picture(xy, np.array([3, 7, 1]), np.array([False, False, True]), width=200, height=150)
    assert pic.shape == (150, 200, 3)
    colours = {tuple(c) for c in pic.reshape(-1, 3)}

    def rgb(h):
        return tuple(int(h[i : i + 2], 16) for i in (1, 3, 5))

    assert rgb(DIGIT_COLORS[3]) in colours and rgb(DIGIT_COLORS[7]) in colours
    bottom_left, top_right = pic[130:141, 5:16].reshape(-1, 3), pic[30:60, 180:196].reshape(-1, 3)
    assert (bottom_left == rgb(DIGIT_COLORS[3])).all(1).any()  # (0, 0) lower left
    assert (top_right == rgb(DIGIT_COLORS[7])).all(1).any()  # (1, 1) upper right
    middle = pic[100:130, 85:115].reshape(-1, 3)
    assert (middle == rgb("#111827")).all(1).any()  # the mistake, a dark cross
    assert not (middle == rgb(DIGIT_COLORS[1])).all(1).any()  # not a dot in its digit's colour
