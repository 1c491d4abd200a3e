"""Has the network converged? The reading of the overlaid epoch curves, and their figure."""

import re

import numpy as np
import pytest

from mnist_core.analysis.convergence import VERDICTS, batch_noise, per_epoch, read_convergence
from mnist_core.figures.convergence import convergence_figure
from mnist_core.figures.style import ema
from mnist_core.jobs.identity import ADMIN
from mnist_core.learn import engine as T
from mnist_core.learn.config import TrainConfig


def synthetic(levels, noise=0.05, bpe=100, seed=0, warmup=0.0):
    """Steps and losses of a run whose epoch e sits at levels[e] with normal batch noise; `warmup`:
    the first epoch starts that much higher and falls to its level within ten batches."""
    rng = np.random.default_rng(seed)
    steps, losses = [], []
    for e, level in enumerate(levels):
        for b in range(bpe):
            start = warmup * np.exp(-b / 3) if e == 0 else 0.0
            steps.append(e * bpe + b + 1)
            losses.append(max(1e-4, level + start + noise * rng.standard_normal()))
    return steps, losses


def test_batch_noise_is_the_spread_of_single_batches_whatever_the_trend_and_spikes():
    rng = np.random.default_rng(1)
    batches = 1.0 - np.linspace(0, 0.5, 600) + 0.1 * rng.standard_normal(600)
    batches[::50] += 3.0  # a spike every 50 batches
    assert batch_noise(list(batches)) == pytest.approx(0.1, rel=0.1)
    assert np.std(batches) > 0.3  # the plain spread would count the trend and the spikes
    assert batch_noise([0.5]) == 0.0


@pytest.mark.parametrize(
    "levels,val,verdict",
    [
        ([0.6, 0.3], [0.5, 0.35], "still_improving"),
        ([0.3, 0.1, 0.1], [0.2, 0.15, 0.149], "converged"),
        ([0.3, 0.1, 0.1], [0.2, 0.15, 0.17], "converged_val_rising"),
        ([0.3, 0.1, 0.1], [0.2, 0.15, 0.12], "still_improving"),  # flat batches, validation still falls
        ([0.6, 0.3], [0.3, 0.35], "overfitting"),
        ([0.3, 0.6], [0.3, 0.4], "rising"),
        ([2.3, 2.3], [2.30, 2.30], "not_learning"),
        ([0.5], [0.4], "one_epoch"),
    ],
)
def test_each_verdict_from_synthetic_curves(levels, val, verdict):
    steps, losses = synthetic(levels)
    reading = read_convergence(steps, losses, 100, val)
    assert reading.verdict == verdict and verdict in VERDICTS, reading.sentence
    if verdict != "one_epoch":
        assert reading.epoch == len(levels) and reading.batches == (1, 100)
        assert reading.noise == pytest.approx(0.05, rel=0.2)


def test_the_sentence_gives_the_change_the_noise_and_the_validation_loss():
    steps, losses = synthetic([1.0, 0.4, 0.2, 0.1, 0.09], noise=0.04)
    reading = read_convergence(steps, losses, 100, [0.5, 0.3, 0.2, 0.15, 0.16])
    assert reading.verdict == "converged_val_rising"
    last = [y for s, y in zip(steps, losses) if s > 400]
    prev = [y for s, y in zip(steps, losses) if 300 < s <= 400]
    assert reading.median_last == pytest.approx(np.median(last))
    assert reading.median_prev == pytest.approx(np.median(prev))
    change = (np.median(last) - np.median(prev)) / np.median(prev)
    text = reading.sentence
    assert text.startswith(f"Epoch 5's batches sat {abs(change):.0%} below epoch 4's"), text
    assert "over batches 1-100" in text and "within the noise of single batches" in text
    assert "validation loss rose from 0.1500 to 0.1600" in text and "more epochs would not help" in text
    assert re.search(r"±0\.0\d\d", text)
    improving = read_convergence(steps[:200], losses[:200], 100, [0.5, 0.3])
    assert improving.verdict == "still_improving", improving.sentence
    assert "times the noise of single batches" in improving.sentence
    assert "more epochs would likely help" in improving.sentence


def test_medians_are_not_ruled_by_a_first_epochs_first_batches():
    steps, losses = synthetic([0.3, 0.3], noise=0.05, warmup=2.0)
    first, second = losses[:100], losses[100:]
    assert np.mean(first) - np.mean(second) > 0.05  # the means would call it still improving
    reading = read_convergence(steps, losses, 100, [0.4, 0.4])
    assert reading.verdict == "converged", reading.sentence


def test_one_finished_epoch_or_none_is_a_sentence_and_a_partial_epoch_is_left_out():
    steps, losses = synthetic([0.6, 0.3, 0.1])
    live = read_convergence(steps[:150], losses[:150], 100, [0.5])  # trains its second epoch
    assert live.verdict == "one_epoch" and live.sentence.startswith("Only one epoch has finished")
    assert live.median_last is None
    first = read_convergence(steps[:50], losses[:50], 100, [])  # still in its first epoch
    assert first.verdict == "one_epoch" and first.sentence.startswith("No epoch has finished yet")
    partial = read_convergence(steps[:250], losses[:250], 100, [0.5, 0.4])  # half of epoch 3 trained
    assert partial.epoch == 2 and partial.median_last == pytest.approx(np.median(losses[100:200]))
    assert list(per_epoch(steps[:250], losses[:250], 100, 2)) == [1, 2]


