"""The sidebar's list of active runs, shared by every page."""

from __future__ import annotations

import streamlit as st

from mnist_core.jobs.classroom import display_name
from mnist_core.words import plain_markdown

from .faults import guarded
from .live import SIDEBAR_IDLE_EVERY_S, SIDEBAR_LIVE_EVERY_S, timed
from .resources import job_manager, progress_text
from .shell import TRAIN


@guarded
def _active_runs_list(watched: str | None = None, active: list | None = None) -> None:
    """Running and queued runs with their progress; `watched` (drawn once, no timer): the run the
    page shows live, named without a progress bar that would stand still. `active`: the list just
    read, when drawn once (a fragment reads it on every rerun: its arguments are those of its
    first call)."""
    if active is None:
        active = [r for r in job_manager().list() if r.active]
    st.caption("ACTIVE RUNS")
    if not active:
        st.caption("None. Start one on the Train page.")
    for run in sorted(active, key=lambda r: (r.status != "running", r.queue_seq)):
        who = f" · {plain_markdown(display_name(run))}" if run.owner_name else ""  # in a signed-in class
        if run.id == watched:
            st.caption(f"**{run.model}** `{run.id[-6:]}`{who} · {run.status}, shown live on this page")
            continue
        done, text = progress_text(run)
        st.progress(done, text=f"**{run.model}** `{run.id[-6:]}`{who} · {text}")


_sidebar_live = timed(_active_runs_list, SIDEBAR_LIVE_EVERY_S)


_sidebar_idle = timed(_active_runs_list, SIDEBAR_IDLE_EVERY_S)


@guarded
def sidebar_runs(watched: str | None = None) -> None:
    """The sidebar's active runs, on every page; `watched`: the run this page shows live, if any."""
    active = [r for r in job_manager().list() if r.active]
    if active and all(r.id == watched for r in active):
        _active_runs_list(watched, active)
    elif active:
        _sidebar_live()
    else:
        _sidebar_idle()


def watched_run(page) -> str | None:
    """The run the chosen page shows live: the Train page's run (app.py asks before the page runs)."""
    return st.session_state.get("train_run_id") if page.url_path == TRAIN.url_path else None
