"""Faults as messages, not tracebacks: a damaged store (and its rebuild), a machine fault, a bug; a
guard. A fault's details (paths, the exception, its traceback) are shown to teachers and the
administrator only; learners get the plain message; the server's log keeps the details always."""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

import streamlit as st
from streamlit.errors import FragmentHandledException

from mnist_core.jobs.repair import rebuild
from mnist_core.jobs.store import DB_NAME, StoreDamaged, is_damage
from mnist_core.learn.evaluate import one_thread
from mnist_core.paths import checkpoints_dir

from .resources import job_manager

REBUILD_BUTTON = "Rebuild the run store from the run folders"


_shell = threading.local()  # .active is True while app.py runs a page (shell.page_shell sets it)

log = logging.getLogger("mnist_lab.faults")

_DETAILS_KEY = "_fault_details"  # this session's user may see faults' details (signin sets it)


def show_fault_details(allowed: bool) -> None:
    """signin.current_user records whether this session's user is a teacher or the administrator,
    for the guard's later runs (fragments on a timer included). Until then: the learner's view."""
    st.session_state[_DETAILS_KEY] = allowed


def _details() -> bool:
    return st.session_state.get(_DETAILS_KEY) is True


def sees_server_details() -> bool:
    """Whether this session's user (a teacher or the administrator) may see the server's own details:
    fault messages, file paths, the store's rebuild."""
    return _details()


def _store_or_stop() -> None:
    """The rebuild's result once, after its rerun; a damaged store: the message, and no page body."""
    rebuilt = st.session_state.pop("_store_rebuilt", None)
    if rebuilt:
        st.success(rebuilt, icon=":material/build:")
    failed = st.session_state.pop("_store_rebuild_failed", None)
    if failed:
        st.error(failed)
    try:
        # opening the store checks its database (well under a millisecond); an open one, that
        # runs.db is still the file it opened (deleted or replaced: StoreLost)
        job_manager().store.check_file()
    except StoreDamaged as exc:
        damaged_store(exc)
        st.stop()


def damaged_store(exc: StoreDamaged) -> None:
    """The one message for a damaged runs.db: what happened, that the run folders are intact, and a
    button that rebuilds the store from them (mnist_core.jobs.repair); the next run uses a fresh store."""
    log.error("The run store %s is damaged: %s", exc.db_path, exc.detail)
    which = f"`{exc.db_path}` cannot be read ({exc.detail})" if _details() else "cannot be read"
    st.error(
        "**The run store's database is damaged**, so the runs cannot be listed, shown or started. "
        f"The file {which}. The run folders beside it are "
        "intact: each run's checkpoints hold its settings, its loss curves and its metrics, so the "
        "store can be rebuilt from them. The damaged file is kept aside, not deleted.",
        icon=":material/database:",
    )
    _shell.store_message = True  # once per script run: later store faults in this run stay quiet
    # a callback: it runs before the next script run, whichever script Streamlit runs for the click
    if not _details():  # a learner is told who can; the rebuild is the server's, not one learner's
        st.info("A teacher or the administrator can rebuild it from this page.", icon=":material/build:")
        return
    st.button(REBUILD_BUTTON, type="primary", key="rebuild_run_store", on_click=_rebuild, args=(exc.root,))


def _rebuild(root: Path) -> None:
    try:
        report = rebuild(root)
    except (OSError, sqlite3.Error) as failure:
        st.session_state._store_rebuild_failed = (
            f"The rebuild failed ({failure}); the run folders are unchanged. Free some disk space if "
            "it is full, then try again."
        )
        return
    lines = [report.text()]
    lines += [f"Skipped folder {name}: {why}" for name, why in report.skipped]
    lines += [f"Note: {note}" for note in report.notes]
    st.session_state._store_rebuilt = "  \n".join(lines)
    job_manager.clear()  # the next run opens a fresh RunStore on the rebuilt file


@contextmanager
def machine_errors(offer_rebuild: bool = True):
    """Faults of the machine rather than the code (a full disk, a folder gone, a locked or damaged
    database) become one message instead of a traceback, and so does a bug (page_fault). A damaged run
    store gets the rebuild offer on the page (fragments, redrawn on a timer, only point to it)."""
    try:
        yield
    except (StoreDamaged, sqlite3.DatabaseError) as exc:
        if isinstance(exc, sqlite3.DatabaseError) and not is_damage(exc):
            machine_fault(exc)
            return
        damage = exc if isinstance(exc, StoreDamaged) else StoreDamaged(checkpoints_dir() / DB_NAME, str(exc))
        if getattr(_shell, "store_message", False):
            return  # this run already shows the message and the button
        if offer_rebuild:
            damaged_store(damage)
        else:
            st.warning("The run store is damaged: the page offers to rebuild it.", icon=":material/database:")
    except (OSError, sqlite3.Error) as exc:
        machine_fault(exc)
    except FragmentHandledException:
        raise  # a fragment's fault that Streamlit has already shown
    except Exception as exc:
        page_fault(exc)


def machine_fault(exc: BaseException) -> None:
    """A full disk, a folder gone, a locked database: one message, not a traceback."""
    log.error("A machine fault: %s", exc, exc_info=exc)
    st.error(
        f"The machine refused to read or write a file{f' ({exc})' if _details() else ''}. If the disk "
        "is full, free some space and try again; runs and checkpoints saved before this are unchanged.",
        icon=":material/hard_drive:",
    )


def page_fault(exc: BaseException) -> None:
    """A bug: one plain sentence; a teacher or the administrator also sees the exception and its
    traceback (st.exception shows them whatever client.showErrorDetails says); the log has them."""
    log.error("A page failed: %s", exc, exc_info=exc)
    st.error(
        "**Something went wrong on this page**: a fault in MNIST Lab, not in what you did. Reload "
        "the page to try again; if it happens again, tell your teacher what you were doing."
        + ("" if _details() else " The details are in the server's log."),
        icon=":material/bug_report:",
    )
    if _details():
        st.exception(exc)


def guarded(fn):
    """For fragments: their reruns on a timer do not pass through app.py's page_shell()."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with machine_errors(offer_rebuild=False), beside_a_run():
            return fn(*args, **kwargs)

    return run


@contextmanager
def beside_a_run():
    """Page code runs PyTorch on one thread while a run trains on this machine. The run keeps the
    cores busy, and a team of threads in the dashboard then waits for its members at every step:
    measured on 2 cores beside a run, one image through fast_cnn for its layer table and a 500-digit
    map took 5-50 s instead of a fraction of a second (see evaluate.one_thread)."""
    try:
        busy = job_manager().trains_here()
    except Exception:  # no store to ask: the page reports that itself
        busy = False
    with one_thread() if busy else nullcontext():
        yield
