import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from mnist_core.data.mnist import make_splits
from mnist_core.learn import device as D
from mnist_core.learn import engine as T
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.models import build_model


def small(mnist, **kw):
    cfg = TrainConfig.from_dict(dict(dict(model="mlp_128_64", epochs=2, batch_size=64, limit=3000), **kw))
    return cfg, make_splits(mnist, cfg.val_fraction, cfg.seed, cfg.limit)


class Recorder:
    def __init__(self):
        self.events = []

    def on_batch_end(self, s):
        self.events.append(("batch", s.epoch, s.batch))

    def on_epoch_end(self, s):
        self.events.append(("epoch", s.epoch, dict(s.last)))

    def on_fit_end(self, s):
        self.events.append(("end", s.epoch, None))


def test_short_real_fit_learns_and_records_everything(mnist):
    rec = Recorder()
    result = T.train_model(
        TrainConfig.from_dict(
            dict(model="fast_cnn", epochs=2, limit=4000, batch_size=64, schedule="onecycle", lr=5e-3)
        ),
        [rec],
        mnist=mnist,
    )
    assert result.metrics.test_acc > 0.93
    hist = result.state.history
    assert len(hist["batch_loss"]) == 2 * math.ceil(4000 / 64)
    first = hist["epochs"][0]
    assert set(first) >= {
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "images_per_s",
        "elapsed_s",
        "eta_s",
    }
    assert hist["epochs"][1]["val_loss"] < first["val_loss"]
    assert [e[0] for e in rec.events].count("epoch") == 2 and rec.events[-1][0] == "end"


def test_same_seed_same_curves(mnist):
    runs = []
    for _ in range(2):
        cfg, data = small(mnist, model="cnn_1", epochs=1, limit=640, rotate=10.0, erase=0.3)
        torch.manual_seed(cfg.seed)
        runs.append(T.fit(build_model(cfg.model), data, cfg).history)
    assert runs[0]["batch_loss"] == runs[1]["batch_loss"]
    assert runs[0]["epochs"][0]["val_loss"] == runs[1]["epochs"][0]["val_loss"]


def test_stop_flag_ends_mid_epoch(mnist):
    cfg, data = small(mnist, epochs=3)
    rec = Recorder()
    state = T.fit(build_model(cfg.model), data, cfg, [rec], stop=lambda: len(rec.events) >= 5)
    assert state.stopped and state.epoch == 1 and state.batch == 5
    assert state.history["epochs"] == []  # the unfinished epoch is not reported as done


@pytest.mark.parametrize(
    "optimizer,schedule", [("sgd", "step"), ("adam", "cosine"), ("adamw", "onecycle"), ("sgd", "constant")]
)
def test_optimizers_and_schedules_run(mnist, optimizer, schedule):
    cfg, data = small(
        mnist,
        epochs=2,
        limit=512,
        optimizer=optimizer,
        schedule=schedule,
        step_size=1,
        nesterov=optimizer == "sgd",
        lr=0.01,
        label_smoothing=0.1,
        weight_decay=1e-4,
    )
    state = T.fit(build_model(cfg.model), data, cfg)
    lrs = [e["lr"] for e in state.history["epochs"]]
    if schedule == "constant":
        assert lrs == [0.01, 0.01]
    else:
        assert lrs[1] < 0.01


class LearningRates:
    """The learning rate each batch trained with (read after the batch: the next one's rate)."""

    def __init__(self):
        self.after = []

    def on_batch_end(self, s):
        self.after.append(s.optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle"])
def test_the_schedule_preview_is_the_learning_rate_a_run_trains_with(mnist, schedule):
    cfg, data = small(mnist, epochs=3, limit=640, schedule=schedule, step_size=1, gamma=0.3, lr=0.01)
    seen = LearningRates()
    T.fit(build_model(cfg.model), data, cfg, [seen])
    steps = len(seen.after)
    assert steps == 3 * math.ceil(len(data.train_y) / cfg.batch_size)
    epochs, lrs = T.lr_schedule(cfg, points=steps)
    assert len(epochs) == steps + 1 and epochs[0] == 0 and epochs[-1] == 3
    assert lrs[1:steps] == pytest.approx(seen.after[: steps - 1], rel=1e-6)
    if schedule == "step":
        assert lrs[0] == 0.01 and lrs[-1] == pytest.approx(0.01 * 0.3**2)


def test_early_stopping_restores_best_weights(mnist, monkeypatch):
    """Validation losses 1.0, 0.5, 0.7, 0.8: patience 2 stops after epoch 4 and restores epoch 2."""
    losses = iter([1.0, 0.5, 0.7, 0.8, 0.9, 1.0])
    monkeypatch.setattr(T, "evaluate", lambda *a, **k: {"loss": next(losses), "accuracy": 0.5})
    cfg, data = small(mnist, epochs=6, limit=256, patience=2)
    snapshots = {}

    class Snap:
        def on_epoch_end(self, s):
            snapshots[s.epoch] = {k: v.clone() for k, v in s.model.state_dict().items()}

    model = build_model(cfg.model)
    state = T.fit(model, data, cfg, [Snap()])
    assert state.early_stopped and state.epoch == 4 and state.best_epoch == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[2][k])
    assert not torch.equal(model.state_dict()["net.1.weight"], snapshots[4]["net.1.weight"])


