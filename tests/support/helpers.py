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
