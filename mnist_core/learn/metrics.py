"""Figures about a run, each computed in one place: progress, ETA, the generalisation gap, results."""

from __future__ import annotations

from dataclasses import asdict, dataclass


def fraction_done(epoch: int, epochs: int, batch: int, batches: int) -> float:
    """Share of the run trained, in [0, 1]: `epoch` is 1-based and `batch` of it is done."""
    if epochs <= 0 or batches <= 0 or epoch <= 0:
        return 0.0
    return min(1.0, max(0.0, ((epoch - 1) + batch / batches) / epochs))


def eta_seconds(elapsed_s: float, done: float) -> float | None:
    """Seconds left at the pace so far (None before anything is done)."""
    if done <= 0:
        return None
    return max(0.0, elapsed_s / done * (1.0 - done))


def gap(record: dict) -> float | None:
    """Train minus validation accuracy of one epoch record (None without validation)."""
    if record.get("val_acc") is None or record.get("train_acc") is None:
        return None
    return record["train_acc"] - record["val_acc"]


def final_gap(epochs: list[dict]) -> float | None:
    """The gap at the last epoch."""
    return gap(epochs[-1]) if epochs else None


@dataclass
class TrainMetrics:
    """What a finished `train_model` measured (also stored in checkpoints, as a plain dict)."""

    test_acc: float | None
    test_loss: float | None
    confusion: list[list[int]] | None
    per_class_accuracy: list[float] | None
    best_epoch: int
    val_acc: float | None
    val_loss: float | None
    epochs_run: int
    train_seconds: float
    stopped: bool
    early_stopped: bool
    images_per_s: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    def test_summary(self) -> dict:
        """The test-set figures the run store keeps beside the accuracy."""
        return dict(
            test_loss=self.test_loss,
            confusion=self.confusion,
            per_class_accuracy=self.per_class_accuracy,
            best_epoch=self.best_epoch,
            early_stopped=self.early_stopped,
        )
