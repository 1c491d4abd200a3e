"""The damaged-database fault scenario (tests/support/store_faults.py), as the report runs it."""

import os
from pathlib import Path

from support.store_faults import fault_damaged_db


def test_damaged_database_is_detected_and_rebuilt_without_losing_a_record():
    result = fault_damaged_db(Path(os.environ["MNIST_LAB_CHECKPOINTS"]))  # this test's folder (conftest)
    assert result.records_before > 0
    assert result.lost == [], result.lost
    assert result.problems == [], result.problems
    assert result.survived, result.detail
    for kind in ("truncated", "zeroed", "garbage"):
        assert f"{kind}: detected, rebuilt 2 runs, 4 epochs, 120 batches" in result.detail
