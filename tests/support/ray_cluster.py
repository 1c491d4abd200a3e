"""A real Ray cluster on this machine for tests and benchmarks: a head node and more nodes, each a
`ray start` with its own raylet (1 CPU, 100 MB object store), inside this network namespace.
Token authentication is on (RAY_AUTH_MODE=token, a fresh token in a 0600 file), as docs/ray.md
asks of a real cluster; `start()` points this process's $MNIST_LAB_RAY_TOKEN_FILE at the token, so
the job API, the status reads and the drivers it starts present it.

Run it inside its own network namespace (`unshare -n`, then `ip link set lo up`): Ray otherwise
binds its nodes to the machine's external address, and the test traffic must stay on loopback.
The nodes get no MNIST and no run store: $MNIST_DATA_DIR points at an empty folder for them."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnist_core.jobs.ray.settings import TOKEN_FILE_ENV
from support.helpers import wait_until

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 100 * 1024 * 1024


def ray_installed() -> bool:
    try:
        import ray  # noqa: F401

        return Path(RAY).exists()
    except ImportError:
        return False


def isolated_network() -> bool:
    """True inside a network namespace of our own: loopback is the only interface."""
    try:
        lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    except OSError:
        return False
    names = {line.split(":")[0].strip() for line in lines}
    return names == {"lo"}


def _pids(*needles: str) -> list[int]:
    """Processes whose command line contains every needle."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles):
            found.append(int(proc.name))
    return found


class RayCluster:
    """`start()` a head and `nodes - 1` more nodes; `stop()` ends every Ray process (ray stop --force)."""

    def __init__(self, port: int = 6399, nodes: int = 2, cpus: int = 1):
        self.port, self.node_count, self.cpus = port, nodes, cpus
        self.broken = False  # set by a test that ended the cluster on purpose (its head node lost)
        self.empty = Path(tempfile.mkdtemp(prefix="mnist-lab-ray-node-"))  # what nodes see as data
        self.token_file = self.empty / "auth_token"
        self.token_file.touch(mode=0o600)
        self.token_file.write_text(secrets.token_hex(32))
        self.env = {
            **os.environ,
            "MNIST_DATA_DIR": str(self.empty / "no-mnist-here"),
            "MNIST_LAB_CHECKPOINTS": str(self.empty / "no-store-here"),
            "MNIST_LAB_NODE_DATA": str(self.empty / "node-data"),
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token",  # the head and every node take only clients with the token
            "RAY_AUTH_TOKEN_PATH": str(self.token_file),
        }
        self.env.pop("MNIST_LAB_RAY_ADDRESS", None)
        self.env.pop("RAY_AUTH_TOKEN", None)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ray(self, *args: str, timeout: float = 120) -> None:
        out = subprocess.run([RAY, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args)} failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")

    def _common(self) -> list[str]:
        return [
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            "--disable-usage-stats",
        ]

    def start(self) -> RayCluster:
        os.environ[TOKEN_FILE_ENV] = str(self.token_file)  # this process talks to it with its token
        self._ray("start", "--head", f"--port={self.port}", "--include-dashboard=false", *self._common())
        for _ in range(self.node_count - 1):
            self.add_node()
        return self

    def add_node(self) -> None:
        before = len(self.alive_nodes())
        self._ray("start", f"--address={self.address}", *self._common())
        wait_until(lambda: len(self.alive_nodes()) > before, timeout_s=60, poll_s=0.5)

    def alive_nodes(self) -> list[dict]:
        from mnist_core.jobs.ray.settings import cluster_status

        for _ in range(3):  # a status read can time out on a loaded machine: ask again
            status = cluster_status(self.address)
            if not status["error"]:
                return [n for n in status["nodes"] if n["alive"]]
        raise RuntimeError(f"the test cluster gave no node list: {status['error']}")

    def raylet_pid(self, node_id_prefix: str) -> int:
        pids = _pids("raylet", f"--node_id={node_id_prefix}")
        if not pids:  # older Ray spells it --node-id
            pids = _pids("raylet", f"--node-id={node_id_prefix}")
        assert len(pids) == 1, f"raylet of node {node_id_prefix}: {pids}"
        return pids[0]

    def kill_node(self, node_id_prefix: str) -> None:
        """SIGKILL one node's raylet: the node and the runs on it are gone. Returns once the
        cluster lists the node as dead, so whoever counts nodes next counts what is left."""
        os.kill(self.raylet_pid(node_id_prefix), signal.SIGKILL)
        wait_until(
            lambda: all(not n["id"].startswith(node_id_prefix) for n in self.alive_nodes()),
            timeout_s=90,
            poll_s=0.5,
        )

    def make_whole(self) -> None:
        """Add nodes until `node_count` are alive (a test before may have killed one)."""
        while len(self.alive_nodes()) < self.node_count:
            self.add_node()

    def kill_head(self) -> None:
        """SIGKILL the head node's GCS and raylet: the cluster is lost."""
        head = next(n for n in self.alive_nodes() if n["head"])
        gcs = _pids("gcs_server", f"--gcs_server_port={self.port}")
        for pid in [*gcs, self.raylet_pid(head["id"])]:
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        subprocess.run([RAY, "stop", "--force"], env=self.env, capture_output=True, timeout=120)
        deadline = time.time() + 30
        while time.time() < deadline and (_pids("raylet") or _pids("gcs_server")):
            time.sleep(0.2)
