"""Fault injection for worker processes started with this folder on PYTHONPATH (tests only).

MNIST_LAB_FAULT_DISK_FULL=<file>: once <file> exists the disk is "full": every torch.save writes
part of its bytes and then fails with ENOSPC, as a real full disk does. Nothing in mnist_core
knows about this; the worker meets the same OSError a real disk would give it."""

import os

_TRIGGER = os.environ.get("MNIST_LAB_FAULT_DISK_FULL")

if _TRIGGER:
    import errno
    import io

    import torch

    _real_save = torch.save

    def _save(obj, f, *args, **kwargs):
        if not os.path.exists(_TRIGGER):
            return _real_save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        _real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        if hasattr(f, "write"):
            f.write(data[: len(data) // 2])
            f.flush()
        else:
            with open(f, "wb") as fh:
                fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    torch.save = _save
