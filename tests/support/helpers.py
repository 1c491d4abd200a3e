"""Small helpers shared by the tests."""

import time


def wait_until(predicate, timeout_s: float = 60, poll_s: float = 0.05):
    """Poll until predicate() is truthy and return its value; fail after timeout_s."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"condition not reached within {timeout_s} s")


def chart_numbers(at) -> list:
    """The tables of the charts an AppTest page shows: what each chart's "The numbers" expander
    holds (pages/ui/charts.py), as DataFrames of the text shown, in page order."""
    from pages.ui.charts import NUMBERS

    return [e.table[0].value for e in at.expander if e.label == NUMBERS and len(e.table)]


def as_int(cell: str) -> int:
    """A count as a table shows it ("6,742") as a number."""
    return int(cell.replace(",", ""))
