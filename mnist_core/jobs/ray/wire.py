"""What a cluster node sends the driver: plain bytes, decoded with safe loaders and checked before
anything reaches the store.

A node yields each record as one `bytes` frame (Ray stores bytes raw, so reading one runs no
unpickler): a magic line, the length of a JSON header, the header, then the binary parts it names
(an epoch's checkpoint and resume files, exactly as torch.save wrote them). The driver decodes the
header with json.loads and the files with torch.load(weights_only=True), and `check` validates
them against the run's own config: the record types, the epoch number, the model key (a registry
model, the run's), the model arguments (the run's), and every tensor of the state dict (the names,
shapes and dtypes of the model the run's config builds, so its parameter count too). Anything else
raises `Refused` with the reason; the driver then fails the run and writes none of it."""

from __future__ import annotations

import io
import json

import torch

from ...data.pixels import NUM_CLASSES
from ...learn.checkpoints import FORMAT
from ...learn.config import ConfigError, TrainConfig
from ...learn.models import REGISTRY, build_model

MAGIC = b"mnist-lab-node-record 1\n"
KINDS = ("node", "batches", "epoch", "done", "failed")
MAX_HEADER_BYTES = 64 * 1024 * 1024  # a flush of batch rows is a few kB
MAX_TEXT = 20_000  # characters of a node's failure reason or trace kept


class Refused(ValueError):
    """A record that is not what an honest node sends; the message says what was wrong."""


def encode(msg: dict, **blobs: bytes) -> bytes:
    """One record as a frame: `msg` (JSON-able primitives) and the named binary parts."""
    header = json.dumps({**msg, "blobs": [[name, len(b)] for name, b in blobs.items()]}).encode()
    return MAGIC + len(header).to_bytes(8, "big") + header + b"".join(blobs.values())


