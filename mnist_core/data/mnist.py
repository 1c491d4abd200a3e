"""MNIST: IDX reading with checks, locating or downloading the files, seeded splits, batches."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..paths import DATA_ENV, cache_dir, data_dir
from .pixels import normalize


class DataError(RuntimeError):
    """MNIST could not be found, downloaded or read; the message says which file and what to do."""


# name -> (records, SHA-256 of the decompressed file)
FILES = {
    "train-images-idx3-ubyte": (60000, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (60000, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (10000, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (10000, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
OFFLINE_ENV = "MNIST_LAB_OFFLINE"  # set to 1 to never download
_DTYPE_CODE = 0x08  # unsigned byte, the only type MNIST uses


def read_idx(path: str | Path, expected_sha256: str | None = None) -> torch.Tensor:
    """Read an IDX file (gzip or plain) into a uint8 tensor, checking header, size and checksum."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: the gzip stream is truncated or corrupt ({exc}). Delete the file and download it again."
        ) from None
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short to be an IDX file.")
    zero1, zero2, dtype, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero1 or zero2 or dtype != _DTYPE_CODE or not 1 <= ndim <= 4:
        raise DataError(
            f"{path}: bad IDX magic number {raw[:4].hex()} (expected 0000080N "
            "for unsigned bytes); this is not an MNIST IDX file."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: header cut short ({len(raw)} bytes).")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = 1
    for d in dims:
        count *= d
    if len(raw) != header + count:
        raise DataError(
            f"{path}: header promises {'x'.join(map(str, dims))} = {count} bytes of data "
            f"but the file holds {len(raw) - header}; it is truncated or corrupt."
        )
    if expected_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected_sha256:
            raise DataError(
                f"{path}: SHA-256 of the decompressed data is {digest[:16]}..., expected "
                f"{expected_sha256[:16]}...; the file is corrupt or not the original MNIST."
            )
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


def find_file(folder: Path, name: str) -> Path | None:
    """The file holding one of the four MNIST arrays (gzip or plain), or None."""
    for candidate in (folder / f"{name}.gz", folder / name, folder / "MNIST" / "raw" / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def missing_files(folder: Path | None = None) -> list[str]:
    folder = Path(folder) if folder else data_dir()
    return [f"{n}.gz" for n in FILES if find_file(folder, n) is None]


def download(folder: Path, progress: bool = True) -> None:
    """Fetch the four files from torchvision's MNIST mirrors into `folder` (progress bar on stderr)."""
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import download_url

    folder.mkdir(parents=True, exist_ok=True)
    for filename, md5 in MNIST.resources:
        if find_file(folder, filename.removesuffix(".gz")):
            continue
        errors = []
        for mirror in MNIST.mirrors:
            try:
                download_url(mirror + filename, str(folder), filename, md5)
                break
            except Exception as exc:  # network errors come in many types
                errors.append(f"{mirror}: {exc}")
                (folder / filename).unlink(missing_ok=True)
        else:
            raise DataError(offline_message(folder) + "\nDownload attempts: " + " | ".join(errors))


def offline_message(folder: Path) -> str:
    names = ", ".join(f"{n}.gz" for n in FILES)
    return (
        f"MNIST was not found in {folder} and could not be downloaded. Either connect to the "
        f"internet, or set the environment variable {DATA_ENV} to a folder holding the four "
        f"files {names}."
    )


@dataclass
class MNIST:
    """The four arrays as uint8 images (N, 28, 28) and int64 labels."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str


_CACHE: dict[str, MNIST] = {}


def clear_cache() -> None:
    """Forget the arrays read so far, so the next load_mnist reads (and verifies) the files again."""
    _CACHE.clear()


def load_mnist(folder: str | Path | None = None, download_missing: bool | None = None) -> MNIST:
    """Locate ($MNIST_DATA_DIR -> <project>/data/mnist -> download), read and verify MNIST.

    The first verified read leaves a decoded copy in the cache folder (paths.cache_dir()); later
    loads, in any process, memory-map it (a few milliseconds instead of decompressing and hashing
    55 MB). The copy is keyed by the source files' paths, sizes and times and carries a checksum:
    a stale, truncated or damaged copy is ignored and rewritten. Downloading is skipped when
    $MNIST_LAB_OFFLINE is 1 (or download_missing=False).
    """
    if download_missing is None:
        download_missing = os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "yes")
    folder = Path(folder) if folder else data_dir()
    key = str(folder.resolve())
    if key in _CACHE:
        return _CACHE[key]
    if missing_files(folder):
        if not download_missing:
            raise DataError(offline_message(folder))
        download(folder)
    sources = {name: find_file(folder, name) for name in FILES}
    if any(path is None for path in sources.values()):  # removed between the check above and now
        raise DataError(offline_message(folder))
    decoded = decoded_path(sources)  # type: ignore[arg-type]
    arrays = read_decoded(decoded) if decoded else None
    if arrays is None:
        arrays = {}
        for name, (records, sha) in FILES.items():
            tensor = read_idx(sources[name], sha)  # type: ignore[arg-type]
            if tensor.shape[0] != records:
                raise DataError(f"{sources[name]}: {tensor.shape[0]} records, expected {records}.")
            arrays[name] = tensor
        if decoded:
            write_decoded(decoded, arrays, sources)  # type: ignore[arg-type]
            prune_decoded(decoded.parent, keep=decoded)
    mnist = MNIST(
        arrays["train-images-idx3-ubyte"],
        arrays["train-labels-idx1-ubyte"].long(),
        arrays["t10k-images-idx3-ubyte"],
        arrays["t10k-labels-idx1-ubyte"].long(),
        key,
    )
    _CACHE[key] = mnist
    return mnist


DECODED_VERSION = 2  # 2: the header names its source files (what pruning checks)
_HEADER = 4096  # bytes of JSON (padded) before the arrays
_ABANDONED_S = 3600  # a half-written copy this old was left by a writer that died


def _source_facts(sources: dict[str, Path]) -> list:
    """What a decoded copy was made from: each file's resolved path, size and modification time."""
    facts = []
    for name in FILES:
        st = sources[name].stat()
        facts.append([str(sources[name].resolve()), st.st_size, st.st_mtime_ns])
    return facts


def decoded_path(sources: dict[str, Path]) -> Path | None:
    """The decoded copy's file for these four source files (None: no usable cache folder)."""
    try:
        facts = [DECODED_VERSION, *_source_facts(sources)]
        digest = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:20]
        return cache_dir() / f"mnist-{digest}.u8"
    except OSError:
        return None


def _header(path: Path) -> dict:
    with open(path, "rb") as fh:
        return json.loads(fh.read(_HEADER).rstrip(b"\0 "))


def _is_stale(path: Path) -> bool:
    """A decoded copy that can never be used again: another format, or made from files that are
    gone or have changed since (a moved data folder, a test's temporary copy)."""
    try:
        header = _header(path)
    except (OSError, ValueError):
        return True
    if header.get("version") != DECODED_VERSION:
        return True
    try:
        sources = {name: Path(src) for name, (src, _size, _mtime) in zip(FILES, header["sources"])}
        return _source_facts(sources) != header["sources"]
    except (OSError, KeyError, TypeError, ValueError):  # a source file is gone, a foreign header
        return True


def prune_decoded(folder: Path, keep: Path) -> list[Path]:
    """Remove the decoded copies in `folder` other than `keep` that are stale, and half-written
    ones older than an hour; returns what was removed. A process still reading a removed copy
    keeps its mapping (the file lives on until it is unmapped)."""
    removed = []
    now = time.time()
    for path in folder.glob("mnist-*.u8"):
        if path != keep and _is_stale(path):
            removed.append(path)
    for path in folder.glob(".decoding-*"):
        try:
            if now - path.stat().st_mtime > _ABANDONED_S:
                removed.append(path)
        except OSError:
            pass
    gone = []
    for path in removed:
        try:
            path.unlink(missing_ok=True)
            gone.append(path)
        except OSError:  # not ours to remove (permissions): it stays, harmless
            pass
    return gone


def read_decoded(path: Path) -> dict[str, torch.Tensor] | None:
    """The four arrays memory-mapped from a decoded copy, or None if it is absent or not intact."""
    try:
        header = _header(path)
        size = path.stat().st_size
        if header.get("version") != DECODED_VERSION or size != _HEADER + header["bytes"]:
            return None
        flat = torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8)[_HEADER:]
        if zlib.crc32(flat.numpy().data) != header["crc32"]:
            return None
        arrays = {}
        for name, (offset, dims) in header["arrays"].items():
            count = 1
            for d in dims:
                count *= d
            arrays[name] = flat[offset : offset + count].view(dims)
        return arrays if set(arrays) == set(FILES) else None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None


