"""A real small filesystem for fault tests: a tmpfs mounted for the test, and a way to fill it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest


def require_mount() -> None:
    """Mounting needs root (CI runs as root): there it is a failure, never a skip."""
    if os.geteuid() == 0 and shutil.which("mount"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI must run the real full-disk tests, which mount a tmpfs: run them as root")
    pytest.skip("mounting a tmpfs needs root")


@contextmanager
def tmpfs(size_mb: int):
    """A fresh tmpfs of `size_mb` MB, unmounted (lazily, if a process still holds a file) afterwards."""
    where = Path(tempfile.mkdtemp(prefix="mnist-lab-tmpfs-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(where)], check=True
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Write a filler file until only `leave_bytes` are free on `folder`'s filesystem (0: full)."""
    filler = folder / "filler.bin"
    chunk = b"\xff" * (256 * 1024)
    with open(filler, "ab") as fh:
        while (free := shutil.disk_usage(folder).free) > leave_bytes:
            try:
                fh.write(chunk[: max(4096, min(len(chunk), free - leave_bytes))])
                fh.flush()
            except OSError:
                break  # full
    return filler
