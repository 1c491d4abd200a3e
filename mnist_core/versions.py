"""Versions of MNIST Lab and the libraries it runs on, in one place (Home, checkpoints, CLI)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from . import __version__


def package_version(package: str) -> str:
    """An installed package's version without importing it (importing torchvision costs a second)."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    return dict(
        mnist_lab=__version__,
        python=platform.python_version(),
        torch=package_version("torch"),
        torchvision=package_version("torchvision"),
    )
