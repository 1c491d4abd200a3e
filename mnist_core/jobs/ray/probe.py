"""Does a Ray cluster take this machine's token, and does it refuse clients without one?

    python -m mnist_core.jobs.ray.probe HOST:PORT     (run by settings.refused; prints one JSON line)

Two connections to the head node's GCS, without joining the cluster (a GcsClient, a few ms each):
first with token authentication off, which a cluster started with RAY_AUTH_MODE=token refuses,
then with the token file of settings.token_file(). The answer: {"open": bool, "accepted": bool,
"detail": str} ({"error": str} when the head did not answer like a Ray head node)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # Ray's C++ warnings stay off the output
os.environ.pop("RAY_AUTH_TOKEN", None)
os.environ["RAY_AUTH_MODE"] = "disabled"  # the first connection presents no token

import ray._raylet  # noqa: E402  (the probe runs in its own short-lived process)
from ray.exceptions import AuthenticationError  # noqa: E402

from . import settings  # noqa: E402

raylet: Any = ray._raylet  # compiled: no type stubs


def connects(address: str) -> tuple[bool, str]:
    """(True, "") when the GCS at `address` takes this process's credentials, (False, why) when it
    refuses them; other failures raise."""
    try:
        raylet.GcsClient(address=address)
    except AuthenticationError as exc:
        return False, str(exc.message).strip().rstrip(".")
    return True, ""


def check(address: str) -> dict:
    try:
        open_, _ = connects(address)
        settings.use_token()
        raylet.Config.initialize("")  # Ray's own way to switch a process to token mode
        raylet.AuthenticationTokenLoader.instance().reset_cache()
        accepted, detail = connects(address)
    except Exception as exc:  # the port answered, but not as a Ray head node
        return {"error": (str(exc).splitlines() or [type(exc).__name__])[0][:300]}
    return {"open": open_, "accepted": accepted, "detail": detail}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mnist_core.jobs.ray.probe HOST:PORT", file=sys.stderr)
        return 2
    print(json.dumps(check(args[0])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
