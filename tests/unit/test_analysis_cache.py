"""The evaluation cache on disk (mnist_core.analysis.cache): hits, misses, damage and a disk that
refuses writes; and the per-class metrics it recomputes without scikit-learn."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support

from mnist_core import warmup
from mnist_core.analysis import cache as analysis_cache
from mnist_core.learn import device as D
from mnist_core.learn import engine as T
from mnist_core.learn.checkpoints import save_checkpoint
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.evaluate import confusion_matrix, per_class_metrics, predict_logits
from mnist_core.learn.models import build_model
from support import ROOT
from support.tmpfs import fill, require_mount, tmpfs


def tiny_checkpoint(path, seed: int):
    """A small untrained MLP (its evaluation of 10,000 digits takes milliseconds)."""
    torch.manual_seed(seed)
    model = build_model("mlp_128_64")
    return save_checkpoint(model, TrainConfig.for_model("mlp_128_64", epochs=1, seed=seed), path)


@pytest.fixture()
def computed(monkeypatch, tmp_path):
    """A fresh cache folder and memory; the list gets one entry per evaluation actually computed."""
    monkeypatch.setenv("MNIST_LAB_CACHE", str(tmp_path / "cache"))
    analysis_cache.clear_cache()
    calls = []
    real = analysis_cache.analyse
    monkeypatch.setattr(analysis_cache, "analyse", lambda *a: calls.append(1) or real(*a))
    yield calls
    analysis_cache.clear_cache()


def entries():
    folder = analysis_cache.cache_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def same(a, b) -> bool:
    return (
        torch.equal(a.y_pred, b.y_pred)
        and torch.equal(a.probs, b.probs)
        and torch.equal(a.confusion, b.confusion)
        and a.per_class == b.per_class
        and a.accuracy == b.accuracy
        and torch.equal(a.images, b.images)
    )


def test_a_restart_reads_the_evaluation_from_disk(computed, mnist, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", 0)
    first = analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    assert len(computed) == 1 and entries() == [f"{analysis_cache.content_hash(ckpt)}-test.npz"]
    analysis_cache.clear_cache()  # what a new server process starts with
    again = analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    assert len(computed) == 1 and same(first, again)
    # the validation split is its own entry, carved with the run's own seed
    val = analysis_cache.evaluate_checkpoint(ckpt, "val", mnist)
    analysis_cache.clear_cache()
    assert same(val, analysis_cache.evaluate_checkpoint(ckpt, "val", mnist)) and len(computed) == 2
    assert len(val.y_true) == 6000


def test_a_changed_checkpoint_is_evaluated_again(computed, mnist, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", 0)
    before = analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    tiny_checkpoint(ckpt, 1)  # new weights under the same name
    after = analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    assert len(computed) == 2 and not torch.equal(before.probs, after.probs)
    assert len(entries()) == 2
    # the same bytes under another name (best.pt beside its epoch file) share the entry
    twin = tmp_path / "best.pt"
    twin.write_bytes(ckpt.read_bytes())
    assert same(analysis_cache.evaluate_checkpoint(twin, "test", mnist), after) and len(computed) == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"not a zip file"),
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),  # truncated
        lambda p: p.write_bytes(b""),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_a_damaged_entry_is_computed_again_and_rewritten(computed, mnist, tmp_path, damage):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", 0)
    good = analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    entry = analysis_cache.entry_path(analysis_cache.content_hash(ckpt), "test")
    damage(entry)
    analysis_cache.clear_cache()
    assert same(analysis_cache.evaluate_checkpoint(ckpt, "test", mnist), good) and len(computed) == 2
    analysis_cache.clear_cache()
    analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    assert len(computed) == 2  # the rewritten entry is read


def test_an_entry_for_other_labels_is_not_trusted(computed, mnist, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", 0)
    analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    analysis_cache.clear_cache()
    relabelled = type(mnist)(**{**vars(mnist), "test_labels": mnist.test_labels.roll(1)})
    result = analysis_cache.evaluate_checkpoint(ckpt, "test", relabelled)
    assert len(computed) == 2 and torch.equal(result.y_true, relabelled.test_labels)


@pytest.mark.parametrize("refusal", ["full", "read-only"])
def test_a_disk_that_refuses_the_entry_only_costs_the_cache(computed, mnist, tmp_path, monkeypatch, refusal):
    require_mount()
    ckpt = tiny_checkpoint(tmp_path / "m.pt", 0)
    with tmpfs(1) as mnt:
        monkeypatch.setenv("MNIST_LAB_CACHE", str(mnt / "cache"))
        if refusal == "full":
            fill(mnt)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        first = analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
        analysis_cache.clear_cache()
        again = analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
        assert same(first, again) and len(computed) == 2  # computed twice: nothing was kept
        left = list((mnt / "cache").rglob("*")) if (mnt / "cache").exists() else []
        assert [p for p in left if p.is_file()] == []  # no partial or temporary file


def test_a_runs_test_accuracy_is_what_its_checkpoint_shows_in_its_own_precision(computed, mnist, tmp_path):
    """Inference computes in the run's own precision (bf16 autocast where it trained in bf16): the
    test pass at its end, and the Evaluate page's evaluation of its checkpoint, agree."""
    cfg = TrainConfig.for_model("fast_cnn", epochs=1, limit=3000, val_fraction=0.1, precision="bf16")
    result = T.train_model(cfg, mnist=mnist)
    ckpt = save_checkpoint(result.model, cfg, tmp_path / "bf16.pt")
    shown = analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    assert shown.accuracy == result.metrics.test_acc and len(computed) == 1
    x = shown.images[:500]
    with torch.autocast("cpu", torch.bfloat16):
        autocast = result.model.eval()(x.contiguous(memory_format=torch.channels_last)).float()
    assert torch.equal(predict_logits(result.model, x, precision="bf16"), autocast)
    assert not torch.equal(predict_logits(result.model, x), autocast)  # fp32 is another computation
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        predict_logits(result.model, x, precision="fp16")


