"""mnist_core.plots: what the figures show, read from the figures themselves."""

from mnist_core.plots import batch_loss_figure


def test_a_training_runs_loss_axis_spans_its_planned_epochs():
    steps, losses = list(range(1, 51)), [2.3 / s for s in range(1, 51)]  # 50 of 3 x 100 batches
    live = batch_loss_figure(steps, losses, 0.6, batches_per_epoch=100, x_max=3)
    assert tuple(live.layout.xaxis.range) == (0, 3) and live.layout.xaxis.title.text == "epoch"
    assert max(live.data[0].x) == 0.5  # the curve so far, in epochs, on the left sixth of the axis
    ended = batch_loss_figure(steps, losses, 0.6, batches_per_epoch=100)
    assert ended.layout.xaxis.range is None and ended.layout.xaxis.rangemode == "tozero"  # automatic
