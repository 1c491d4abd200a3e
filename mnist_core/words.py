"""Words that agree with their numbers: what every message and label with a count says."""

from __future__ import annotations


def count(n: float, noun: str, plural: str | None = None) -> str:
    """`n` and its noun, agreeing: count(1, "run") is "1 run", count(3, "run") "3 runs",
    count(0, "run") "0 runs"; `plural` for nouns that do not take an "s" (count(2, "batch loss",
    "batch losses")). A float is shown as briefly as it reads (2.0 CPUs as "2 CPUs")."""
    shown = f"{n:g}" if isinstance(n, float) else str(n)
    return f"{shown} {noun if n == 1 else plural or noun + 's'}"


def kept_epochs(n: int) -> str:
    """What an ended run still has, as a sentence: kept_epochs(1) is "1 finished epoch and its
    checkpoint are kept", kept_epochs(0) "No epoch had finished: there is no checkpoint to keep"."""
    if n == 0:
        return "No epoch had finished: there is no checkpoint to keep"
    return f"{count(n, 'finished epoch')} and {'its checkpoint' if n == 1 else 'their checkpoints'} are kept"