def test_an_entry_computed_in_another_precision_is_computed_again(computed, mnist, tmp_path, monkeypatch):
    """ "auto" resolves per machine: a cache entry made where it meant bf16 is not trusted where it
    means fp32 (a cache folder copied between machines, a CPU flag the VM stopped passing on)."""
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model("fast_cnn"), TrainConfig.for_model("fast_cnn"), tmp_path / "a.pt")
    monkeypatch.setattr(D, "_CPU_FLAGS", frozenset({"avx512_bf16"}))
    analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    analysis_cache.clear_cache()
    analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    assert len(computed) == 1  # same machine, same precision: read from disk
    monkeypatch.setattr(D, "_CPU_FLAGS", frozenset({"avx2"}))
    analysis_cache.clear_cache()
    analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    assert len(computed) == 2


def test_per_class_metrics_equal_sklearns():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (3000,), generator=g)
    pred = torch.where(torch.rand(3000, generator=g) < 0.7, y, torch.randint(0, 10, (3000,), generator=g))
    pred[pred == 4] = 5  # a digit never predicted: its precision has nothing to divide by
    ours = per_class_metrics(confusion_matrix(y, pred))
    p, r, f, s = precision_recall_fscore_support(
        y.numpy(), pred.numpy(), labels=list(range(10)), zero_division=0
    )
    for key, theirs in (("precision", p), ("recall", r), ("f1", f), ("support", s)):
        assert np.allclose([row[key] for row in ours], theirs, atol=1e-12), key
    assert ours[4]["precision"] == 0.0 and ours[4]["f1"] == 0.0


def test_the_warm_up_leaves_the_default_models_evaluation_ready(computed, mnist, monkeypatch, tmp_path):
    monkeypatch.setattr(warmup, "_THREAD", None)  # as in a fresh process
    ckpt = tiny_checkpoint(tmp_path / "default.pt", 0)
    assert not analysis_cache.cached(ckpt)
    thread = warmup.start(ckpt)
    assert thread is not None and warmup.start(ckpt) is None  # once per process
    thread.join(120)
    assert analysis_cache.cached(ckpt) and entries() == [f"{analysis_cache.content_hash(ckpt)}-test.npz"]
    analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
    assert len(computed) == 1  # the page found it ready


