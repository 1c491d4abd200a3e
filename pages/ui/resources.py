"""What pages share from the library: the job manager, the class's policy, MNIST, models and checkpoints."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from mnist_core.data.mnist import DataError, load_mnist
from mnist_core.jobs import classroom
from mnist_core.jobs.classroom import ClassPolicy
from mnist_core.jobs.identity import (
    User,
)
from mnist_core.jobs.manager import JobManager
from mnist_core.learn.config import ConfigError
from mnist_core.paths import default_model_path

from .links import show_run, wanted_run

POLICY_KEYS = {f.name for f in dataclass_fields(ClassPolicy)}


def configured_policy() -> ClassPolicy:
    """The class's limits and exercise from the secrets file's [classroom] section (none: no limits)."""
    try:
        section = st.secrets.get("classroom") or {}
    except StreamlitSecretNotFoundError:
        return ClassPolicy()
    plain = {k: dict(v) if hasattr(v, "items") else v for k, v in dict(section).items() if k in POLICY_KEYS}
    try:
        return ClassPolicy.from_dict(plain)
    except ConfigError as exc:
        st.error(f"The [classroom] section of the secrets file is invalid: {exc}", icon=":material/error:")
        st.stop()


@st.cache_resource
def job_manager() -> JobManager:
    """One JobManager per server process; its run store opens a connection per thread. A warm
    worker starts warming up now, so the first Start trains at once."""
    manager = JobManager(policy=configured_policy())
    try:
        manager.prepare()
    except Exception:  # a warm worker is an optimisation: without one, runs start cold
        pass
    return manager


def can_control(run, user: User) -> bool:
    """Whether this user's buttons act on this run (classroom's rule; the job API enforces it)."""
    return classroom.can_act(run, user)


def my_runs(runs: list, user: User) -> list:
    """The runs a user's pages reattach to (classroom's rule)."""
    return classroom.reattaches_to(runs, user)


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
    return store.layout.best_checkpoint(run_id) if epoch == "best" else dict(store.checkpoints(run_id))[epoch]


def choose_checkpoint(prefix: str, columns) -> tuple[str, str, object]:
    """Model and epoch pickers (preselecting the run the address or a hand-off names): (label, run
    id, epoch)."""
    sources = model_sources()
    if not sources:
        st.info("No model yet: train one on the Train page.")
        st.stop()
    labels = list(sources)
    wanted = wanted_run()
    start = next((i for i, lab in enumerate(labels) if wanted and sources[lab] == wanted), 0)
    if wanted and wanted not in sources.values():
        st.warning(f"Run {wanted} has no checkpoint yet (or was deleted); showing {labels[0]} instead.")
    label = columns[0].selectbox("Model", labels, index=start, key=f"{prefix}_model")
    show_run(sources[label])  # the address names the model shown: a copied link opens it
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
    from mnist_core.learn.checkpoints import load_checkpoint

    return load_checkpoint(path).model


def load_model(path):
    """A checkpoint's model (cached per file version), or None after showing why it failed."""
    from mnist_core.learn.checkpoints import CheckpointError

    try:
        return _cached_model(str(path), path.stat().st_mtime)
    except (CheckpointError, OSError) as exc:
        st.error(f"This model could not be loaded: {exc}")
        return None
