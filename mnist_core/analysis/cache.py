"""Evaluations cached per (checkpoint content, split): in memory, and on disk so a restart is instant.

In memory an evaluation is an entry of the analysis wing's store (analysis/memory.py), bounded in
bytes with everything else the pages keep ($MNIST_LAB_CACHE_MB); a test-set entry shares the one
normalised copy of the test images. The key is the SHA-256 of the checkpoint file's bytes, so a
retrained or replaced file is evaluated again whatever its name or time, while best.pt and the
epoch file it links to share one entry. On disk an entry is one small .npz (the predictions and
probabilities, no pickled objects) in the machine's cache folder (paths.cache_dir()/evaluations:
keyed by content, an entry is valid for any run store, so a new store or a restarted server finds
the default model's evaluation ready), written atomically. The cache is only ever an optimisation:
an entry that is missing, truncated, damaged, from another version or for other labels is computed
again (and rewritten), and a full or read-only disk just means the next start computes it again.

A background evaluation (mnist_core.warmup does the default model's when the server starts) and a
page asking for the same checkpoint meanwhile share one computation: the page waits for it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .. import paths
from ..data.mnist import load_mnist, split_indices
from ..data.pixels import normalize
from ..learn.checkpoints import load_checkpoint, read_checkpoint
from ..learn.config import TrainConfig
from ..learn.device import choose_precision, run_precision
from ..learn.evaluate import Analysis, analyse, summarise
from . import memory
from .memory import in_memory, memo, test_images

MAX_DISK_ENTRIES = 64  # on disk (about 0.5 MB each); the oldest are removed
MAX_HASHES = 4096  # file digests remembered (a few hundred bytes each)
FORMAT = 2  # of a disk entry; another value is a miss (2: with the precision it was computed in)
SPLITS = ("test", "val")

_LOCK = threading.Lock()  # guards _HASHES
_HASHES: OrderedDict[tuple[str, int, int], str] = OrderedDict()  # (path, mtime_ns, size) -> digest


def cache_dir() -> Path:
    """Where evaluations are kept on disk: paths.cache_dir()/evaluations ($MNIST_LAB_CACHE moves it)."""
    return paths.cache_dir() / "evaluations"


def content_hash(path: str | Path) -> str:
    """SHA-256 of the file's bytes (remembered per path, modification time and size)."""
    path = Path(path)
    st = path.stat()
    stamp = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _LOCK:
        known = _HASHES.get(stamp)
    if known:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    with _LOCK:
        _HASHES[stamp] = digest.hexdigest()
        while len(_HASHES) > MAX_HASHES:
            _HASHES.popitem(last=False)
    return digest.hexdigest()


def _labels_hash(y: torch.Tensor) -> str:
    return hashlib.sha256(y.to(torch.int64).numpy().tobytes()).hexdigest()


def entry_path(digest: str, split: str) -> Path:
    return cache_dir() / f"{digest}-{split}.npz"


def _split_settings(cfg: TrainConfig, split: str) -> dict:
    """What a split depends on besides the data: nothing for 'test', the run's seeded carve for 'val'."""
    return {} if split == "test" else dict(val_fraction=cfg.val_fraction, seed=cfg.seed)


def _split(mnist, split: str, settings: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised images, labels) of 'test' or of a run's own validation split, in full."""
    if split == "test":  # the shared normalised copy: an entry does not hold one of its own
        return test_images(mnist), mnist.test_labels
    _, val_idx = split_indices(len(mnist.train_labels), settings["val_fraction"], settings["seed"])
    return normalize(mnist.train_images[val_idx]), mnist.train_labels[val_idx]


