"""A trusted cluster, on the real one: the test cluster takes only clients with its token (an
outsider can neither join as a node nor connect as a driver), the dashboard says so in a sentence
when its own token is missing or wrong and refuses a cluster open to anyone, and a node that sends
crafted records (a Python object that would run code when unpickled, a task error that would, a
checkpoint of the wrong size) fails its run with the reason while nothing of it is written."""

import json
import os
import subprocess
import sys
import time

import pytest

from mnist_core.jobs.executor import BackendUnavailable, RayExecutor, backend_status, schedule
from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.ray import settings as ray_backend
from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from support.helpers import wait_until
from support.ray_cluster import RAY

CONFIG = dict(model="perceptron", epochs=1, limit=300, batch_size=64)


def forget_verdicts() -> None:
    """The next availability check asks the cluster afresh (the caches hold for seconds)."""
    ray_backend._REACH.clear()
    ray_backend._AUTH.clear()


def outsider_env(tmp_path, **extra) -> dict:
    """An environment with no token anywhere Ray looks (no ~/.ray/auth_token, no variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "MNIST_LAB_RAY"))}
    return {**env, "HOME": str(tmp_path / "outsider"), "RAY_USAGE_STATS_ENABLED": "0", **extra}


def test_the_cluster_refuses_clients_without_its_token(ray_cluster, ray_jobs, tmp_path, monkeypatch):
    bad = tmp_path / "wrong_token"
    bad.write_text("0" * 64)
    # an outsider: joining as a node is refused, and so is a driver's first call to the head
    join = subprocess.run(
        [RAY, "start", f"--address={ray_cluster.address}", "--num-cpus=1"],
        env=outsider_env(tmp_path, RAY_gcs_server_port_wait_time_s="1"),  # one try, not 20 s of them
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert join.returncode != 0 and "Authentication token is missing or incorrect" in join.stderr
    connect = f"import ray._raylet; ray._raylet.GcsClient(address={ray_cluster.address!r}); print('IN')"
    for env in (
        outsider_env(tmp_path),
        outsider_env(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(bad)),
    ):
        out = subprocess.run(
            [sys.executable, "-c", connect], env=env, capture_output=True, text=True, timeout=60
        )
        assert "IN" not in out.stdout and "AuthenticationError" in out.stderr, out.stderr[-500:]
    assert len(ray_cluster.alive_nodes()) == 2  # nobody joined

    # the dashboard's side: with the token, runs go; without it, or with a wrong one, a sentence
    jobs, executor = ray_jobs, RayExecutor(ray_cluster.address)
    forget_verdicts()
    assert executor.unavailable() is None
    queued = jobs.store.create(TrainConfig.from_dict(CONFIG).to_dict())
    cases = [
        (tmp_path / "missing", f"No Ray token: {tmp_path / 'missing'} does not exist"),
        (bad, f"refused this machine's Ray token ({bad}, MNIST_LAB_RAY_TOKEN_FILE)"),
    ]
    for token_file, needle in cases:
        monkeypatch.setenv(ray_backend.TOKEN_FILE_ENV, str(token_file))
        forget_verdicts()
        assert needle in (executor.unavailable() or ""), executor.unavailable()
        assert needle in backend_status()["error"] and "Traceback" not in backend_status()["error"]
        with pytest.raises(BackendUnavailable, match="docs/ray.md") as refused:
            jobs.submit(CONFIG, actor=ADMIN)
        assert needle in str(refused.value)
        assert schedule(jobs.store, executor, 2) == [] and jobs.store.get(queued.id).status == "queued"
    monkeypatch.setenv(ray_backend.TOKEN_FILE_ENV, str(ray_cluster.token_file))
    forget_verdicts()
    jobs.store.cancel_queued(queued.id, "test")


def test_a_cluster_open_to_clients_without_a_token_is_refused(ray_cluster, tmp_path):
    port = 6397
    head = subprocess.Popen(
        [RAY, "start", "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false"]
        + ["--object-store-memory=80000000", "--disable-usage-stats", "--block"],
        env=outsider_env(tmp_path, RAY_AUTH_MODE="disabled"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        address = f"127.0.0.1:{port}"

        def problem() -> str:
            forget_verdicts()
            return ray_backend.unreachable(address) or ""

        # once its head answers it is refused, though it takes this machine's token as well
        wait_until(lambda: "takes clients" in problem(), timeout_s=60, poll_s=0.5)
        said = problem()
        assert "takes clients without a token" in said and "RAY_AUTH_MODE=token" in said, said
    finally:
        head.terminate()  # --block: its own processes end with it; the test cluster stays
        head.wait(timeout=60)
    forget_verdicts()


CRAFTED_BRIDGE = """
import json, sys
from mnist_core.jobs.ray import driver  # first: it sets up the token before Ray is imported
import ray

