"""The damaged- and deleted-database fault scenarios (tests/support/store_faults.py), as the report
runs them."""

import os
from pathlib import Path

from support.store_faults import fault_damaged_db, fault_deleted_db


def test_damaged_database_is_detected_and_rebuilt_without_losing_a_record():
    result = fault_damaged_db(Path(os.environ["MNIST_LAB_CHECKPOINTS"]))  # this test's folder (conftest)
    assert result.records_before > 0
    assert result.lost == [], result.lost
    assert result.problems == [], result.problems
    assert result.survived, result.detail
    for kind in ("truncated", "zeroed", "garbage"):
        assert f"{kind}: detected, rebuilt 2 runs, 4 epochs, 120 batches" in result.detail


def test_a_database_deleted_while_a_run_trains_stops_the_worker_and_is_rebuilt():
    result = fault_deleted_db(Path(os.environ["MNIST_LAB_CHECKPOINTS"]))
    assert result.lost == [], result.lost
    assert result.problems == [], result.problems
    assert result.survived, result.detail
    told = "dashboard told, worker exited and logged the store's message, runs.db not recreated"
    assert told in result.detail
