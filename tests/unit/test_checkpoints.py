import errno
import os

import pytest
import torch

from mnist_core.learn import checkpoints as C
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.models import build_model
from mnist_core.paths import checkpoints_dir, default_model_path


@pytest.fixture()
def saved(tmp_path):
    cfg = TrainConfig.from_dict(dict(model="cnn_2", epochs=1))
    torch.manual_seed(0)
    model = build_model("cnn_2", {"dropout": 0.1})
    model.eval()
    hist = {"batch_loss": [2.3, 1.2], "epochs": [{"epoch": 1, "val_acc": 0.91}]}
    path = C.save_checkpoint(model, cfg, None, hist, {"test_acc": 0.9876, "val_acc": 0.91})
    return path, model, cfg


def test_round_trip_rebuilds_model_from_file_alone(saved):
    path, model, cfg = saved
    assert path.parent == checkpoints_dir() and path.name.startswith("cnn_2-")
    assert path.name.endswith("-acc98.76.pt")
    ck = C.load_checkpoint(path)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(ck.model(x), model(x))
    assert ck.meta["model_args"]["dropout"] == 0.1 and ck.config == cfg
    assert ck.meta["history"]["batch_loss"] == [2.3, 1.2]
    assert ck.meta["dataset"]["mean"] == 0.1307 and "torch" in ck.meta["versions"]
    assert not ck.model.training


def test_atomic_save_leaves_no_temp_files_and_old_file_survives_a_full_disk(saved, monkeypatch):
    path, model, cfg = saved
    before = path.read_bytes()

    def disk_full(obj, fh):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C.torch, "save", disk_full)
    with pytest.raises(C.CheckpointError, match="No space left on device.*unchanged"):
        C.save_checkpoint(model, cfg, path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(p.read_bytes()[:3000]), "truncated or not a PyTorch file"),
        (lambda p: p.write_bytes(b"hello, I am not a checkpoint"), "truncated or not a PyTorch file"),
        (lambda p: torch.save({"w": torch.zeros(2)}, p), "not an MNIST Lab checkpoint"),
    ],
)
def test_damaged_files_give_clear_errors(saved, damage, needle):
    path, _, _ = saved
    damage(path)
    with pytest.raises(C.CheckpointError, match=needle):
        C.load_checkpoint(path)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/mnist_lab_pwned",))


def test_pickle_with_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": C.FORMAT, "payload": Evil()}, path)
    if os.path.exists("/tmp/mnist_lab_pwned"):
        os.remove("/tmp/mnist_lab_pwned")
    with pytest.raises(C.CheckpointError, match="refused"):
        C.load_checkpoint(path)
    assert not os.path.exists("/tmp/mnist_lab_pwned")


def test_weights_for_another_architecture(saved):
    path, _, _ = saved
    obj = torch.load(path, weights_only=True)
    obj["model_key"] = "cnn_basic"
    obj["model_args"] = C.REGISTRY["cnn_basic"].args
    torch.save(obj, path)
    with pytest.raises(C.CheckpointError, match="do not fit a 'cnn_basic' model"):
        C.load_checkpoint(path)


@pytest.mark.parametrize(
    "model_args,needle",
    [
        # 55.7 million parameters: over the bound configs get; refused before a weight exists
        ({"hidden": [70000]}, "give 55,650,010 parameters; the limit is 50,000,000"),
        ({"hidden": [-5]}, "model arguments for 'perceptron' are invalid"),
        ([70000], "its model arguments are a list, not a mapping"),
    ],
)
def test_crafted_model_arguments_are_refused_before_the_model_is_built(tmp_path, model_args, needle):
    """A file's metadata gets the parameter bound of a config: a crafted checkpoint cannot make
    the dashboard allocate a huge model (here it would be 220 MB, then fail to fit the weights)."""
    path = tmp_path / "crafted.pt"
    obj = C.describe(build_model("perceptron"), TrainConfig.from_dict(dict(model="perceptron", epochs=1)))
    obj["model_args"] = model_args
    torch.save(obj, path)
    with pytest.raises(C.CheckpointError, match="refused") as refused:
        C.load_checkpoint(path)
    assert needle in str(refused.value) and str(path) in str(refused.value)
    obj["model_key"] = "perceptron_xl"  # a key the registry does not know
    torch.save(obj, path)
    with pytest.raises(C.CheckpointError, match="'perceptron_xl', which this version does not know"):
        C.load_checkpoint(path)


def test_shipped_default_model_is_small_and_accurate():
    path = default_model_path()
    assert path.stat().st_size < 2_000_000
    ck = C.load_checkpoint(path)
    assert ck.meta["metrics"]["test_acc"] >= 0.993