root, address, marker, runs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])


def crafted(config, files, resume=None, model=None, first_step=0):
    # what a hostile node could send; it runs on the node, shipped by value from this script
    import pathlib, torch
    from mnist_core.jobs.ray import wire
    from mnist_core.learn.checkpoints import describe, describe_resume
    from mnist_core.learn.config import TrainConfig
    from mnist_core.learn.models import build_model

    class Evil(Exception):
        def __reduce__(self):  # unpickled on the dashboard machine, this would create the marker
            return (pathlib.Path.touch, (pathlib.Path(marker),))

    yield wire.encode(dict(kind="node", node_id="c" * 56, address="127.0.0.1", host="crafted", gpus=""))
    attack = config["seed"]
    if attack == 1:
        yield Evil()
    elif attack == 2:
        raise Evil()
    else:
        cfg = TrainConfig.from_dict(config)
        net = build_model(cfg.model, cfg.model_args)
        checkpoint = describe(net, cfg)
        checkpoint["state_dict"]["net.1.bias"] = torch.zeros(11)  # one parameter more
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        record = dict(epoch=1, train_loss=0.5, images_per_s=100.0)
        yield wire.encode(
            dict(kind="epoch", record=record, best=True),
            resume=_saved(describe_resume(opt, None, 1, 5)),
            checkpoint=_saved(checkpoint),
        )
    import time
    time.sleep(30)  # the driver must refuse on what it got, not wait for an end


def _saved(obj):
    import io, torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


driver.Bridge.node_task = staticmethod(crafted)
for run_id in runs:
    driver.main(["--root", root, "--address", address, run_id])
    ray.shutdown()
"""


def test_crafted_node_records_fail_the_run_and_nothing_is_written(ray_cluster, ray_jobs, tmp_path):
    store: RunStore = ray_jobs.store
    marker = tmp_path / "code-ran-on-the-dashboard-machine"
    runs = [store.create(TrainConfig.from_dict({**CONFIG, "seed": seed}).to_dict()).id for seed in (1, 2, 3)]
    assert sorted(store.claim_queued(3)) == sorted(
        runs
    )  # running, as schedule() would mark them; this bridge drives them
    t0 = time.time()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CRAFTED_BRIDGE,
            str(store.root),
            ray_cluster.address,
            str(marker),
            json.dumps(runs),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(f"three crafted runs refused in {time.time() - t0:.1f} s")
    reasons = [store.get(r).reason or "" for r in runs]
    assert [store.get(r).status for r in runs] == ["failed"] * 3, (reasons, out.stderr[-3000:])
    assert not marker.exists()  # neither the object nor the task's error was unpickled here
    assert "sent a PYTHON object instead of a bytes record (not read" in reasons[0], reasons[0]
    assert "its task's error (TASK_EXECUTION_EXCEPTION) instead of a bytes record" in reasons[1], reasons[1]
    assert "7,851 numbers where the run's model has 7,850" in reasons[2], reasons[2]
    for reason in reasons:
        assert reason.startswith("The cluster node 127.0.0.1 (crafted, node cccccccc) sent ")
        assert "nothing of it was written. No epoch had finished" in reason
    for run_id in runs:  # no epoch, no batch, no file: nothing the node sent reached the store
        assert store.epochs(run_id) == [] and store.batch_losses(run_id) == []
        assert store.checkpoints(run_id) == []
        files = [p.name for p in store.layout.run_dir(run_id).glob("*") if p.suffix == ".pt"]
        assert files == [], files
