"""What a fresh dashboard process does in the background, so that no page's first visit waits for it.

app.py calls start() on every script run; only the first call in a process does anything. One
low-priority thread then imports what the pages import lazily and builds a first figure (Plotly
reads its template on first use), so the first Evaluate, Draw, Data or Inside visit after a restart
finds them ready; runs the default model once on a blank digit, prediction and saliency maps (the
first call of each sets itself up), so the first stroke on Draw is as quick as the next; and then
evaluates the default model (from the disk cache when an earlier server on this machine evaluated
it already; see analysis_cache), so Evaluate opens on it at once.
Each step is only an optimisation: a failure is left for the page that needs the thing to report.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_LOCK = threading.Lock()
_THREAD: threading.Thread | None = None


def _libraries() -> None:
    import captum.attr  # noqa: F401  (the saliency maps: Draw, Evaluate)

    from . import plots

    plots.probability_bars([0.1] * 10).to_json()  # imports Plotly and loads its template


def _first_inference(default_model: Path) -> None:
    """A prediction and each saliency map of a blank digit with the default model: PyTorch's and
    captum's first-call set-up is done before the first stroke on the Draw page."""
    import numpy as np

    from .checkpoints import load_checkpoint
    from .evaluate import predict_proba
    from .explain import attribute, methods_for
    from .pixels import normalize

    model = load_checkpoint(default_model).model
    x = normalize(np.zeros((28, 28), dtype=np.float32))
    predict_proba(model, x)
    for method in methods_for(model):
        attribute(model, x, method, 0)


def _evaluation(default_model: Path) -> None:
    from . import analysis_cache

    if default_model.is_file():
        analysis_cache.evaluate_checkpoint(default_model, "test")


def _work(default_model: Path) -> None:
    try:  # behind the pages' own work: this thread's nice value (Linux)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass
    for step in (_libraries, lambda: _first_inference(default_model), lambda: _evaluation(default_model)):
        try:
            step()
        except Exception:  # the page that needs it does the work again and reports the failure
            pass


def start(default_model: str | Path) -> threading.Thread | None:
    """Start the warm-up thread once per process; the thread, or None if it was started before."""
    global _THREAD
    with _LOCK:
        if _THREAD is not None:
            return None
        _THREAD = threading.Thread(target=_work, args=(Path(default_model),), name="warm-up", daemon=True)
    _THREAD.start()
    return _THREAD
