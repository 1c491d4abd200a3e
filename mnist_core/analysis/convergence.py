"""Has the network converged? The last finished epoch's batch losses against the epoch before.

The reference project chose its five epochs from one figure: the loss of every batch against the
batch's index within its epoch, one curve per epoch. Each curve lies closer to zero than the one
before until two curves are almost the same. This module reads that figure in numbers:

- both epochs are compared over the same range of batches (the batches both have), by their
  medians: a mean would be ruled by a first epoch's first batches, where the loss starts at 2.3;
- the change is weighed against the noise of single batches, a robust spread: the median absolute
  difference between consecutive batches of the last epoch, scaled to a standard deviation
  (1.4826 MAD / sqrt 2; differencing removes the slow trend, the median ignores the odd spike);
- the validation loss of the same two epochs says whether what was learnt still generalises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VERDICTS = (
    "one_epoch",
    "still_improving",
    "converged",
    "converged_val_rising",
    "overfitting",
    "rising",
    "not_learning",
)
MAD_TO_SD = 1.4826  # a normal distribution's standard deviation over its median absolute deviation
MEDIAN_SE = 1.2533  # the standard error of a median of n normal values, in sd / sqrt(n)
VAL_FLAT = 0.02  # validation loss within 2% of the epoch before: held, neither rose nor fell
CHANCE = math.log(10)  # the loss of a uniform guess among ten digits
NOT_LEARNING = 0.9 * CHANCE  # a last epoch whose median is still above this has learnt next to nothing

SCHEDULE_NOTES = {
    "onecycle": (
        " This run's one-cycle schedule moves the curves for its own reasons: the learning rate warms"
        " up for a quarter of the run, then anneals to almost zero, so late curves flatten because"
        " the rate is near zero, and a longer run would stretch the whole cycle, not add epochs at"
        " its end."
    ),
    "range": (
        " This run is an LR range test: its learning rate rises every batch, so its curves show where"
        " the loss explodes, not whether the network converged."
    ),
}


@dataclass(frozen=True)
class Reading:
    """What the overlaid curves say: a verdict key (one of VERDICTS), a sentence, and its numbers."""

    verdict: str
    sentence: str
    epoch: int = 0  # the last finished epoch, compared with the one before
    median_prev: float | None = None
    median_last: float | None = None
    change: float | None = None  # (last - previous) / previous: negative when the loss fell
    noise: float | None = None  # standard deviation of single batches (robust)
    margin: float | None = None  # how far the medians may move by chance: noise, more for short epochs
    batches: tuple[int, int] | None = None  # the common range of batch indices, 1-based, inclusive
    val_prev: float | None = None
    val_last: float | None = None


def per_epoch(
    steps: Sequence[int], losses: Sequence[float], batches_per_epoch: int, epochs: int | None = None
) -> dict[int, tuple[list[int], list[float]]]:
    """{epoch: (batch indices within it, losses)} from global 1-based steps; only epochs 1..epochs
    when given (the finished ones: a live or stopped run's last epoch may be partial)."""
    if batches_per_epoch < 1:
        raise ValueError(f"batches_per_epoch must be at least 1, not {batches_per_epoch}")
    out: dict[int, tuple[list[int], list[float]]] = {}
    for step, loss in zip(steps, losses):
        epoch, batch = (step - 1) // batches_per_epoch + 1, (step - 1) % batches_per_epoch + 1
        if epochs is not None and epoch > epochs:
            continue
        xs, ys = out.setdefault(epoch, ([], []))
        xs.append(batch)
        ys.append(float(loss))
    return out


def batch_noise(losses: Sequence[float]) -> float:
    """The noise of single batches: 1.4826 * median |difference of consecutive batches| / sqrt(2)."""
    if len(losses) < 2:
        return 0.0
    diffs = np.abs(np.diff(np.asarray(losses, dtype=np.float64)))
    return float(MAD_TO_SD * np.median(diffs) / math.sqrt(2))


def _val_words(prev: float | None, last: float | None) -> tuple[str, str]:
    """(trend: rose, fell, held or none, words) for the validation loss of the last two epochs."""
    if prev is None or last is None:
        return "none", "no validation split to check it against"
    if last > prev * (1 + VAL_FLAT):
        return "rose", f"validation loss rose from {prev:.4f} to {last:.4f}"
    if last < prev * (1 - VAL_FLAT):
        return "fell", f"validation loss fell from {prev:.4f} to {last:.4f}"
    return "held", f"validation loss held at {last:.4f}"


def read_convergence(
    steps: Sequence[int],
    losses: Sequence[float],
    batches_per_epoch: int,
    val_losses: Sequence[float | None],
    schedule: str = "constant",
) -> Reading:
    """Read a run's overlaid epoch curves. `steps` are the global 1-based batch numbers of `losses`,
    `val_losses` one entry per finished epoch (None without a validation split): their count is the
    number of finished epochs, and batches of a later, unfinished epoch are left out."""
    finished = len(val_losses)
    curves = per_epoch(steps, losses, batches_per_epoch, finished)
    note = SCHEDULE_NOTES.get(schedule, "")
    if finished < 2 or finished - 1 not in curves or finished not in curves:
        sentence = (
            "No epoch has finished yet: the epochs' curves are overlaid, and compared, from the second "
            "finished epoch on."
            if finished == 0
            else "Only one epoch has finished: the epochs' curves are overlaid, and compared, from the "
            "second finished epoch on."
        )
        return Reading("one_epoch", sentence, epoch=finished)
    prev_x, prev_y = curves[finished - 1]
    last_x, last_y = curves[finished]
    common = sorted(set(prev_x) & set(last_x))
    if not common:
        return Reading("one_epoch", "The last two epochs share no batch to compare.", epoch=finished)
    keep = set(common)
    prev = [y for x, y in zip(prev_x, prev_y) if x in keep]
    last = [y for x, y in zip(last_x, last_y) if x in keep]
    m_prev, m_last = float(np.median(prev)), float(np.median(last))
    change = (m_last - m_prev) / m_prev if m_prev else 0.0
    noise = batch_noise(last)
    # the median of a short epoch moves by chance alone: with fewer than 13 batches the margin
    # widens to twice the standard error of a difference of two medians (1.2533 sd sqrt(2 / n))
    margin = noise * max(1.0, 2 * MEDIAN_SE * math.sqrt(2 / len(common)))
    moved = m_last - m_prev
    val_prev, val_last = val_losses[-2], val_losses[-1]
    trend, val_text = _val_words(val_prev, val_last)

    where = "below" if moved < 0 else "above"
    span = f"batches {common[0]}-{common[-1]}" if len(common) > 1 else f"batch {common[0]}"
    if abs(moved) <= noise:
        against = f"within the noise of single batches (±{noise:.3f})"
    elif abs(moved) <= margin:
        against = (
            f"more than the noise of single batches (±{noise:.3f}) but within what chance moves a "
            f"median of {len(common)} batches (±{margin:.3f})"
        )
    elif noise:
        against = f"{abs(moved) / noise:.1f} times the noise of single batches (±{noise:.3f})"
    else:
        against = "with no batch-to-batch noise to compare with"
    head = (
        f"Epoch {finished}'s batches sat {abs(change):.0%} {where} epoch {finished - 1}'s "
        f"(median {m_last:.4f} against {m_prev:.4f} over {span}), {against}; {val_text}"
    )
    # near chance, the loss is not learning unless it clearly falls from (not back to) chance
    leaving_chance = -moved > margin and m_prev <= 1.05 * CHANCE
    if m_last >= NOT_LEARNING and not leaving_chance:
        verdict = "not_learning"
        tail = (
            f": the loss still sits near {CHANCE:.2f}, a guess among ten digits, so the network is not"
            " learning; more epochs would not help, a larger learning rate might."
        )
    elif moved > margin:
        verdict = "rising"
        tail = ": the training loss went up, a sign of a learning rate too high for this stage of the run."
    elif -moved > margin:
        verdict = "overfitting" if trend == "rose" else "still_improving"
        tail = (
            ": the network learns its training images better while it generalises worse, it begins to "
            "overfit; more epochs would not help (stop here, or regularise)."
            if verdict == "overfitting"
            else ": the network is still improving, more epochs would likely help."
        )
    elif trend == "fell":
        verdict = "still_improving"
        tail = (
            ": the batches moved less than their noise, but the validation loss, measured on every "
            "validation image, still fell: the network is still improving, more epochs would likely help."
        )
    else:
        verdict = "converged_val_rising" if trend == "rose" else "converged"
        tail = (
            ": the network has converged and begins to overfit, more epochs would not help."
            if verdict == "converged_val_rising"
            else ": the network has converged, more epochs would not help much."
        )
    return Reading(
        verdict,
        head + tail + note,
        epoch=finished,
        median_prev=m_prev,
        median_last=m_last,
        change=change,
        noise=noise,
        margin=margin,
        batches=(common[0], common[-1]),
        val_prev=val_prev,
        val_last=val_last,
    )