def test_short_epochs_widen_the_margin_of_chance():
    steps, losses = synthetic([0.5, 0.5], bpe=4, noise=0.05, seed=3)
    reading = read_convergence(steps, losses, 4, [0.5, 0.5])
    assert reading.margin > reading.noise  # a median of 4 batches moves by more than one batch's noise
    steps, losses = synthetic([0.5, 0.5], bpe=100)
    assert read_convergence(steps, losses, 100, [0.5, 0.5]).margin == pytest.approx(batch_noise(losses[100:]))


def test_the_schedule_and_a_missing_validation_split_are_said():
    steps, losses = synthetic([0.3, 0.1, 0.1])
    onecycle = read_convergence(steps, losses, 100, [0.2, 0.15, 0.149], "onecycle")
    assert onecycle.verdict == "converged" and "one-cycle schedule moves the curves" in onecycle.sentence
    plain = read_convergence(steps, losses, 100, [0.2, 0.15, 0.149], "constant")
    assert "one-cycle" not in plain.sentence
    blind = read_convergence(steps, losses, 100, [None, None, None])
    assert blind.verdict == "converged" and "no validation split" in blind.sentence


# ---- recorded runs: tiny real trainings (400 images, at most three epochs) ----


def recorded(mnist, **kw):
    cfg = TrainConfig.from_dict(dict(dict(model="mlp_128_64", epochs=3, batch_size=32, limit=400), **kw))
    state = T.train_model(cfg, mnist=mnist).state
    losses = state.history["batch_loss"]
    vals = [e.get("val_loss") for e in state.history["epochs"]]
    bpe = state.batches_per_epoch
    return read_convergence(range(1, len(losses) + 1), losses, bpe, vals, cfg.schedule), bpe


@pytest.mark.parametrize(
    "settings,verdict",
    [
        (dict(epochs=2), "still_improving"),  # Adam 0.001: epoch 2 far below epoch 1
        (dict(lr=3e-3), "overfitting"),  # the batches still fall, validation loss rose in epoch 3
        # the learning rate cut a hundredfold after epoch 1: epochs 2 and 3 lie on each other
        (dict(lr=3e-3, schedule="step", step_size=1, gamma=0.01), "converged"),
        (dict(optimizer="sgd", momentum=0.9, lr=0.1), "converged_val_rising"),
        (dict(optimizer="sgd", momentum=0.0, lr=1e-3, epochs=2), "not_learning"),  # still at 2.30
        (dict(epochs=1), "one_epoch"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_verdict_from_a_recorded_run(mnist, settings, verdict):
    reading, bpe = recorded(mnist, **settings)
    assert reading.verdict == verdict, reading.sentence
    if verdict != "one_epoch":
        assert reading.batches == (1, bpe) and reading.epoch == settings.get("epochs", 3)


def test_a_stored_run_is_read_across_an_extend(jobs):
    """Through the job API and the store, as the pages read it: steps go on across Extend."""
    run = jobs.wait(
        jobs.submit(TrainConfig.from_dict(dict(model="mlp_128_64", epochs=1, limit=400)), actor=ADMIN).id
    )
    assert run.status == "completed", run.reason

    def read(run):
        rows = jobs.store.batch_losses(run.id)
        vals = [e.get("val_loss") for e in jobs.store.epochs(run.id)]
        bpe = run.progress["batches"]
        return read_convergence([r[0] for r in rows], [r[2] for r in rows], bpe, vals), bpe

    assert read(run)[0].verdict == "one_epoch"
    jobs.extend(run.id, 1, actor=ADMIN)
    run = jobs.wait(run.id)
    assert run.status == "completed" and run.epochs_done == 2, run.reason
    reading, bpe = read(run)
    assert reading.verdict == "still_improving" and reading.batches == (1, bpe), reading.sentence


def test_the_figure_has_one_curve_per_epoch_in_order_against_the_batch_within_it():
    steps, losses = synthetic([0.6, 0.3, 0.2, 0.15], bpe=50)
    fig = convergence_figure(steps, losses, 50, epochs=4, smoothing=0.7)
    assert [t.name for t in fig.data] == ["epoch 1", "epoch 2", "epoch 3", "epoch 4"]
    for n, trace in enumerate(fig.data):
        assert list(trace.x) == list(range(1, 51))  # the batch within the epoch, not the step
        assert list(trace.y) == pytest.approx(ema(losses[n * 50 : (n + 1) * 50], 0.7))  # smoothed afresh

    def lightness(colour):
        r, g, b = map(int, re.findall(r"\d+", colour))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    shades = [lightness(t.line.color) for t in fig.data]
    assert shades == sorted(shades) and len(set(shades)) == 4  # dark first epoch to light last one
    assert fig.layout.xaxis.title.text == "batch within the epoch"
    live = convergence_figure(steps[:170], losses[:170], 50, epochs=3)  # a partial fourth epoch
    assert len(live.data) == 3
    long = convergence_figure(*synthetic([0.5, 0.4], bpe=2000), 2000, epochs=2, max_points=300)
    assert all(len(t.x) <= 300 and t.x[-1] == 2000 for t in long.data)