def write_decoded(path: Path, arrays: dict[str, torch.Tensor], sources: dict[str, Path]) -> None:
    """Leave the decoded copy for the next load (atomically; a cache that cannot be written, a
    full disk say, only means the next load reads the original files again)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        layout, offset, crc = {}, 0, 0
        for name, tensor in arrays.items():
            layout[name] = [offset, list(tensor.shape)]
            offset += tensor.numel()
            crc = zlib.crc32(tensor.contiguous().numpy().data, crc)
        header = json.dumps(
            dict(
                version=DECODED_VERSION,
                bytes=offset,
                crc32=crc,
                arrays=layout,
                sources=_source_facts(sources),
            )
        ).encode()
        if len(header) > _HEADER:
            return  # source paths too long to record: no copy, the originals are read each time
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".decoding-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(header.ljust(_HEADER, b" "))
            for tensor in arrays.values():
                fh.write(tensor.contiguous().numpy().tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except (OSError, RuntimeError, ValueError):
        pass
    finally:
        if tmp:
            Path(tmp).unlink(missing_ok=True)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded permutation of range(n) cut into (train, validation) index tensors."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


@dataclass
class Splits:
    """Normalised float tensors ready for batching; validation is carved from the training set."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_index: torch.Tensor  # positions in the original 60,000 training images


