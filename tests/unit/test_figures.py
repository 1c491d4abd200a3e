"""mnist_core.figures.plots: what the figures show, read from the figures themselves."""

from mnist_core.figures.training import batch_loss_figure, gap_sentence


def test_a_training_runs_loss_axis_spans_its_planned_epochs():
    steps, losses = list(range(1, 51)), [2.3 / s for s in range(1, 51)]  # 50 of 3 x 100 batches
    live = batch_loss_figure(steps, losses, 0.6, batches_per_epoch=100, x_max=3)
    assert tuple(live.layout.xaxis.range) == (0, 3) and live.layout.xaxis.title.text == "epoch"
    assert max(live.data[0].x) == 0.5  # the curve so far, in epochs, on the left sixth of the axis
    ended = batch_loss_figure(steps, losses, 0.6, batches_per_epoch=100)
    assert ended.layout.xaxis.range is None and ended.layout.xaxis.rangemode == "tozero"  # automatic


def test_the_gap_sentence_says_why_validation_leads_in_the_first_epoch():
    """Train accuracy averages an epoch's batches while the network learns; validation is measured at
    the epoch's end. So in epoch 1 a validation lead is that, not regularisation."""
    first = dict(epoch=1, train_acc=0.81, val_acc=0.96, train_loss=0.7, val_loss=0.18)
    level, sentence = gap_sentence([first])
    assert level == "info" and "15.0% above train accuracy" in sentence
    assert "averages every batch" in sentence and "dropout" not in sentence
    second = dict(epoch=2, train_acc=0.95, val_acc=0.97, train_loss=0.2, val_loss=0.1)
    level, sentence = gap_sentence([first, second])
    assert level == "info" and "dropout or augmentation" in sentence
