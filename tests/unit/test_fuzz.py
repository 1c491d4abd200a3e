"""Bad input, generated: every input ends as a valid result or one clear error, never a crash."""

import io
import json
import math
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_core.data.preprocess import InputError, load_image, preprocess, to_gray
from mnist_core.jobs.store import RunError, RunStore, check_run_id
from mnist_core.learn.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from mnist_core.learn.config import ConfigError, TrainConfig
from mnist_core.learn.models import build_model

FIELDS = list(TrainConfig.__dataclass_fields__)
TRIED: Counter = Counter()  # inputs tried per kind, read by tests/reliability.py
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
# values near what a learner or a form could send: boundaries, wrong types, NaN, huge numbers
near = (
    st.integers(-3, 3)
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["adam", "sgd", "cosine", "cnn_basic", "perceptron", "", "../x", "1e-3"])
    | st.booleans()
    | st.none()
)
model_args = st.dictionaries(
    st.sampled_from(["hidden", "channels", "dropout", "batchnorm", "convs", "kernel", "gap", "x"]),
    st.integers(-2, 2**40)
    | st.floats(allow_nan=True)
    | st.lists(st.integers(-2, 2**40), max_size=30)
    | st.booleans()
    | st.text(max_size=3)
    | st.lists(st.floats(allow_nan=True), max_size=3),
    max_size=4,
)
configs = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=10), near | plain, max_size=8
) | st.fixed_dictionaries(
    {"model": st.sampled_from(["mlp_128_64", "cnn_1", "better_cnn", "deep"]), "model_args": model_args}
)


@FUZZ
@given(configs)
@example({"model": "deep", "model_args": {"hidden": [2**40]}})  # a trillion-weight layer: refused, not built
@example({"model": "mlp_128_64", "model_args": {"hidden": [10_000] * 30}})  # ~3 billion weights
@example({"model": "cnn_1", "model_args": {"channels": [float("nan")]}})
@example({"lr": float("nan"), "epochs": True, "model_args": {"dropout": {"a": 1}}})
def test_config_validator_gives_a_valid_config_or_one_clear_error(values):
    TRIED["configs"] += 1
    try:
        cfg = TrainConfig.from_dict(values)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("Invalid training configuration") and len(message) < 4000
        return
    # accepted: it must survive a JSON round trip (the run store keeps it as JSON) and build small
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert all(math.isfinite(v) for v in cfg.to_dict().values() if isinstance(v, float))


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=80)
    | st.sampled_from(
        [
            "..",
            "0\n",
            "ok\n",
            "../etc",
            "/abs",
            "a/b",
            "a\\b",
            "a..b",
            "ok-run_1",
            "a\x00b",
            "C:\\x",
            "~",
            ".hidden",
            "a" * 65,
        ]
    )
)
def test_run_ids_are_plain_names_or_refused(run_id):
    TRIED["run_ids"] += 1
    try:
        check_run_id(run_id)
    except RunError as exc:
        assert "Refused run id" in str(exc)
        return
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in run_id) and ".." not in run_id
    assert not run_id.startswith(("-", "_", "."))


def test_store_paths_never_leave_the_store(tmp_path):
    store = RunStore(tmp_path / "store")
    for bad in ["../x", "/etc/passwd", "a/../../b", "..", "x/y", "", ".", "a\\..\\b", "%2e%2e"]:
        TRIED["run_ids"] += 1
        for call in (
            store.get,
            store.layout.log_path,
            store.layout.run_dir,
            store.delete,
            store.batch_losses,
        ):
            with pytest.raises(RunError):
                call(bad)
        if bad:  # an empty id means "make one up"
            with pytest.raises(RunError):
                store.create({"model": "perceptron"}, run_id=bad)
    assert [p.name for p in tmp_path.iterdir()] == ["store"]
    assert not (tmp_path / "store" / "runs").exists() or not any((tmp_path / "store" / "runs").iterdir())
    assert store.list() == []


# ---- images: every mode PIL writes, every format, odd sizes, and damaged bytes ----
MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr", "LAB", "HSV"]
FORMATS = ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "ICO", "PPM"]


def encode(mode: str, fmt: str, w: int, h: int, seed: int) -> bytes | None:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").convert(mode)
    buf = io.BytesIO()
    try:
        img.save(buf, fmt)
    except (OSError, ValueError, KeyError):
        return None  # this format cannot hold this mode: nothing to test
    return buf.getvalue()


def read_digit(data: bytes) -> None:
    """What the Draw page does with an upload."""
    preprocess(to_gray(load_image(data)))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(MODES),
    st.sampled_from(FORMATS),
    st.integers(1, 64),
    st.integers(1, 64),
    st.integers(0, 2**16),
    st.data(),
)
def test_any_upload_is_read_or_refused_clearly(mode, fmt, w, h, seed, data):
    raw = encode(mode, fmt, w, h, seed)
    if raw is None:
        return
    TRIED["images"] += 1
    how = data.draw(st.sampled_from(["intact", "truncate", "flip", "garbage"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :]
    elif how == "garbage":
        raw = data.draw(st.binary(max_size=300))
    try:
        read_digit(raw)
    except InputError as exc:
        assert str(exc) and "Traceback" not in str(exc)


def test_decompression_bomb_is_refused_before_decoding():
    TRIED["images"] += 1
    img = Image.new("1", (20_000, 20_000))  # 400 megapixels, a few KB as PNG
    buf = io.BytesIO()
    img.save(buf, "PNG")
    assert len(buf.getvalue()) < 200_000
    with pytest.raises(InputError, match="too large"):
        load_image(buf.getvalue())


# ---- checkpoints: damaged at any byte, or foreign ----
@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "m.pt"
    save_checkpoint(build_model("perceptron"), TrainConfig(model="perceptron"), path)
    return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_checkpoints_load_or_fail_clearly(tmp_path, checkpoint_bytes, data):
    TRIED["checkpoints"] += 1
    raw = checkpoint_bytes
    how = data.draw(st.sampled_from(["truncate", "flip", "zero_tail"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    if how == "truncate":
        raw = raw[:at]
    elif how == "flip":
        raw = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
    else:
        raw = raw[:at] + bytes(len(raw) - at)
    path = tmp_path / f"damaged-{how}-{at}.pt"
    path.write_bytes(raw)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        assert str(path) in str(exc) or path.name in str(exc)
        return
    # a flip inside the weights' bytes still loads: the model works, with different weights
    assert ckpt.model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


class Boom:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/mnist-lab-pwned"),))


def test_foreign_pickles_are_refused_without_running_them(tmp_path):
    Path("/tmp/mnist-lab-pwned").unlink(missing_ok=True)
    cases = {
        "code.pt": {"format": "mnist-lab", "state_dict": Boom()},
        "list.pt": [1, 2, 3],
        "bare_state_dict.pt": build_model("perceptron").state_dict(),
    }
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
    (tmp_path / "plain_pickle.pt").write_bytes(pickle.dumps(Boom()))
    (tmp_path / "text.pt").write_text("not a checkpoint")
    for path in sorted(tmp_path.iterdir()):
        TRIED["checkpoints"] += 1
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
    assert not Path("/tmp/mnist-lab-pwned").exists()
