"""The Evaluate page's confusion matrix (not a page): a small Streamlit v2 component, an HTML table
whose cells are clickable. No chart library: the page's first visit does not wait for one to load.

The cells come from mnist_core.figures.evaluation.confusion_cells (text and colours).
Stable hooks: each cell is
`td[data-true][data-pred]` inside `.st-key-<key>` (in the page's own DOM: the component does not
isolate its styles, its CSS classes are its own), the picked cell has the class `picked`.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

HTML = '<div class="cm-root"></div>'

CSS = """
.cm-root { font: 13px/1.2 "Inter", "Segoe UI", sans-serif; color: var(--st-text-color, #31333f); }
.cm-axis { color: inherit; opacity: 0.82; font-size: 12px; }
table.cm { border-collapse: separate; border-spacing: 2px; }
table.cm th { font-weight: 400; color: inherit; opacity: 0.82; padding: 0 4px; }
table.cm td {
  width: 40px; height: 36px; text-align: center; cursor: pointer; border-radius: 3px;
  font-variant-numeric: tabular-nums; outline-offset: -2px;
}
table.cm td:hover { outline: 2px solid #f59e0b; }
table.cm td.picked { outline: 3px solid #f59e0b; }
table.cm td:focus-visible { outline: 3px solid currentColor; box-shadow: 0 0 0 5px #f59e0b; }
"""

JS = """
export default function ({ data, parentElement, setTriggerValue }) {
  const root = parentElement.querySelector(".cm-root");
  root.__pick = setTriggerValue;  // the latest one: the listener below is added once
  if (!root.__wired) {
    root.__wired = true;
    const pick = (td) => root.__pick("cell", [Number(td.dataset.true), Number(td.dataset.pred)]);
    root.addEventListener("click", (e) => {
      const td = e.target.closest("td[data-true]");
      if (td) pick(td);
    });
    // The keyboard: one tab stop for the whole grid; arrows, Home and End move, Enter or Space picks.
    root.addEventListener("keydown", (e) => {
      const td = e.target.closest("td[data-true]");
      if (!td) return;
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(td); return; }
      const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      const size = root.querySelectorAll("tbody tr").length;
      let [i, j] = [Number(td.dataset.true), Number(td.dataset.pred)];
      if (moves[e.key]) { i += moves[e.key][0]; j += moves[e.key][1]; }
      else if (e.key === "Home") { j = 0; } else if (e.key === "End") { j = size - 1; }
      else return;
      e.preventDefault();
      const next = root.querySelector(`td[data-true="${i}"][data-pred="${j}"]`);
      if (next) { td.tabIndex = -1; next.tabIndex = 0; next.focus(); root.__focus = [i, j]; }
    });
  }
  const n = data.text.length, picked = data.picked || [-1, -1];
  const el = (tag, text, attrs) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };
  const table = el("table", undefined, {
    class: "cm", role: "grid",
    "aria-label": "confusion matrix: rows are the true digit, columns the prediction; " +
      "arrow keys move, Enter shows the digits of a cell",
  });
  const hadFocus = root.contains(document.activeElement);
  const at = root.__focus || (picked[0] >= 0 ? picked : [0, 0]);
  const head = table.createTHead().insertRow();
  head.appendChild(el("th", "true \\u2193 / predicted \\u2192", { class: "cm-axis" }));
  for (let j = 0; j < n; j++) head.appendChild(el("th", String(j), { scope: "col" }));
  const body = table.createTBody();
  for (let i = 0; i < n; i++) {
    const tr = body.insertRow();
    tr.appendChild(el("th", String(i), { scope: "row" }));
    for (let j = 0; j < n; j++) {
      const td = el("td", data.text[i][j], {
        "data-true": i, "data-pred": j, title: data.hover[i][j], role: "gridcell",
        "aria-label": data.hover[i][j], tabindex: i === at[0] && j === at[1] ? 0 : -1,
        style: `background:${data.bg[i][j]};color:${data.fg[i][j]}`,
      });
      if (i === picked[0] && j === picked[1]) {
        td.classList.add("picked");
        td.setAttribute("aria-selected", "true");
      }
      tr.appendChild(td);
    }
  }
  root.replaceChildren(table);
  if (hadFocus) table.querySelector('td[tabindex="0"]').focus();  // a redraw keeps the keyboard's place
}
"""

_component = st.components.v2.component(
    "mnist_lab_confusion", html=HTML, css=CSS, js=JS, isolate_styles=False
)


def confusion_table(
    cells: dict, key: str, picked: tuple[int, int] | None = None, on_pick: Callable | None = None
) -> None:
    """Draw the matrix (cells: evaluation.confusion_cells), `picked` outlined; a click calls
    on_pick((true, predicted)) before the rerun it causes, so that run already shows the pick."""
    _component(
        key=key,
        data=dict(cells, picked=list(picked) if picked else None),
        on_cell_change=lambda: _clicked(key, on_pick),
        width="content",
        height="content",
    )


def _clicked(key: str, on_pick: Callable | None) -> None:
    state = st.session_state.get(key)
    cell = state.get("cell") if hasattr(state, "get") else getattr(state, "cell", None)
    if on_pick and isinstance(cell, (list, tuple)) and len(cell) == 2:
        on_pick((int(cell[0]), int(cell[1])))