def make_splits(mnist: MNIST, val_fraction: float = 0.1, seed: int = 0, limit: int = 0) -> Splits:
    """Split before limiting, so a smoke run's validation set is the real one, just smaller."""
    train_idx, val_idx = split_indices(len(mnist.train_labels), val_fraction, seed)
    if limit:
        train_idx = train_idx[:limit]
        val_idx = val_idx[: max(1, limit // 5)] if len(val_idx) else val_idx
    tx, ty = mnist.train_images[train_idx], mnist.train_labels[train_idx]
    vx, vy = mnist.train_images[val_idx], mnist.train_labels[val_idx]
    return Splits(
        normalize(tx), ty, normalize(vx), vy, normalize(mnist.test_images), mnist.test_labels, val_idx
    )


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """In-memory mini-batches, shuffled when a generator is given; the last batch may be smaller."""
    n = len(y)
    order = torch.randperm(n, generator=generator) if generator is not None else None
    for start in range(0, n, batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


def class_counts(mnist: MNIST, val_fraction: float = 0.1, seed: int = 0) -> dict[str, list[int]]:
    """Images per digit in each split: {'train': [...10], 'validation': [...], 'test': [...]}."""
    train_idx, val_idx = split_indices(len(mnist.train_labels), val_fraction, seed)
    labels = {
        "train": mnist.train_labels[train_idx],
        "validation": mnist.train_labels[val_idx],
        "test": mnist.test_labels,
    }
    return {split: torch.bincount(y, minlength=10).tolist() for split, y in labels.items()}


def mean_images(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(10, 28, 28) average image of each digit, in [0, 1]."""
    return torch.stack([images[labels == d].float().mean(0) / 255.0 for d in range(10)])
