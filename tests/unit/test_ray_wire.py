"""What a cluster node may send the driver, without a cluster: an honest node's records pass;
crafted ones (a Python object, a pickle with code, another model, a wrong parameter count, a
skipped epoch, a bloated resume file) are refused with the reason, before anything is written.
The driver runs exactly these checks on every frame (tests/ray/test_ray_auth.py drives it)."""

import io
from pathlib import Path

import pytest
import torch

from mnist_core.jobs.ray import wire
from mnist_core.learn.checkpoints import describe, describe_resume
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.models import build_model

CONFIG = TrainConfig.from_dict(dict(model="perceptron", epochs=2, limit=500)).to_dict()
TEST_METRICS = dict(
    test_loss=0.3,
    confusion=[[90] * 10] * 10,
    per_class_accuracy=[0.9] * 10,
    best_epoch=2,
    early_stopped=False,
)


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def epoch_files(model=None, epoch: int = 1, config: dict = CONFIG) -> tuple[bytes, bytes]:
    """An epoch's (resume, checkpoint) bytes as an honest node makes them (worker.epoch_files)."""
    cfg = TrainConfig.from_dict(config)
    model = model or build_model(cfg.model, cfg.model_args)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(2, 1, 28, 28)).sum().backward()
    optimizer.step()  # Adam's state: two tensors per parameter
    resume = describe_resume(optimizer, None, epoch, 16)
    checkpoint = describe(model, cfg, {"epochs": []}, {"val_acc": 0.5}, dict(epoch=epoch, step=16))
    return saved(resume), saved(checkpoint)


def epoch_frame(
    epoch: int = 1, resume: bytes | None = None, checkpoint: bytes | None = None, **record
) -> bytes:
    honest_resume, honest_checkpoint = epoch_files(epoch=epoch)
    rec = dict(epoch=epoch, train_loss=0.5, train_acc=0.8, lr=0.01, images_per_s=900.0, eta_s=None, **record)
    return wire.encode(
        dict(kind="epoch", record=rec, best=True),
        resume=honest_resume if resume is None else resume,
        checkpoint=honest_checkpoint if checkpoint is None else checkpoint,
    )


def checked(frame, epochs_done: int = 0) -> dict:
    return wire.check(*wire.decode(frame), CONFIG, epochs_done)


def test_an_honest_nodes_records_pass_unchanged():
    resume, checkpoint = epoch_files()
    frame = wire.encode(
        dict(kind="epoch", record=dict(epoch=1, train_loss=0.5, images_per_s=900.0), best=False),
        resume=resume,
        checkpoint=checkpoint,
    )
    msg = checked(frame)
    assert msg["resume"] == resume and msg["checkpoint"] == checkpoint  # written exactly as sent
    assert msg["record"]["epoch"] == 1 and msg["best"] is False
    rows = [[1, 1, 2.3, 1.7e9], [2, 1, float("nan"), 1.7e9]]  # a diverging loss is a number too
    batches = checked(wire.encode(dict(kind="batches", rows=rows, progress=dict(step=2, images_per_s=None))))
    assert batches["rows"][0] == (1, 1, 2.3, 1.7e9)
    done = dict(kind="done", stopped=False, epochs_run=2, test_acc=0.9, test_metrics=TEST_METRICS)
    assert checked(wire.encode(done))["test_metrics"] == TEST_METRICS
    node = checked(wire.encode(dict(kind="node", node_id="ab" * 20, address="10.0.0.2", host="n1", gpus="")))
    assert node["host"] == "n1" and node["precision"] is None


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(
    "frame,needle",
    [
        ({"kind": "done"}, "a dict instead of a bytes record"),
        (b"\x80\x04K\x01.", "not an MNIST Lab node record"),
        (wire.MAGIC + (10**12).to_bytes(8, "big") + b"{}", "header claims 1,000,000,000,000 bytes"),
        (wire.MAGIC + (3).to_bytes(8, "big") + b"{x}", "header is not JSON"),
        (wire.encode(dict(kind="exec", code="rm -rf /")), "unknown kind 'exec'"),
        (wire.encode(dict(kind="epoch"), resume=b"12")[:-1], "do not add up"),
    ],
)
def test_what_is_not_a_frame_is_refused(frame, needle):
    with pytest.raises(wire.Refused, match=needle):
        checked(frame)


def test_a_checkpoint_that_is_a_pickle_with_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    for part in ("checkpoint", "resume"):
        crafted = saved({"format": "mnist-lab-checkpoint", "payload": Evil(marker)})
        with pytest.raises(wire.Refused, match=f"a {part}.* that is not plain tensors and data"):
            checked(epoch_frame(**{part: crafted}))
    assert not marker.exists()


