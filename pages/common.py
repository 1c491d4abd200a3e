"""Shared UI pieces (not a page): cached core objects and the sidebar list of active runs."""

from __future__ import annotations

import functools
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from mnist_core.data import DataError, load_mnist
from mnist_core.jobs import JobManager
from mnist_core.paths import default_model_path

_HERE = Path(__file__).resolve().parent  # page files by absolute path: any page may be the main script
_shell = threading.local()  # .active is True while app.py runs a page

# The app's pages, in sidebar order: (file, title, icon).
_PAGE_SPECS = [
    ("home", "Home", ":material/home:"),
    ("data", "Data", ":material/grid_on:"),
    ("models", "Models", ":material/account_tree:"),
    ("train", "Train", ":material/model_training:"),
    ("runs", "Runs", ":material/stacked_line_chart:"),
    ("evaluate", "Evaluate", ":material/fact_check:"),
    ("inside", "Inside", ":material/layers:"),
    ("draw", "Draw", ":material/draw:"),
]


def app_pages() -> list:
    """Fresh page objects for st.navigation, on every run. A page object remembers that navigation
    chose it (page.run() checks and clears that), so sessions running at once must not share one."""
    return [
        st.Page(_HERE / f"{name}.py", title=title, icon=icon, default=name == "home")
        for name, title, icon in _PAGE_SPECS
    ]


# Pages link to each other with these objects (st.page_link, st.switch_page), never with path
# strings; a link only reads the page's identity, so one object per page serves every session.
HOME, DATA, MODELS, TRAIN, RUNS, EVALUATE, INSIDE, DRAW = app_pages()


@contextmanager
def page_shell():
    """app.py runs the chosen page inside this: it marks the run as going through app.py, and
    turns machine faults into a message (see machine_errors)."""
    _shell.active = True
    try:
        with machine_errors():
            yield
    finally:
        _shell.active = False


def ensure_app_shell() -> None:
    """Call first on every page: a page always runs inside app.py's navigation and sidebar.

    When a deep link (say /train) is a fresh server's very first request, Streamlit runs that
    page alone through its legacy pages/-folder mode, because app.py has a pages/ folder beside
    it. Calling st.navigation ends that mode for the whole server (its documented effect), and
    the rerun then goes through app.py. Public API only: st.navigation and st.rerun. The
    redirect is tried at most twice per session, so a page can never rerun forever."""
    if getattr(_shell, "active", False):
        return
    tries = st.session_state.get("_shell_redirects", 0)
    if tries >= 2:
        return
    st.session_state._shell_redirects = tries + 1
    st.navigation(app_pages(), position="hidden")
    st.rerun()


@st.cache_resource
def job_manager() -> JobManager:
    """One JobManager per server process; its run store opens a connection per thread."""
    return JobManager()


@st.cache_resource(show_spinner="Loading MNIST (downloading it on first use)...")
def mnist():
    return load_mnist()


def mnist_or_stop():
    """The dataset, or a clear message and the end of the page."""
    try:
        return mnist()
    except DataError as exc:
        st.error(str(exc))
        st.stop()


def progress_text(run) -> tuple[float, str]:
    """(fraction done, 'epoch 2/5 - batch 120/844 - ETA 0:42 - 3,100 img/s') for an active run."""
    if run.status == "queued":
        return 0.0, f"queued, position {run.queue_position}"
    p = run.progress or {}
    parts = [
        f"epoch {p.get('epoch', 1)}/{run.config['epochs']}",
        f"batch {p.get('batch', 0)}/{p.get('batches') or 1}",
    ]
    if run.eta_s is not None:
        parts.append(f"ETA {int(run.eta_s) // 60}:{int(run.eta_s) % 60:02d}")
    if p.get("images_per_s"):
        parts.append(f"{p['images_per_s']:,.0f} img/s")
    return run.fraction_done, " · ".join(parts)


@contextmanager
def machine_errors():
    """Faults of the machine rather than the code (a full disk, a folder gone, a locked or damaged
    database) become one message instead of a traceback; bugs still show as errors."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        st.error(
            f"The machine refused to read or write a file ({exc}). If the disk is full, free some "
            "space and try again; runs and checkpoints saved before this are unchanged.",
            icon=":material/hard_drive:",
        )


def guarded(fn):
    """For fragments: their reruns on a timer do not pass through app.py's machine_errors()."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with machine_errors():
            return fn(*args, **kwargs)

    return run


@st.fragment(run_every=2)
@guarded
def sidebar_runs() -> None:
    """Running and queued runs with their progress, on every page."""
    active = [r for r in job_manager().list() if r.active]
    st.caption("ACTIVE RUNS")
    if not active:
        st.caption("None. Start one on the Train page.")
    for run in sorted(active, key=lambda r: (r.status != "running", r.queue_seq)):
        done, text = progress_text(run)
        st.progress(done, text=f"**{run.model}** `{run.id[-6:]}` · {text}")


def model_sources() -> dict[str, str]:
    """Label -> run id ('' for the shipped default model), for every run that has checkpoints."""
    out = {"Default model (better_cnn, shipped)": ""} if default_model_path().is_file() else {}
    jobs = job_manager()
    for run in jobs.list():
        if run.epochs_done and jobs.store.checkpoints(run.id):
            acc = f"{run.best_val_acc:.2%} val" if run.best_val_acc else run.status
            out[f"Run {run.id[-6:]} · {run.model} · {acc}"] = run.id
    return out


def checkpoint_path(run_id: str, epoch="best"):
    """The checkpoint file of the default model, a run's best epoch, or one of its epochs."""
    if not run_id:
        return default_model_path()
    store = job_manager().store
    return store.best_checkpoint(run_id) if epoch == "best" else dict(store.checkpoints(run_id))[epoch]


def choose_checkpoint(prefix: str, columns) -> tuple[str, str, object]:
    """Model and epoch pickers (preselecting the run opened from Train): (label, run id, epoch)."""
    sources = model_sources()
    if not sources:
        st.info("No model yet: train one on the Train page.")
        st.stop()
    labels = list(sources)
    wanted = st.session_state.get("selected_run")
    start = next((i for i, lab in enumerate(labels) if wanted and sources[lab] == wanted), 0)
    if wanted and wanted not in sources.values():
        st.warning(f"Run {wanted} has no checkpoint yet (or was deleted); showing {labels[0]} instead.")
    label = columns[0].selectbox("Model", labels, index=start, key=f"{prefix}_model")
    epoch = "best"
    if sources[label]:
        epochs = ["best"] + [e for e, _ in job_manager().store.checkpoints(sources[label])]
        epoch = columns[1].select_slider(
            "Epoch",
            epochs,
            value="best",
            key=f"{prefix}_epoch",
            help="travel back to an earlier epoch's weights",
        )
    return label, sources[label], epoch


@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_model(path: str, mtime: float):
    from mnist_core.checkpoints import load_checkpoint

    return load_checkpoint(path).model


def load_model(path):
    """A checkpoint's model (cached per file version), or None after showing why it failed."""
    from mnist_core.checkpoints import CheckpointError

    try:
        return _cached_model(str(path), path.stat().st_mtime)
    except (CheckpointError, OSError) as exc:
        st.error(f"This model could not be loaded: {exc}")
        return None
