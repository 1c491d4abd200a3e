"""The command line, run the way a user runs it: as a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

from support import ROOT


def cli(*args, env=None, timeout=300):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mnist_core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def test_models_lists_registry_with_parameter_counts():
    out = cli("models")
    assert out.returncode == 0
    line = next(s for s in out.stdout.splitlines() if s.startswith("cnn_basic"))
    assert "421,642" in line
    assert all(key in out.stdout for key in ("perceptron", "better_cnn", "fast_cnn"))


def test_train_limit_then_evaluate(tmp_path):
    ckpt = tmp_path / "smoke.pt"
    out = cli(
        "train", "--model", "mlp_500_125", "--preset", "--epochs", "1", "--limit", "2000", "--out", str(ckpt)
    )
    assert out.returncode == 0, out.stderr
    assert "epoch 1/1" in out.stderr and "img/s" in out.stderr  # progress bar with live figures
    acc = float(next(s for s in out.stdout.splitlines() if s.startswith("test_accuracy=")).split("=")[1])
    assert acc > 0.8 and ckpt.is_file()
    ev = cli("evaluate", str(ckpt))
    assert ev.returncode == 0, ev.stderr
    lines = ev.stdout.strip().splitlines()
    assert lines[-1] == f"test_accuracy={acc:.4f}"
    assert "per-class accuracy" in ev.stdout and "true\\pred" in ev.stdout


def test_bad_flag_value_is_one_message_not_a_traceback():
    out = cli("train", "--model", "cnn_basic", "--lr", "-1")
    assert out.returncode == 2
    assert "learning rate must be above 0" in out.stderr and "Traceback" not in out.stderr


def test_missing_data_and_bad_checkpoint_are_clear(tmp_path):
    out = cli(
        "train",
        "--model",
        "perceptron",
        "--data-dir",
        str(tmp_path / "nothing"),
        env={"MNIST_LAB_OFFLINE": "1"},
        timeout=120,
    )
    # offline: the message names the variable and files
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "MNIST_DATA_DIR" in out.stderr and "train-images-idx3-ubyte.gz" in out.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 10)
    ev = cli("evaluate", str(bad))
    assert ev.returncode == 1 and "truncated or not a PyTorch file" in ev.stderr
    assert "Traceback" not in ev.stderr


def test_every_train_flag_has_help():
    out = cli("train", "--help")
    for flag in (
        "--lr",
        "--batch-size",
        "--weight-decay",
        "--label-smoothing",
        "--schedule",
        "--patience",
        "--val-fraction",
        "--rotate",
        "--erase",
        "--preset",
        "--limit",
        "--threads",
    ):
        assert flag in out.stdout
    assert "learning rate (peak rate for onecycle) (default: 0.001)" in " ".join(out.stdout.split())


def test_the_installed_console_script_is_the_same_cli(tmp_path):
    """`pip install -e .` puts `mnist-lab` beside the interpreter; it works from any folder."""
    script = Path(sys.executable).parent / "mnist-lab"
    out = subprocess.run([str(script), "models"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == cli("models").stdout
    usage = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=300).stdout
    assert usage.startswith("usage: mnist-lab")


def test_lesson_lists_shows_runs_and_judges_like_the_page(tmp_path):
    env = {"MNIST_LAB_CHECKPOINTS": str(tmp_path / "store"), "MNIST_LAB_LESSON_IMAGES": "500"}
    listing = cli("lesson", env=env)
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) == 8
    assert "confusion" in listing.stdout and "not started" in listing.stdout
    shown = cli("lesson", "confusion", env=env)
    assert shown.returncode == 0 and "--predict 49" in shown.stdout and "Another pair" in shown.stdout
    bad = cli("lesson", "confusion", "--predict", "maybe", env=env)
    assert bad.returncode == 2 and "not one of this lesson's answers" in bad.stderr
    done = cli("lesson", "confusion", "--predict", "49", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(("right: ", "measured otherwise: ")) and "mistakes" in done.stdout
    after = cli("lesson", env=env).stdout
    assert any(
        line.split()[1] == "confusion" and ("right" in line or "otherwise" in line)
        for line in after.splitlines()
    )
