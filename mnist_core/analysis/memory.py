"""What the analysis wing keeps in memory: one process-wide least-recently-used store, bounded in bytes.

Everything the pages compute from checkpoints goes here (evaluations, Inside's dataset examples,
filter histories and embedding maps, and the figures drawn from them): `memo(key, compute)`,
`remember`, `recall`. Each entry is weighed when it is stored (`nbytes`: numpy arrays, tensors,
Plotly figures, models and the containers around them) and the least recently used entries go once
the total passes $MNIST_LAB_CACHE_MB (256 MB by default), so a class opening hundreds of checkpoints
cannot fill the server; an entry larger than the whole budget is handed back without being kept.
The normalised test images (`test_images`, 31 MB, made once per dataset) are shared by every entry
that holds them and counted in none."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ..data.pixels import normalize

BUDGET_ENV = "MNIST_LAB_CACHE_MB"  # what the store may hold, in MB
DEFAULT_BUDGET_MB = 256
T = TypeVar("T")

_LOCK = threading.Lock()  # guards everything below
_MEMORY: OrderedDict[Hashable, Any] = OrderedDict()  # least recently used first
_SIZES: dict[Hashable, int] = {}
_BYTES = [0]  # the sum of _SIZES
_KEY_LOCKS: dict[Hashable, threading.Lock] = {}  # one computation per key at a time
_TEST: dict[str, torch.Tensor] = {}  # dataset source -> its normalised test images
_SHARED: set[int] = set()  # storage addresses of _TEST's tensors: counted in no entry


def budget_bytes() -> int:
    """$MNIST_LAB_CACHE_MB in bytes (256 MB when unset or not a number; 0 keeps nothing)."""
    try:
        mb = float(os.environ.get(BUDGET_ENV) or DEFAULT_BUDGET_MB)
    except ValueError:
        mb = DEFAULT_BUDGET_MB
    return max(0, int(mb * 2**20)) if math.isfinite(mb) else DEFAULT_BUDGET_MB * 2**20


def _tensor_storage(t: torch.Tensor) -> tuple[int, int]:
    """(address, bytes) of a tensor's storage: views of one storage count once."""
    try:
        storage = t.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):  # a meta or sparse tensor
        return id(t), t.element_size() * t.nelement()


def nbytes(obj: object) -> int:
    """An estimate of the memory `obj` holds: array and tensor data (each storage once, the shared
    test images not at all), Plotly figures' data, layout and frames, models' parameters and
    buffers, and the Python containers, dataclasses and objects around them."""
    seen: set[int] = set()  # ids of the objects walked
    storages: set[int] = set(_SHARED)  # addresses of the tensor storages counted (or not to count)
    total = 0
    stack: list[object] = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, torch.Tensor):
            address, size = _tensor_storage(o)
            if address not in storages:
                storages.add(address)
                total += size
        elif isinstance(o, np.ndarray):
            root = o
            while isinstance(root.base, np.ndarray):
                root = root.base
            if root is o or id(root) not in seen:
                seen.add(id(root))
                total += root.nbytes
            if o.dtype == object:
                stack.extend(o.ravel().tolist())
        elif isinstance(o, nn.Module):
            stack.extend(o.state_dict(keep_vars=True).values())
        elif isinstance(o, dict):
            total += sys.getsizeof(o)
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            total += sys.getsizeof(o)
            stack.extend(o)
        elif hasattr(o, "_frame_objs") and hasattr(o, "_data") and hasattr(o, "_layout"):  # a Plotly figure
            fig: Any = o
            stack.extend([fig._data, fig._layout, [getattr(f, "_props", None) for f in fig._frame_objs]])
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            total += sys.getsizeof(o)
            stack.extend(getattr(o, f.name) for f in dataclasses.fields(o))
        elif isinstance(o, (str, bytes, bytearray, int, float, complex, bool, type(None))):
            total += sys.getsizeof(o)
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            total += sys.getsizeof(o)
            stack.extend(vars(o).values())
        else:
            total += sys.getsizeof(o)
    return total


def remember(key: Hashable, value: T, size: int | None = None) -> T:
    """Keep `value` under `key` (its size estimated by `nbytes` unless given), then drop the least
    recently used entries until the total is within the budget. Returns `value`."""
    size = nbytes(value) if size is None else size
    budget = budget_bytes()
    with _LOCK:
        _forget(key)
        if size > budget:  # larger than the whole budget: handed back, not kept
            return value
        _MEMORY[key] = value
        _SIZES[key] = size
        _BYTES[0] += size
        while _BYTES[0] > budget and _MEMORY:
            _forget(next(iter(_MEMORY)))
    return value


def _forget(key: Hashable) -> None:
    if key in _MEMORY:
        del _MEMORY[key]
        _BYTES[0] -= _SIZES.pop(key)


def recall(key: Hashable) -> Any | None:
    """The value kept under `key` (now the most recently used), or None."""
    with _LOCK:
        if key not in _MEMORY:
            return None
        _MEMORY.move_to_end(key)
        return _MEMORY[key]


def in_memory(key: Hashable) -> bool:
    with _LOCK:
        return key in _MEMORY


def memory_bytes() -> int:
    """What the kept entries weigh, by `nbytes`: never more than budget_bytes()."""
    with _LOCK:
        return _BYTES[0]


def memo(key: Hashable, compute: Callable[[], T]) -> T:
    """The value kept under `key`, else `compute()` kept there. Two threads asking for the same key
    share one computation: the second waits for the first."""
    found = recall(key)
    if found is not None:
        return found
    with _LOCK:
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    try:
        with lock:
            found = recall(key)
            if found is not None:
                return found
            return remember(key, compute())
    finally:
        with _LOCK:
            if not lock.locked():
                _KEY_LOCKS.pop(key, None)


def test_images(mnist) -> torch.Tensor:
    """The normalised test images (10,000 x 1 x 28 x 28), made once per dataset and shared."""
    with _LOCK:
        known = _TEST.get(mnist.source)
    if known is not None:
        return known
    images = normalize(mnist.test_images)
    with _LOCK:
        known = _TEST.setdefault(mnist.source, images)
        _SHARED.add(_tensor_storage(known)[0])
    return known


def clear() -> None:
    """Forget every entry (the shared test images stay)."""
    with _LOCK:
        _MEMORY.clear()
        _SIZES.clear()
        _BYTES[0] = 0
