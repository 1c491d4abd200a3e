"""The Ray backend's settings and the cluster's state, without importing Ray.

The dashboard never becomes a Ray driver (a driver's process ends when its cluster does): it
checks the head node's port, asks a short-lived `python -m mnist_core.jobs.ray.probe` whether the
cluster takes this machine's token (and refuses clients without one), and asks a short-lived
`python -m mnist_core.jobs.ray.driver --status` for the nodes. Only the driver (the per-run bridge
process), the probe and the nodes import Ray.

Token authentication: the cluster runs with RAY_AUTH_MODE=token, and every process of ours that
talks to it reads the token from one file, $MNIST_LAB_RAY_TOKEN_FILE (default ~/.ray/auth_token,
where `ray get-auth-token --generate` writes it); `auth_environment()` is what they set before
importing Ray."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ...words import kept_epochs

ADDRESS_ENV = "MNIST_LAB_RAY_ADDRESS"  # HOST:PORT of the head node (its GCS port, 6379 by default)
CPUS_ENV = "MNIST_LAB_RAY_CPUS"  # CPUs each run asks for (default 1)
GPU_ENV = "MNIST_LAB_RAY_GPU"  # the fraction of a GPU each run asks for where the cluster has GPUs
DEFAULT_GPU_FRACTION = 0.25  # four learners' small runs share one GPU
TOKEN_FILE_ENV = "MNIST_LAB_RAY_TOKEN_FILE"  # the file holding the cluster's token
INSTALL_HINT = 'Install the Ray extra: pip install -e ".[ray]" (ray==2.60.0), on this machine and every node.'
_REACH: dict[str, tuple[float, str | None]] = {}  # address -> (checked at, problem), for 2 s
_AUTH: dict[
    tuple[str, str], tuple[float, str | None]
] = {}  # (address, token digest) -> (checked at, problem)
AUTH_OK_TTL_S, AUTH_REFUSED_TTL_S = 60.0, 10.0  # how long a probe's verdict holds


def configured_address() -> str:
    """$MNIST_LAB_RAY_ADDRESS, or "" where runs train on this machine."""
    return os.environ.get(ADDRESS_ENV, "").strip()


def parse_address(address: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port); ValueError with the expected form otherwise."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{ADDRESS_ENV}={address!r} is not HOST:PORT (for example 10.0.0.5:6379).")
    return host.strip("[]"), int(port)


def token_file() -> Path:
    """$MNIST_LAB_RAY_TOKEN_FILE, else ~/.ray/auth_token (where `ray get-auth-token --generate` writes it)."""
    raw = os.environ.get(TOKEN_FILE_ENV, "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".ray" / "auth_token"


def read_token() -> tuple[str, str | None]:
    """(the token, None), or ("", why there is none) in a sentence that says what to do."""
    path = token_file()
    fix = (
        f"The cluster takes only clients that hold its token: copy the head node's token file "
        f"(`ray get-auth-token` prints the token) to {path}, or point {TOKEN_FILE_ENV} at it (docs/ray.md)."
    )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return "", f"No Ray token: {path} does not exist. {fix}"
    except (OSError, UnicodeDecodeError) as exc:
        return (
            "",
            f"The Ray token file {path} cannot be read ({getattr(exc, 'strerror', None) or exc}). {fix}",
        )
    if not token:
        return "", f"The Ray token file {path} is empty. {fix}"
    return token, None


def auth_environment() -> dict[str, str]:
    """What a process that talks to the cluster sets before importing Ray: token mode, the token file."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file())}


def use_token() -> None:
    """Make this process present the token file's token, and only it (before importing Ray)."""
    os.environ.pop("RAY_AUTH_TOKEN", None)  # Ray would prefer it to the file
    os.environ.update(auth_environment())


def unreachable(address: str, timeout_s: float = 1.0) -> str | None:
    """Why the cluster cannot take runs now (a bad address, no answer, no token, a token it
    refuses, or a cluster open to clients without one), or None. Cached for 2 s, since schedule()
    asks on every page poll while runs wait; the token's verdict for longer (`refused`)."""
    now = time.time()
    cached = _REACH.get(address)
    if cached and now - cached[0] < 2.0:
        return cached[1]
    problem = port_closed(address, timeout_s) or refused(address)
    _REACH[address] = (now, problem)
    return problem


def port_closed(address: str, timeout_s: float = 1.0) -> str | None:
    """Why the head node's port cannot be reached (a bad address, Ray missing, no answer), or None."""
    try:
        host, port = parse_address(address)
        if importlib.util.find_spec("ray") is None:  # the bridge could not start
            raise ValueError(f"{ADDRESS_ENV} names a Ray cluster but Ray is not installed. {INSTALL_HINT}")
        with socket.create_connection((host, port), timeout=timeout_s):
            problem = None
    except ValueError as exc:
        problem = str(exc)
    except OSError as exc:
        problem = (
            f"The Ray cluster at {address} ({ADDRESS_ENV}) does not answer ({exc.strerror or exc}). "
            "Start its head node (`RAY_AUTH_MODE=token ray start --head --port=PORT`, docs/ray.md) "
            "or correct the address; runs "
            "wait in the queue until it answers."
        )
    return problem


