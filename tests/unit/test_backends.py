"""The backend choice and its clear refusals, without a cluster: local by default, Ray when
$MNIST_LAB_RAY_ADDRESS names one; an address that does not answer is one message, never a traceback."""

import socket

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.executor import (
    BackendUnavailable,
    LocalExecutor,
    RayExecutor,
    backend_status,
    from_environment,
    schedule,
)
from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.ray import settings as ray_backend
from mnist_core.jobs.store import RunStore
from support import ROOT


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def nowhere(monkeypatch):
    address = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv(ray_backend.ADDRESS_ENV, address)
    return address


def test_the_environment_picks_the_backend(monkeypatch):
    monkeypatch.delenv(ray_backend.ADDRESS_ENV, raising=False)
    assert isinstance(from_environment(), LocalExecutor) and from_environment().name == "local"
    monkeypatch.setenv(ray_backend.ADDRESS_ENV, "10.1.2.3:6379")
    backend = from_environment()
    assert isinstance(backend, RayExecutor) and backend.address == "10.1.2.3:6379"
    assert backend.environment()[ray_backend.ADDRESS_ENV] == "10.1.2.3:6379"  # the bridge's hand-off
    assert ray_backend.ADDRESS_ENV not in LocalExecutor().environment()


def test_an_unreachable_cluster_refuses_submits_with_one_message(nowhere, tmp_path):
    jobs = JobManager(RunStore(tmp_path / "store"))
    assert jobs.executor.name == "ray"
    with pytest.raises(BackendUnavailable, match="does not answer") as refused:
        jobs.submit(dict(model="perceptron", epochs=1, limit=500), actor=ADMIN)
    assert nowhere in str(refused.value) and "MNIST_LAB_RAY_ADDRESS" in str(refused.value)
    assert jobs.store.list() == []  # nothing queued
    # a run queued before the cluster went away keeps its place instead of failing
    queued = jobs.store.create(dict(model="perceptron", epochs=1, limit=500))
    assert schedule(jobs.store, jobs.executor, 2) == []
    assert jobs.store.get(queued.id).status == "queued"


@pytest.mark.parametrize("bad", ["nonsense", "host:", ":6379", "host:99999"])
def test_a_malformed_address_is_named(bad, monkeypatch):
    monkeypatch.setenv(ray_backend.ADDRESS_ENV, bad)
    status = backend_status()
    assert status["backend"] == "ray" and "is not HOST:PORT" in status["error"], status


def test_home_shows_the_unreachable_cluster_instead_of_a_traceback(nowhere):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any(nowhere in e.value and "does not answer" in e.value for e in at.error)


def test_home_shows_the_local_backend(monkeypatch):
    monkeypatch.delenv(ray_backend.ADDRESS_ENV, raising=False)
    status = backend_status()
    assert status["backend"] == "local" and status["error"] is None and len(status["nodes"]) == 1
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert any("This machine:" in i.value and "MNIST_LAB_RAY_ADDRESS" in i.value for i in at.info)


def test_each_run_asks_for_cpus_and_a_gpu_fraction_where_the_cluster_has_gpus(monkeypatch):
    monkeypatch.delenv(ray_backend.CPUS_ENV, raising=False)
    monkeypatch.delenv(ray_backend.GPU_ENV, raising=False)
    assert ray_backend.run_resources(cluster_gpus=0) == {"num_cpus": 1.0}
    assert ray_backend.run_resources(cluster_gpus=2) == {"num_cpus": 1.0, "num_gpus": 0.25}
    assert ray_backend.capacity_of(dict(cpus=2, gpus=0)) == 2
    assert ray_backend.capacity_of(dict(cpus=16, gpus=1)) == 4  # four runs share the GPU
    monkeypatch.setenv(ray_backend.CPUS_ENV, "2")
    monkeypatch.setenv(ray_backend.GPU_ENV, "0.5")
    assert ray_backend.run_resources(cluster_gpus=1) == {"num_cpus": 2.0, "num_gpus": 0.5}
    assert ray_backend.capacity_of(dict(cpus=16, gpus=4)) == 8
    assert ray_backend.capacity_of(dict(cpus=6, gpus=4)) == 3  # CPUs bound it
    monkeypatch.setenv(ray_backend.GPU_ENV, "0")
    assert ray_backend.run_resources(cluster_gpus=1) == {"num_cpus": 2.0}  # GPUs left alone


def test_a_local_run_records_this_machine_as_its_node(jobs):
    run = jobs.wait(jobs.submit(dict(model="perceptron", epochs=1, limit=500), actor=ADMIN).id, timeout_s=120)
    assert run.status == "completed" and run.node == f"this machine ({socket.gethostname()})"