def test_nan_loss_is_a_learner_friendly_error(mnist):
    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x.flatten(1)[:, :10] * self.w * float("inf")

    cfg, data = small(mnist, limit=128)
    with pytest.raises(T.TrainingError, match="training diverged.*smaller learning rate"):
        T.fit(Exploding(), data, cfg)


def test_device_choice():
    assert D.pick_device("cpu").type == "cpu"
    assert D.pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(D.DeviceError, match="no CUDA GPU"):
            D.pick_device("cuda")


def test_auto_precision_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(D, "_CPU_FLAGS", frozenset({"avx512f", "avx512_bf16"}))
    assert D.choose_precision("auto", cpu) == ("bf16", "auto: this CPU runs bf16 natively (avx512_bf16)")
    assert D.choose_precision("fp32", cpu)[0] == "fp32"
    monkeypatch.setattr(D, "_CPU_FLAGS", frozenset({"avx2", "fma"}))
    name, why = D.choose_precision("auto", cpu)
    assert name == "fp32" and "no native bf16" in why
    emulated = "bf16 as asked (emulated on this cpu: slower than fp32)"
    assert D.choose_precision("bf16", cpu) == ("bf16", emulated)
    monkeypatch.setattr(D, "_CPU_FLAGS", None)  # and on this machine, from /proc/cpuinfo
    native = "avx512_bf16" in open("/proc/cpuinfo").read() or "amx_bf16" in open("/proc/cpuinfo").read()
    assert D.choose_precision("auto", cpu)[0] == ("bf16" if native else "fp32")
    assert TrainConfig().precision == "auto"


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adamw"])
def test_the_eager_step_updates_exactly_as_optimizer_step(mnist, monkeypatch, optimizer):
    cfg = TrainConfig.for_model(
        "cnn_basic",
        optimizer=optimizer,
        nesterov=optimizer == "sgd",
        epochs=2,
        limit=320,
        batch_size=32,
        schedule="onecycle",
        weight_decay=1e-4,
    )
    data = make_splits(mnist, cfg.val_fraction, cfg.seed, cfg.limit)
    weights = []
    for eager in (True, False):
        if not eager:  # the optimizer's own, wrapped step
            monkeypatch.setattr(T, "eager_step", lambda opt: opt.step)
        torch.manual_seed(0)
        model = build_model(cfg.model)
        state = T.fit(model, data, cfg)
        weights.append(model.state_dict())
        assert state.optimizer.state_dict()["state"]  # the update kept its state (step counts, moments)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_fresh_process_trains_without_importing_the_compiler():
    import subprocess
    import sys

    code = (
        "import sys\nfrom mnist_core.learn.config import TrainConfig\n"
        "from mnist_core.learn.engine import train_model\n"
        "r = train_model(TrainConfig.for_model('mlp_128_64', epochs=1, limit=500, schedule='onecycle'))\n"
        "r.state.optimizer.state_dict()\nprint('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"  # 2.4 s that every fresh training process saves


FAULTS_PER_STEP = """
import resource, sys, torch
from mnist_core.learn import engine as train
if sys.argv[1] == "fit":  # what a run does: fit tunes the allocator before its first step
    from mnist_core.learn.config import TrainConfig
    from mnist_core.data.mnist import Splits
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    train.fit(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)),
              Splits(x, y, x[:0], y[:0], x, y, y[:0]),
              TrainConfig(model="perceptron", epochs=1, batch_size=8))
torch.empty(2 * 1024 * 1024).fill_(1.0)  # the first step's memory is faulted in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # a step's worth of activations: 8 MiB allocated, written and freed
    torch.empty(2 * 1024 * 1024).fill_(1.0)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator is tuned")
def test_fit_keeps_freed_tensor_memory_for_the_next_step_instead_of_faulting_it_in_again():
    def faults(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return float(out.stdout.split()[-1])

    untuned, tuned = faults("plain"), faults("fit")
    print(f"page faults per 8 MiB tensor: {untuned:.0f} untuned, {tuned:.0f} after fit")
    # a fresh mapping faults its pages in as it is written: 2,048 of 4 KiB, fewer where the kernel
    # hands out huge pages (100-511 seen here)
    assert untuned > 50
    assert tuned < untuned / 20