def test_a_process_that_ends_during_its_warm_up_exits_cleanly(tmp_path):
    """Stopped in its first seconds (Ctrl-C on a fresh server, a short test process), a process
    used to abort while the warm-up thread still evaluated the default model: "terminate called
    without an active exception", exit status 134. The exit now ends the evaluation at its next
    batch (nothing half-done is cached) and waits for that."""
    script = (  # exits while the warm-up thread is inside the evaluation of the default model
        "import sys, time\n"
        "from mnist_core import warmup\n"
        "thread = warmup.start('checkpoints/default.pt')\n"
        "def evaluating():\n"
        "    frame = sys._current_frames().get(thread.ident)\n"
        "    while frame is not None and frame.f_code.co_name != 'analyse':\n"
        "        frame = frame.f_back\n"
        "    return frame is not None\n"
        "deadline = time.monotonic() + 120\n"
        "while not evaluating() and time.monotonic() < deadline:\n"
        "    time.sleep(0.005)\n"
        "assert evaluating(), 'the warm-up never evaluated'\n"
    )
    env = {**os.environ, "MNIST_LAB_CACHE": str(tmp_path / "cache")}  # nothing on disk: computed
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    assert not list((tmp_path / "cache").rglob("*-test.npz"))  # the evaluation ended unfinished


def test_memory_is_bounded_in_bytes_and_the_least_recently_used_goes(computed, mnist, tmp_path, monkeypatch):
    """A class opening checkpoint after checkpoint: what the server keeps stays within
    $MNIST_LAB_CACHE_MB, whatever the number of entries, and the one used longest ago goes first."""
    from mnist_core.analysis import memory

    monkeypatch.setenv(memory.BUDGET_ENV, "2")  # MB: about three test-set evaluations
    budget = memory.budget_bytes()
    assert budget == 2 * 2**20
    ckpts = [tiny_checkpoint(tmp_path / f"m{i}.pt", i) for i in range(6)]
    first = analysis_cache.evaluate_checkpoint(ckpts[0], "test", mnist)
    size = memory.nbytes(first)
    # an entry weighs its predictions and probabilities (10,000 x 10), not the shared 31 MB of images
    assert first.probs.numel() * 4 < size < 2 * first.probs.numel() * 4 + 2**18
    for ckpt in ckpts[1:]:
        analysis_cache.evaluate_checkpoint(ckpt, "test", mnist)
        analysis_cache.evaluate_checkpoint(ckpts[1], "test", mnist)  # m1 is used again and again
        assert memory.memory_bytes() <= budget
    assert memory.memory_bytes() > budget - 2 * size  # full, not emptied
    assert not analysis_cache.cached(ckpts[0])  # used longest ago: gone
    assert analysis_cache.cached(ckpts[1]) and analysis_cache.cached(ckpts[5])
    # an entry larger than the whole budget (a validation split holds its own 6,000 images) is
    # handed back, not kept
    val = analysis_cache.evaluate_checkpoint(ckpts[2], "val", mnist)
    assert memory.nbytes(val) > budget and not analysis_cache.cached(ckpts[2], "val")
    assert memory.memory_bytes() <= budget and analysis_cache.cached(ckpts[5])


def test_sizes_are_estimated_for_arrays_tensors_figures_and_models():
    import plotly.graph_objects as go

    from mnist_core.analysis import memory

    a = np.zeros((1000, 1000), np.float32)
    t = torch.zeros(500, 1000)
    assert 4e6 <= memory.nbytes(a) < 4e6 + 1000 and memory.nbytes([a, a[:10], a]) < 4e6 + 1000  # views once
    assert 2e6 <= memory.nbytes({"t": t, "view": t[:5]}) < 2e6 + 1000
    fig = go.Figure(go.Scatter(x=np.arange(50_000.0), y=np.arange(50_000.0)))
    assert memory.nbytes(fig) >= 2 * 50_000 * 8
    model = build_model("better_cnn")
    params = sum(p.numel() * 4 for p in model.parameters())
    assert params <= memory.nbytes(model) < params * 1.05
    assert memory.nbytes(None) < 100


def test_a_bad_budget_setting_falls_back_to_the_default(monkeypatch):
    from mnist_core.analysis import memory

    for value in ("lots", "nan", ""):
        monkeypatch.setenv(memory.BUDGET_ENV, value)
        assert memory.budget_bytes() == memory.DEFAULT_BUDGET_MB * 2**20
    monkeypatch.setenv(memory.BUDGET_ENV, "0")
    assert memory.budget_bytes() == 0
    assert memory.remember(("k",), np.zeros(10)) is not None and not memory.in_memory(("k",))