def refused(address: str) -> str | None:
    """Why the cluster will not be used with this machine's token, or None: no token here, the
    cluster refuses it, or the cluster also takes clients without a token (anyone who reaches it
    could run code on its nodes or pose as one). Asked of a short-lived probe process; its verdict
    holds for AUTH_OK_TTL_S (AUTH_REFUSED_TTL_S when refused) while the token is unchanged."""
    token, problem = read_token()
    if problem:
        return problem
    key = (address, hashlib.sha256(token.encode()).hexdigest())
    now = time.time()
    cached = _AUTH.get(key)
    if cached and now - cached[0] < (AUTH_REFUSED_TTL_S if cached[1] else AUTH_OK_TTL_S):
        return cached[1]
    problem = _probe(address)
    _AUTH[key] = (now, problem)
    return problem


def _probe(address: str, timeout_s: float = 20.0) -> str | None:
    where = f"The Ray cluster at {address}"
    try:
        out = subprocess.run(
            [sys.executable, "-m", "mnist_core.jobs.ray.probe", address],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
        verdict = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    except subprocess.TimeoutExpired:
        return f"{where} did not answer a token check in {timeout_s:.0f} s; runs wait in the queue."
    except (IndexError, ValueError):
        detail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{where} could not be checked for its token: {detail}"
    if verdict.get("error"):
        return f"{where} could not be checked for its token: {verdict['error']}"
    if not verdict.get("accepted"):
        return (
            f"{where} refused this machine's Ray token ({token_file()}, {TOKEN_FILE_ENV}): "
            f"{verdict.get('detail') or 'the token is missing or incorrect'}. Copy the head node's "
            "token file there (docs/ray.md); runs wait in the queue until the cluster accepts it."
        )
    if verdict.get("open"):
        return (
            f"{where} takes clients without a token: anyone who reaches it could run code on its "
            "nodes or join as one. Restart its head node and every node with RAY_AUTH_MODE=token "
            "(docs/ray.md); runs wait in the queue until then."
        )
    return None


def head_lost(address: str, node: str | None, epochs_done: int) -> str:
    """The reason a run gets when the cluster's head node stops answering while it trains."""
    where = f" on {node.removeprefix('ray: ')}" if node else ""
    return (
        f"The Ray cluster's head node at {address} stopped answering while this run trained{where}: "
        f"the cluster was lost. {kept_epochs(epochs_done)} in the store; Extend continues it once the "
        "cluster is back."
    )


def cpus_per_run() -> float:
    try:
        return max(0.1, float(os.environ.get(CPUS_ENV, "1")))
    except ValueError:
        return 1.0


def gpu_fraction() -> float:
    try:
        return min(1.0, max(0.0, float(os.environ.get(GPU_ENV, DEFAULT_GPU_FRACTION))))
    except ValueError:
        return DEFAULT_GPU_FRACTION


def run_resources(cluster_gpus: float) -> dict:
    """What one run asks Ray for: CPUs, plus a fraction of a GPU where the cluster has GPUs (Ray
    then sets CUDA_VISIBLE_DEVICES for the task and the engine's device "auto" picks CUDA; on a
    CPU-only cluster, or with the fraction 0, the run trains on its node's CPUs)."""
    resources: dict = {"num_cpus": cpus_per_run()}
    if cluster_gpus > 0 and gpu_fraction() > 0:
        resources["num_gpus"] = gpu_fraction()
    return resources


def capacity_of(status: dict) -> int:
    """How many runs the cluster holds at once with run_resources: its CPUs / CPUs per run, and
    with GPUs also its GPUs / the fraction per run."""
    runs = int(status.get("cpus", 0) // cpus_per_run())
    asked = run_resources(status.get("gpus", 0))
    if "num_gpus" in asked:
        runs = min(runs, int(status["gpus"] / asked["num_gpus"] + 1e-9))
    return max(1, runs)


def cluster_status(address: str, timeout_s: float = 30.0) -> dict:
    """The backend for Home: {backend, address, error, nodes: [{name, address, cpus, gpus,
    alive}], cpus, gpus}. Never raises: a problem is one sentence in `error`."""
    base = dict(backend="ray", address=address, nodes=[], cpus=0, gpus=0)
    problem = unreachable(address)
    if problem:
        return {**base, "error": problem}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "mnist_core.jobs.ray.driver", "--status", address],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {
            **base,
            "error": f"The Ray cluster at {address} answered but listed no nodes in {timeout_s:.0f} s.",
        }
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        detail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {**base, "error": f"Could not read the Ray cluster at {address}: {detail}"}
    return {**base, **json.loads(lines[-1]), "error": None}


def describe_nodes(nodes: list[dict]) -> dict:
    """ray.nodes() rows -> the status fields (alive nodes only count towards CPUs and GPUs)."""
    rows = [
        dict(
            name=n.get("NodeManagerHostname") or n.get("NodeName"),
            address=f"{n.get('NodeManagerAddress')}",
            id=n["NodeID"][:8],
            cpus=n.get("Resources", {}).get("CPU", 0),
            gpus=n.get("Resources", {}).get("GPU", 0),
            head="node:__internal_head__" in n.get("Resources", {}),
            alive=bool(n.get("Alive")),
        )
        for n in nodes
    ]
    alive = [r for r in rows if r["alive"]]
    return dict(nodes=rows, cpus=sum(r["cpus"] for r in alive), gpus=sum(r["gpus"] for r in alive))
