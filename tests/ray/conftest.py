"""Fixtures for the tests against a real Ray cluster (a head and a second node, 1 CPU each).

Run them inside their own network namespace, as the README's test command does:
    unshare -n bash -c 'ip link set lo up && .venv/bin/python -m pytest tests/ray'
Without Ray installed, or outside such a namespace, they skip; under CI=true they fail instead."""

import os

import pytest

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from support.ray_cluster import RayCluster, isolated_network, ray_installed

HEAD_PORT = 6399


def require_ray_cluster() -> None:
    """Ray installed and a network namespace of our own, or a skip (locally) / a failure (CI)."""
    problem = None
    if not ray_installed():
        problem = 'Ray is not installed: pip install -e ".[ray]"'
    elif not isolated_network():
        problem = (
            "the Ray tests run inside a network namespace of their own: "
            "unshare -n bash -c 'ip link set lo up && .venv/bin/python -m pytest tests/ray'"
        )
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Ray tests but {problem}")
        pytest.skip(problem)


@pytest.fixture(autouse=True)
def _ray_environment():
    require_ray_cluster()


@pytest.fixture(scope="session")
def ray_cluster():
    """A head node and a second node for the whole session; stopped at the end, even on failure."""
    require_ray_cluster()  # a session fixture is set up before the autouse check
    cluster = RayCluster(port=HEAD_PORT, nodes=2)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def ray_jobs(ray_cluster, monkeypatch):
    """The job API as the dashboard builds it, with $MNIST_LAB_RAY_ADDRESS naming the cluster and
    this test's own run store; every node is back and no run is left active afterwards."""
    if ray_cluster.broken:  # the head-loss test ended the cluster: a new one for whoever follows
        ray_cluster.stop()
        ray_cluster.start()
        ray_cluster.broken = False
    ray_cluster.make_whole()
    monkeypatch.setenv("MNIST_LAB_RAY_ADDRESS", ray_cluster.address)
    jobs = JobManager(RunStore())
    yield jobs
    for run in jobs.store.list(("running", "queued")):
        jobs.stop(run.id, grace_s=5, actor=ADMIN)
    if not ray_cluster.broken:
        ray_cluster.make_whole()  # a test that killed a node leaves the next one a whole cluster
