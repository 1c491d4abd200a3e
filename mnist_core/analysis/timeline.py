"""A run's epochs as Inside shows them: a bounded sample of them, the filters over time, the maps per epoch.

A run may have up to 1,000 epochs. Whatever their number, Inside reads at most MAX_EPOCHS_SHOWN of
them (the first, the last, the others evenly spread) for the filters over time and the PCA maps, and
MAX_TSNE_EPOCHS for t-SNE maps (a t-SNE fit costs about a second even for a few hundred digits); the
maps of a run share one budget of digits (inside.map_digits), so time and memory stay those of one
map of the test set. Results are kept in the analysis wing's memory (bounded in bytes), one per set
of checkpoint file versions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from ..learn.checkpoints import read_checkpoint
from . import inside
from .memory import in_memory, memo

MAX_EPOCHS_SHOWN = 16  # epochs read for the filters over time and the PCA maps
MAX_TSNE_EPOCHS = 4  # epochs fitted for t-SNE maps (a fit takes about a second per 500 digits)
MAX_UNITS = 64  # first-layer images per epoch (an MLP's hidden units)
T = TypeVar("T")


def sample_epochs(items: Sequence[T], limit: int = MAX_EPOCHS_SHOWN) -> list[T]:
    """At most `limit` of `items`, in order: always the first and the last, the others evenly spread."""
    if limit < 2:
        raise ValueError(f"a sample of epochs holds the first and the last: limit must be >= 2, not {limit}")
    if len(items) <= limit:
        return list(items)
    picks = np.unique(np.round(np.linspace(0, len(items) - 1, limit)).astype(int))
    return [items[i] for i in picks]


def shown_note(shown: int, total: int) -> str | None:
    """'Showing 16 of 1,000 epochs: ...' when a sample was taken, else None."""
    if shown >= total:
        return None
    return (
        f"Showing {shown} of {total:,} epochs: the first, the last and {shown - 2} evenly "
        "spread between, so the view stays quick and small whatever the run's length."
    )


@dataclass
class FilterHistory:
    """The first layer's filters (or weight images) at the shown epochs, and how far every weight
    moved from one shown epoch to the next."""

    epochs: list[int]
    kind: str  # 'conv' or 'linear'
    frames: list[np.ndarray]  # per shown epoch: (units, h, w), at most MAX_UNITS
    movement: dict[str, list[float]]  # per weight: ||W_e - W_prev|| / ||W_prev||, one per later epoch
    total: int  # the epochs the run has on disk

    @property
    def note(self) -> str | None:
        return shown_note(len(self.epochs), self.total)


def filter_history(checkpoints: Sequence[tuple[int, Path]], limit: int = MAX_EPOCHS_SHOWN) -> FilterHistory:
    """The filter history of a run's (epoch, checkpoint) list, reading the sampled epochs one at a
    time (two state dicts in memory at once). Raises CheckpointError or OSError for an unreadable file."""
    shown = sample_epochs(checkpoints, limit)

    def compute() -> FilterHistory:
        frames: list[np.ndarray] = []
        movement: dict[str, list[float]] = {}
        kind, before = "conv", None
        for _, path in shown:
            state = read_checkpoint(path)["state_dict"]
            kind, first = inside.first_weight(state)
            frames.append(np.array(first[:MAX_UNITS], dtype=np.float32))  # a copy: the state can go
            if before is not None:
                for name, (moved,) in inside.weight_movement([before, state]).items():
                    movement.setdefault(name, []).append(moved)
            before = state
        return FilterHistory([e for e, _ in shown], kind, frames, movement, len(checkpoints))

    return memo(("timeline-filters", tuple(inside.file_key(p) for _, p in shown)), compute)


@dataclass(frozen=True)
class MapPlan:
    """Which epochs get an embedding map, with how many digits each, and what was capped."""

    method: str
    epochs: list[int]
    paths: list[Path]
    digits: int
    total: int  # the epochs (checkpoints) there were to choose from
    capped: str | None  # the digits asked for were more than allowed

    @property
    def note(self) -> str | None:
        return shown_note(len(self.epochs), self.total)

    def key(self) -> tuple:
        return ("timeline-maps", self.method, self.digits, tuple(inside.file_key(p) for p in self.paths))


def plan_maps(
    checkpoints: Sequence[tuple[int, Path]], asked: int, method: str, available: int = inside.MAX_SAMPLE
) -> MapPlan:
    """The maps of these (epoch, checkpoint) pairs for `asked` digits by "pca" or "tsne": at most
    MAX_EPOCHS_SHOWN (PCA) or MAX_TSNE_EPOCHS (t-SNE) epochs, sharing the method's digits."""
    if method not in inside.MAP_DIGITS:
        raise ValueError(f"method must be 'pca' or 'tsne', not {method!r}")
    shown = sample_epochs(checkpoints, MAX_TSNE_EPOCHS if method == "tsne" else MAX_EPOCHS_SHOWN)
    digits, capped = inside.map_digits(asked, len(shown), method, available)
    return MapPlan(method, [e for e, _ in shown], [p for _, p in shown], digits, len(checkpoints), capped)


def maps_ready(plan: MapPlan) -> bool:
    """Whether the plan's maps are in memory (the page then shows them without a progress box)."""
    try:
        return in_memory(plan.key())
    except OSError:
        return False


def epoch_maps(
    plan: MapPlan,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    progress: Callable[[str, float], None] | None = None,
) -> list[inside.EmbeddingMap]:
    """The plan's maps, one per shown epoch, each checkpoint loaded in turn; computed once per set
    of file versions. Raises CheckpointError or OSError for an unreadable file."""
    return memo(
        plan.key(),
        lambda: inside.embedding_maps(plan.paths, x_test, y_test, plan.digits, plan.method, progress),
    )
