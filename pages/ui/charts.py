"""Every chart with its text equivalent: the chart, a caption with its finding and, one click away,
the numbers it shows as a table (st.table is HTML that a screen reader reads; st.dataframe draws on
a canvas). The words and the numbers come from the figure itself (mnist_core/figures/text.py)."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from mnist_core.figures.text import figure_finding, figure_table

NUMBERS = "The numbers"  # the expander's label, which the tests look for
_MARKDOWN = re.compile(r"([\\`*_\[\]<>#$~|])")  # what Markdown (and Streamlit's $...$) would read as markup


def as_text(text: str) -> str:
    """Words read from a figure (its series' names, its axes' titles), shown as typed in a caption."""
    return _MARKDOWN.sub(r"\\\1", text)


def chart_text(fig, caption: str | None = None, container=None) -> None:
    """The caption with the finding (`caption`, Markdown, or the figure's own, read from its data)
    and the expander with the figure's numbers, in `container` (the page by default). The same
    elements on every call, so a chart redrawn in place keeps its text in place."""
    where = container if container is not None else st
    columns, rows, note = figure_table(fig)
    where.caption(caption or as_text(figure_finding(fig)))
    if not rows:
        return
    title = getattr(fig.layout.title, "text", None)
    with where.expander(NUMBERS, icon=":material/table:"):
        if note:
            st.caption(note)
        st.table(
            pd.DataFrame(rows, columns=columns),
            hide_index=True,
            alt=f"The numbers of the chart{': ' + title if title else ''}",
        )


def show_chart(
    fig, *, key=None, finding: str | None = None, container=None, text_container=None, **plotly_kwargs
):
    """`st.plotly_chart(fig, key=key, **plotly_kwargs)` in `container` (the page by default), then
    its text equivalent under it (chart_text: `finding`, Markdown, where the caller knows better
    than the figure's own reading), or in `text_container` where `container` holds one element only
    (an st.empty redrawn in place). The finding is the chart's accessible name too. Returns what
    plotly_chart returns (the selection event of a chart with on_select)."""
    where = container if container is not None else st
    plain = finding.replace("**", "") if finding else figure_finding(fig)
    plotly_kwargs.setdefault("alt", plain)
    event = where.plotly_chart(fig, key=key, **plotly_kwargs)
    chart_text(fig, finding or as_text(plain), text_container if text_container is not None else where)
    return event
