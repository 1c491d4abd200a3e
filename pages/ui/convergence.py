"""Has the network converged? A run's epochs overlaid and their reading (Train's live view, Runs)."""

from __future__ import annotations

import streamlit as st

from mnist_core.analysis.convergence import read_convergence
from mnist_core.figures.convergence import convergence_figure
from mnist_core.jobs.store import RunError

from .charts import show_chart
from .resources import job_manager

LEVELS = {  # how each verdict is shown
    "still_improving": "info",
    "converged": "success",
    "converged_val_rising": "warning",
    "overfitting": "warning",
    "rising": "warning",
    "not_learning": "warning",
}
TITLE = "Each epoch's batch losses, overlaid"  # the figure's title, which the tests look for


@st.cache_resource(max_entries=64, show_spinner=False)
def convergence_chart(run_id: str, epochs: int, last_step: int, smoothing: float, batches: int, _rows):
    return convergence_figure([r[0] for r in _rows], [r[2] for r in _rows], batches, epochs, smoothing)


def convergence_view(run_id: str, epochs: list[dict], smoothing: float) -> None:
    """The finished epochs' batch-loss curves on the same axes and what they say (from two finished
    epochs on; before that, a sentence). Drawn once per finished epoch."""
    try:
        run = job_manager().get(run_id)
    except RunError:
        return
    rows = job_manager().store.batch_losses(run_id)
    batches = (run.progress or {}).get("batches") or max(1, len(rows) // max(1, run.epochs_done))
    reading = read_convergence(
        [r[0] for r in rows],
        [r[2] for r in rows],
        batches,
        [e.get("val_loss") for e in epochs],
        run.config.get("schedule", "constant"),
    )
    if reading.verdict == "one_epoch":
        st.caption(f"**Has it converged?** {reading.sentence}")
        return
    fig = convergence_chart(run_id, len(epochs), rows[-1][0], smoothing, batches, rows)
    show_chart(fig, width="stretch", key=f"convergence_{run_id}_{len(epochs)}")
    getattr(st, LEVELS[reading.verdict])(f"**Has it converged?** {reading.sentence}")