def _read_entry(digest: str, split: str) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """(predictions, probabilities, metadata) from disk, or None for any entry not to be trusted."""
    try:
        with np.load(entry_path(digest, split), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            pred, probs = z["y_pred"], z["probs"]
        ok = (
            meta.get("format") == FORMAT
            and meta.get("digest") == digest
            and meta.get("split") == split
            and pred.ndim == 1
            and probs.shape == (len(pred), 10)
            and np.isfinite(probs).all()
        )
        if not ok:
            return None
        try:
            os.utime(entry_path(digest, split))  # used now: the oldest-used entries go first (_trim)
        except OSError:
            pass
        return pred, probs, meta
    except Exception:  # missing, unreadable, truncated, not a zip, bad JSON: a miss
        return None


def _write_entry(digest: str, split: str, result: Analysis, meta: dict) -> None:
    """Write atomically (a temporary file in the same folder, then a rename); any failure (a full
    or read-only disk) leaves no file behind and is ignored: the cache is only an optimisation."""
    folder = cache_dir()
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{digest[:16]}-{split}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                y_pred=result.y_pred.numpy().astype(np.uint8),
                probs=result.probs.numpy().astype(np.float32),
                meta=np.array(json.dumps(meta)),
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, entry_path(digest, split))
        tmp = None
        _trim(folder)
    except OSError:
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _trim(folder: Path) -> None:
    entries = sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime)
    for old in entries[:-MAX_DISK_ENTRIES]:
        old.unlink(missing_ok=True)


def _same_precision(meta: dict) -> bool:
    """Whether an entry was computed in the precision its checkpoint would be evaluated in here
    (a copy of the cache from a machine without native bf16, say, is recomputed)."""
    try:
        device = torch.device(meta["device"])
        return choose_precision(meta["precision_setting"], device)[0] == meta["precision"]
    except (KeyError, TypeError, RuntimeError):
        return False


def on_disk(path: str | Path, split: str = "test") -> bool:
    """Whether this checkpoint's evaluation has an entry on disk (read in a tenth of a second)."""
    try:
        return entry_path(content_hash(path), split).is_file()
    except OSError:
        return False


def cached(path: str | Path, split: str = "test") -> bool:
    """Whether this checkpoint's evaluation is in memory (the page shows it without a spinner)."""
    try:
        return in_memory(("evaluation", content_hash(path), split))
    except OSError:
        return False


def evaluate_checkpoint(
    path: str | Path, split: str = "test", mnist=None, stop: Callable[[], bool] | None = None
) -> Analysis:
    """Analysis of a checkpoint on 'test' or 'val' (its own run's validation split): from memory,
    else from the disk cache, else computed (and then cached in both). A computation that `stop`
    ends early raises evaluate.Interrupted and caches nothing."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'test' or 'val', not {split!r}")
    path = Path(path)
    if not path.is_file():
        read_checkpoint(path)  # raises the CheckpointError that says so
    digest = content_hash(path)
    return memo(("evaluation", digest, split), lambda: _evaluate(path, digest, split, mnist, stop))


def _evaluate(path: Path, digest: str, split: str, mnist, stop: Callable[[], bool] | None) -> Analysis:
    """The evaluation from its disk entry when that can be trusted, else computed and written there."""
    mnist = mnist or load_mnist()
    entry = _read_entry(digest, split)
    if entry is not None:
        pred, probs, meta = entry
        try:
            x, y = _split(mnist, split, meta.get("settings") or {})
        except (KeyError, TypeError, ValueError):  # settings not as written: a miss
            x, y = None, torch.empty(0)
        if (
            x is not None
            and len(y) == len(pred)
            and meta.get("labels") == _labels_hash(y)
            and _same_precision(meta)
        ):
            result = summarise(y, torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(probs))
            result.images = x
            return result
    ckpt = load_checkpoint(path)
    settings = _split_settings(ckpt.config, split)
    x, y = _split(mnist, split, settings)
    device = next(ckpt.model.parameters()).device
    precision = run_precision(ckpt.config, device)  # as the run computed its own test accuracy
    result = analyse(ckpt.model, x, y, precision, stop)
    result.images = x  # normalised images, for galleries and saliency
    meta = dict(format=FORMAT, digest=digest, split=split, settings=settings, labels=_labels_hash(y))
    meta.update(precision=precision, precision_setting=ckpt.config.precision, device=device.type)
    _write_entry(digest, split, result, meta)
    return result


def clear_cache() -> None:
    """Forget everything held in memory (the disk cache stays; the next evaluation reads it)."""
    memory.clear()
    with _LOCK:
        _HASHES.clear()
