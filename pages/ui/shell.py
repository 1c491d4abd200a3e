"""The app's shell: the pages and their routing, st.navigation, and the shell every page runs in."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from .faults import _shell, _store_or_stop, beside_a_run, machine_errors
from .style import page_styles

_HERE = (
    Path(__file__).resolve().parent.parent
)  # pages/: page files by absolute path: any page may be the main script


# The app's pages, in sidebar order: (file, title, icon).
_PAGE_SPECS = [
    ("home", "Home", ":material/home:"),
    ("lessons", "Lessons", ":material/school:"),
    ("data", "Data", ":material/grid_on:"),
    ("models", "Models", ":material/account_tree:"),
    ("train", "Train", ":material/model_training:"),
    ("runs", "Runs", ":material/stacked_line_chart:"),
    ("wall", "Class wall", ":material/leaderboard:"),
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


_NAV_OPTION = "client.showSidebarNavigation"


_NAV_LOCK = threading.Lock()


def app_navigation():
    """st.navigation over the app's pages, in the sidebar. .streamlit/config.toml turns the
    sidebar's navigation off: otherwise a new session lists the files in pages/ (common, canvas,
    confusion: shared modules, not pages) until this call names the app's pages, for seconds on a
    fresh server. The option is on only for the length of this call, one session at a time (it
    is process-wide; st.navigation reads it to place its menu)."""
    with _NAV_LOCK:
        st.set_option(_NAV_OPTION, True)
        try:
            return st.navigation(app_pages())
        finally:
            st.set_option(_NAV_OPTION, False)


# Pages link to each other with these objects (st.page_link, st.switch_page), never with path
# strings; a link only reads the page's identity, so one object per page serves every session.
HOME, LESSONS, DATA, MODELS, TRAIN, RUNS, WALL, EVALUATE, INSIDE, DRAW = app_pages()


@contextmanager
def page_shell():
    """app.py runs the chosen page inside this: it marks the run as going through app.py, and
    turns machine faults into a message (see machine_errors)."""
    _shell.active, _shell.store_message = True, False
    page_styles()
    try:
        with machine_errors(), beside_a_run():
            yield
    finally:
        _shell.active, _shell.store_message = False, False


def ensure_app_shell() -> None:
    """Call first on every page: a page always runs inside app.py's navigation and sidebar.

    When a deep link (say /train) is a fresh server's very first request, Streamlit runs that
    page alone through its legacy pages/-folder mode, because app.py has a pages/ folder beside
    it. Calling st.navigation ends that mode for the whole server (its documented effect), and
    the rerun then goes through app.py. Public API only: st.navigation and st.rerun. The
    redirect is tried at most twice per session, so a page can never rerun forever.

    Inside the shell it also opens the run store: a damaged one is found before the page body runs,
    so every page shows the one message that offers the rebuild (see damaged_store) instead."""
    if getattr(_shell, "active", False):
        _store_or_stop()
        return
    tries = st.session_state.get("_shell_redirects", 0)
    if tries >= 2:
        return
    st.session_state._shell_redirects = tries + 1
    st.navigation(app_pages(), position="hidden")
    st.rerun()
