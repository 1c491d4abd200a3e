"""Hand-offs between pages in the address bar: a copied link reproduces the view in another browser.

The address carries what a view is *of*: `run` (a run id; none means the shipped default model) and
`cell` (a confusion-matrix cell, `true-pred`). A page that opens another calls `link_to`; a page
reads what it was opened on with `wanted_run` and `wanted_cell`, and keeps the address up to date
with `show_run` and `show_cell` as the learner picks. A bad or stale value gets one clear message
and the default, never a traceback. What a link may show follows the classroom's visibility rule
(docs/classroom.md): a classmate's run opens read-only, as the Runs page and the Class wall show it;
drawings, lesson predictions and e-mail addresses never travel in an address.

Session-state keys that hold what cannot be an address (a drawn or picked digit's pixels) stay with
the pages that set them; `selected_run` is still read when the address names no run (a hand-off
from a page that has not moved to links yet)."""

from __future__ import annotations

from typing import NoReturn

import streamlit as st

from mnist_core.jobs.store import RunError, check_run_id

RUN, CELL = "run", "cell"


def link_to(page, *, run: str | None = None, cell: tuple[int, int] | None = None) -> NoReturn:
    """Open `page` on `run` (and a confusion cell): the target's address says so."""
    params = {}
    if run:
        params[RUN] = run
    if cell:
        params[CELL] = f"{int(cell[0])}-{int(cell[1])}"
    st.session_state.selected_run = run  # for a target that still reads the hand-off key
    st.switch_page(page, query_params=params)


def wanted_run() -> str | None:
    """The run the address names (checked: a malformed id gets a message and None), else the
    run handed over in the session, else None (the default model)."""
    value = st.query_params.get(RUN)
    if value is None:
        return st.session_state.get("selected_run")
    try:
        return check_run_id(value)
    except RunError:
        st.warning(f"The address names no valid run ({value[:80]!r}); showing the default model.")
        del st.query_params[RUN]
        return None


def show_run(run_id: str | None) -> None:
    """Keep the address on the run shown (none: the default model)."""
    if run_id:
        if st.query_params.get(RUN) != run_id:
            st.query_params[RUN] = run_id
    elif RUN in st.query_params:
        del st.query_params[RUN]


def parse_cell(value: str) -> tuple[int, int] | None:
    """`"4-9"` -> (4, 9); None for anything that is not two digits 0-9."""
    parts = value.split("-")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 1 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def wanted_cell() -> tuple[int, int] | None:
    """The confusion cell the address names (a bad one: a message and none), else the session's."""
    value = st.query_params.get(CELL)
    if value is None:
        return st.session_state.get("cm_cell")
    cell = parse_cell(value)
    if cell is None:
        st.warning(f"The address names no cell of the matrix ({value[:20]!r}); pick one below.")
        del st.query_params[CELL]
    return cell


def show_cell(cell: tuple[int, int] | None) -> None:
    st.session_state.cm_cell = cell
    if cell:
        st.query_params[CELL] = f"{int(cell[0])}-{int(cell[1])}"
    elif CELL in st.query_params:
        del st.query_params[CELL]