def crafted_checkpoint(**changes) -> bytes:
    obj = torch.load(io.BytesIO(epoch_files()[1]), weights_only=True)
    for key, value in changes.items():
        if key == "state":
            obj["state_dict"].update(value)
        else:
            obj[key] = value
    return saved(obj)


big = TrainConfig.from_dict(dict(model="deep", epochs=2)).to_dict()


@pytest.mark.parametrize(
    "checkpoint,needle",
    [
        (crafted_checkpoint(model_key="cnn_basic"), "model 'cnn_basic', not the run's 'perceptron'"),
        (crafted_checkpoint(model_key="os.system"), "model 'os.system'"),
        (crafted_checkpoint(model_args={"hidden": [10**9]}), "model arguments {'hidden': [1000000000]}"),
        (crafted_checkpoint(config=big), "config is not the run's"),
        (crafted_checkpoint(format="other"), "without the MNIST Lab header"),
        # one more output unit: 7,851 numbers where the run's model has 7,850
        (
            crafted_checkpoint(state={"net.1.bias": torch.zeros(11)}),
            "7,851 numbers where the run's model has 7,850",
        ),
        # the same count, another shape
        (crafted_checkpoint(state={"net.1.weight": torch.zeros(784, 10)}), "of shape (784, 10)"),
        (
            crafted_checkpoint(state={"net.1.weight": torch.zeros(10, 784, dtype=torch.float64)}),
            "torch.float64 where the run's model has (10, 784) torch.float32",
        ),
        (crafted_checkpoint(state={"extra": torch.zeros(1)}), "tensors are not the model's"),
        (epoch_files(config=big)[1], "not the run's 'perceptron'"),
    ],
)
def test_a_checkpoint_for_another_model_is_refused(checkpoint, needle):
    with pytest.raises(wire.Refused) as refused:
        checked(epoch_frame(checkpoint=checkpoint))
    assert needle in str(refused.value), str(refused.value)


def test_crafted_epoch_records_and_resume_files_are_refused():
    with pytest.raises(wire.Refused, match="epoch 3 where epoch 1 was due"):
        checked(epoch_frame(epoch=3))
    with pytest.raises(wire.Refused, match="epoch 1 where epoch 2 was due"):  # an epoch sent twice
        checked(epoch_frame(epoch=1), epochs_done=1)
    for odd in ({"nested": "object"}, "0.9", True):  # a string would break the log line's format
        with pytest.raises(wire.Refused, match="not plain numbers"):
            checked(epoch_frame(val_acc=odd))
    bloated = describe_resume(torch.optim.SGD([torch.zeros(1, requires_grad=True)]), None, 1, 16)
    bloated["optimizer"]["state"] = {0: {"momentum_buffer": torch.zeros(40_000)}}
    with pytest.raises(wire.Refused, match="holding 40,000 numbers for a model of 7,850"):
        checked(epoch_frame(resume=saved(bloated)))
    with pytest.raises(wire.Refused, match="resume file for another epoch"):
        checked(epoch_frame(resume=epoch_files(epoch=2)[0]))


@pytest.mark.parametrize(
    "msg,needle",
    [
        (dict(kind="batches", rows=[[1, 1, "2.3", 0.0]], progress={}), "is not (step, epoch, loss, time)"),
        (dict(kind="batches", rows=[[True, 1, 2.3, 0.0]], progress={}), "is not (step, epoch, loss, time)"),
        (dict(kind="batches", rows=[], progress={"step": [1]}), "progress report that is not numbers"),
        (dict(kind="node", node_id=["x"], address="a", host="h", gpus=""), "text field holding a list"),
        (dict(kind="done", stopped="no", epochs_run=1, test_metrics={}), "without its counts"),
        (
            dict(
                kind="done",
                stopped=False,
                epochs_run=1,
                test_metrics={**TEST_METRICS, "confusion": [[1] * 10] * 9},
            ),
            "test metrics that are not the test pass's figures",
        ),
        (
            dict(kind="done", stopped=False, epochs_run=1, test_metrics={**TEST_METRICS, "html": "<script>"}),
            "test metrics that are not the test pass's figures",
        ),
    ],
)
def test_crafted_progress_is_refused(msg, needle):
    with pytest.raises(wire.Refused) as refused:
        checked(wire.encode(msg))
    assert needle in str(refused.value)