def decode(frame: object) -> tuple[dict, dict[str, bytes]]:
    """A frame -> (its header, its binary parts by name); Refused for anything malformed."""
    if not isinstance(frame, bytes):
        raise Refused(f"a {type(frame).__name__} instead of a bytes record")
    if not frame.startswith(MAGIC) or len(frame) < len(MAGIC) + 8:
        raise Refused("bytes that are not an MNIST Lab node record (no header)")
    start = len(MAGIC) + 8
    size = int.from_bytes(frame[len(MAGIC) : start], "big")
    if size > MAX_HEADER_BYTES or start + size > len(frame):
        raise Refused(f"a record whose header claims {size:,} bytes")
    try:
        msg = json.loads(frame[start : start + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(f"a record whose header is not JSON ({exc})") from None
    if not isinstance(msg, dict) or msg.get("kind") not in KINDS:
        kind = msg.get("kind") if isinstance(msg, dict) else None
        raise Refused(f"a record of unknown kind {str(kind)[:40]!r}")
    spec = msg.pop("blobs", [])
    if not (isinstance(spec, list) and all(_is_part(p) for p in spec)):
        raise Refused("a record whose binary parts are not (name, size) pairs")
    if start + size + sum(n for _, n in spec) != len(frame):
        raise Refused("a record whose binary parts do not add up to its length")
    blobs, at = {}, start + size
    for name, n in spec:
        blobs[name], at = frame[at : at + n], at + n
    return msg, blobs


def _is_part(p) -> bool:
    return (
        isinstance(p, list)
        and len(p) == 2
        and isinstance(p[0], str)
        and isinstance(p[1], int)
        and not isinstance(p[1], bool)
        and p[1] >= 0
    )


# ---- what each field may be ----
def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _numbers(x, n: int, kind=None) -> bool:
    """A list of n numbers (of `kind`, when given)."""
    return isinstance(x, list) and len(x) == n and all(_number(v) and (kind is None or kind(v)) for v in x)


def _test_metrics(m) -> bool:
    """The figures of learn/metrics.py's test_summary(): what the pages draw the test pass from."""
    if not isinstance(m, dict) or set(m) != {
        "test_loss",
        "confusion",
        "per_class_accuracy",
        "best_epoch",
        "early_stopped",
    }:
        return False
    confusion, per_class = m["confusion"], m["per_class_accuracy"]
    return (
        (m["test_loss"] is None or _number(m["test_loss"]))
        and (
            confusion is None
            or (
                isinstance(confusion, list)
                and len(confusion) == NUM_CLASSES
                and all(_numbers(row, NUM_CLASSES, _int) for row in confusion)
            )
        )
        and (per_class is None or _numbers(per_class, NUM_CLASSES))
        and _int(m["best_epoch"])
        and isinstance(m["early_stopped"], bool)
    )


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _text(x, limit: int = 200) -> str:
    if not isinstance(x, str):
        raise Refused(f"a text field holding a {type(x).__name__}")
    return x[:limit]


def _mapping(x, what: str) -> dict:
    if not isinstance(x, dict):
        raise Refused(what)
    return x


def _list(x, what: str) -> list:
    if not isinstance(x, list):
        raise Refused(what)
    return x


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise Refused(what)


def check(msg: dict, blobs: dict[str, bytes], config: dict, epochs_done: int) -> dict:
    """The record, validated for the run whose config is `config` and that has `epochs_done`
    epochs in the store; an epoch record's files come back as "resume" and "checkpoint" bytes."""
    kind = msg["kind"]
    if kind == "node":
        out = {k: _text(msg.get(k)) for k in ("node_id", "address", "host", "gpus")}
        precision = msg.get("precision")
        return dict(kind=kind, **out, precision=None if precision is None else _text(precision))
    if kind == "batches":
        rows = _list(msg.get("rows"), "batch rows that are not a list")
        progress = _mapping(msg.get("progress"), "a progress report that is not a mapping")
        for r in rows:
            ok = isinstance(r, list) and len(r) == 4 and _int(r[0]) and _int(r[1])
            _need(
                ok and _number(r[2]) and _number(r[3]),
                f"a batch row {str(r)[:80]} that is not (step, epoch, loss, time)",
            )
        _need(
            all(_number(v) or v is None for v in progress.values()), "a progress report that is not numbers"
        )
        return dict(kind=kind, rows=[tuple(r) for r in rows], progress=progress)
    if kind == "epoch":
        return _check_epoch(msg, blobs, config, epochs_done)
    if kind == "done":
        metrics = msg.get("test_metrics")
        _need(
            isinstance(msg.get("stopped"), bool) and _int(msg.get("epochs_run")),
            "a final record without its counts",
        )
        _need(msg.get("test_acc") is None or _number(msg["test_acc"]), "a test accuracy that is not a number")
        _need(_test_metrics(metrics), "test metrics that are not the test pass's figures")
        return dict(
            kind=kind,
            stopped=msg["stopped"],
            epochs_run=msg["epochs_run"],
            test_acc=msg.get("test_acc"),
            test_metrics=metrics,
        )
    return dict(kind=kind, reason=_text(msg.get("reason"), 2000), trace=_text(msg.get("trace"), MAX_TEXT))


def _check_epoch(msg: dict, blobs: dict[str, bytes], config: dict, epochs_done: int) -> dict:
    record = _mapping(msg.get("record"), "an epoch record that is not a mapping")
    _need(
        len(record) <= 64 and all(_number(v) or v is None for v in record.values()),
        "an epoch record that is not plain numbers",
    )
    epoch = record.get("epoch")
    _need(
        epoch == epochs_done + 1 and _int(epoch),
        f"epoch {str(epoch)[:20]} where epoch {epochs_done + 1} was due",
    )
    _need(
        _number(record.get("train_loss")) and _number(record.get("images_per_s")),
        "an epoch record without its loss and speed",
    )
    _need(isinstance(msg.get("best"), bool), "an epoch record without its best flag")
    _need(set(blobs) == {"resume", "checkpoint"}, f"an epoch record with the parts {sorted(blobs)}")
    try:
        cfg = TrainConfig.from_dict(config)
    except ConfigError as exc:  # the store's own config: not the node's doing, but nothing to check against
        raise Refused(f"an epoch for a run whose config is invalid ({exc})") from None
    checkpoint = _load(blobs["checkpoint"], "checkpoint")
    _need(checkpoint.get("format") == FORMAT, "a checkpoint without the MNIST Lab header")
    key = checkpoint.get("model_key")
    _need(
        key in REGISTRY and key == cfg.model,
        f"a checkpoint for model {str(key)[:40]!r}, not the run's {cfg.model!r}",
    )
    want_args = _plain({**REGISTRY[cfg.model].args, **cfg.model_args})
    _need(
        _plain(checkpoint.get("model_args")) == want_args,
        f"a checkpoint with model arguments {str(checkpoint.get('model_args'))[:80]}, "
        f"not the run's {want_args}",
    )
    _need(checkpoint.get("config") == cfg.to_dict(), "a checkpoint whose config is not the run's")
    with torch.device("meta"):  # the run's model, without allocating its weights
        reference = build_model(cfg.model, cfg.model_args).state_dict()
    state = _mapping(checkpoint.get("state_dict"), "a checkpoint without a state dict")
    _need(set(state) == set(reference), "a state dict whose tensors are not the model's")
    n, want_n = _count(state.values()), _count(reference.values())
    _need(n == want_n, f"a state dict of {n:,} numbers where the run's model has {want_n:,}")
    for name, want in reference.items():
        got = state[name]
        _need(
            isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype,
            f"tensor {name!r} of shape {tuple(getattr(got, 'shape', ()))} {getattr(got, 'dtype', type(got))} "
            f"where the run's model has {tuple(want.shape)} {want.dtype}",
        )
    resume = _load(blobs["resume"], "resume file")
    _need(
        resume.get("format") == FORMAT and resume.get("kind") == "resume", "a resume file without its header"
    )
    _need(resume.get("epoch") == epoch and _int(resume.get("step")), "a resume file for another epoch")
    _need(isinstance(resume.get("optimizer"), dict), "a resume file without optimizer state")
    held = sum(t.numel() for t in _tensors(resume))
    _need(held <= 4 * n + 1024, f"a resume file holding {held:,} numbers for a model of {n:,}")
    return dict(
        kind="epoch", record=record, best=msg["best"], resume=blobs["resume"], checkpoint=blobs["checkpoint"]
    )


def _load(raw: bytes, what: str) -> dict:
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types; weights_only refuses any Python object
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise Refused(f"a {what} that is not plain tensors and data ({first[:200]})") from None
    _need(isinstance(obj, dict), f"a {what} that is not a mapping")
    return obj


def _count(tensors) -> int:
    return sum(t.numel() if isinstance(t, torch.Tensor) else 0 for t in tensors)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def _plain(value):
    """JSON's view of a value (tuples are lists), to compare model arguments."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))
