"""What a fresh dashboard process does in the background, so that no page's first visit waits for it.

app.py calls start() on every script run; only the first call in a process does anything: it
imports what the pages import late (captum, and the caller's list) and builds a first figure
(Plotly reads its template on first use), so a page's first visit after a restart finds them
ready; then one thread evaluates the default model (first if an earlier server on this machine
left its evaluation on disk, see analysis_cache: then it takes a tenth of a second; last if it has
to compute it, seconds), so Evaluate opens on it at once, and runs the default model once on a
blank digit, prediction and saliency maps (the first call of each sets itself up), so the first
stroke on Draw is as quick as the next.
Each step is only an optimisation: a failure is left for the page that needs the thing to report.
The process's exit skips the steps not yet begun and waits for the one in progress, which an
evaluation ends at its next batch: PyTorch torn down under a thread still computing in it aborts
the process ("terminate called without an active exception", exit status 134), as a server stopped
in its first seconds did.
"""

from __future__ import annotations

import atexit
import importlib
import threading
from pathlib import Path

_LOCK = threading.Lock()
_THREAD: threading.Thread | None = None
_STOP = threading.Event()  # set at exit: the steps not yet begun are skipped
EXIT_WAIT_S = 30.0  # the longest an exit waits for the step in progress (it ends within a batch)


def _libraries(imports: tuple[str, ...]) -> None:
    import captum.attr  # noqa: F401  (the saliency maps: Draw, Evaluate; 0.4 s to import)

    from .figures.evaluation import probability_bars

    probability_bars([0.1] * 10).to_json()  # Plotly loads its template on first use
    for name in imports:
        importlib.import_module(name)


def _first_inference(default_model: Path) -> None:
    """A prediction and each saliency map of a blank digit with the default model: PyTorch's and
    captum's first-call set-up is done before the first stroke on the Draw page."""
    import numpy as np

    from .analysis.saliency import attribute, methods_for
    from .data.pixels import normalize
    from .learn.checkpoints import load_checkpoint
    from .learn.evaluate import predict_proba

    model = load_checkpoint(default_model).model
    x = normalize(np.zeros((28, 28), dtype=np.float32))
    predict_proba(model, x)
    for method in methods_for(model):
        attribute(model, x, method, 0)


def _evaluation(default_model: Path, only_from_disk: bool = False) -> None:
    from .analysis import cache as analysis_cache

    if default_model.is_file() and (analysis_cache.on_disk(default_model) or not only_from_disk):
        analysis_cache.evaluate_checkpoint(default_model, "test", stop=_STOP.is_set)


def _work(default_model: Path) -> None:
    steps = (  # quick ones first: an evaluation not yet on disk takes seconds
        lambda: _evaluation(default_model, only_from_disk=True),
        lambda: _first_inference(default_model),
        lambda: _evaluation(default_model),  # at once if the first step did it
    )
    for step in steps:
        if _STOP.is_set():
            return
        try:
            step()
        except Exception:  # the page that needs it does the work again and reports the failure
            pass


def start(default_model: str | Path, imports: tuple[str, ...] = ()) -> threading.Thread | None:
    """Once per process: the imports (captum, Plotly's template, `imports`: more modules the
    caller's pages import late, by name) here and now, about a second, then the rest in a thread;
    that thread, or None if it was started before. The imports are not left to the thread: a page
    importing a module the thread was still importing waited for it, the Evaluate page's first
    visit took 2.9 s instead of 1.2 s (2 cores)."""
    global _THREAD
    with _LOCK:
        if _THREAD is not None:
            return None
        _THREAD = threading.Thread(target=_work, args=(Path(default_model),), name="warm-up", daemon=True)
        try:
            _libraries(tuple(imports))
        except Exception:  # the page that needs one imports it again and reports the failure
            pass
    atexit.register(_finish)
    _THREAD.start()
    return _THREAD


def _finish() -> None:
    """At exit: no further step, and the one in progress ends before PyTorch is torn down."""
    _STOP.set()
    if _THREAD is not None and _THREAD.is_alive():
        _THREAD.join(EXIT_WAIT_S)
