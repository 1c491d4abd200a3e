"""A completed run with many epochs, written cheaply through the worker's own epoch writer.

A model saved N times (no training): epoch e's weights are the same random weights times scale(e),
so a test can tell from a weight which epoch's file was read, and how far the weights moved between
two epochs. Used by the Inside tests and by benchmarks/worst_case.py."""

from __future__ import annotations

import time

import torch

from mnist_core.jobs.store import RunStore
from mnist_core.jobs.worker import save_epoch
from mnist_core.learn.checkpoints import describe
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.models import build_model


def scale(epoch: int) -> float:
    """What epoch `epoch`'s weights are, times the first random weights (1.001 to 2 over 1,000
    epochs: a deep model's activations stay finite)."""
    return 1 + epoch / 1000


def long_run(store: RunStore, epochs: int = 1000, model: str = "perceptron", seed: int = 0) -> str:
    """The id of a completed run of `model` with `epochs` epoch checkpoints in `store`."""
    config = TrainConfig.for_model(model, epochs=epochs, limit=10, seed=seed)
    run = store.create(config.to_dict())
    store.update(run.id, status="running")
    torch.manual_seed(seed)
    net = build_model(model)
    base = {k: v.clone() for k, v in net.state_dict().items()}
    for epoch in range(1, epochs + 1):
        with torch.no_grad():
            for name, value in net.state_dict().items():
                if value.is_floating_point():
                    value.copy_(base[name] * scale(epoch))
        record = dict(epoch=epoch, train_loss=1 / epoch, val_acc=0.5 + epoch / (4 * epochs), images_per_s=1e3)
        checkpoint = describe(net, config, metrics={"val_acc": record["val_acc"]}, extra=dict(epoch=epoch))
        save_epoch(store, run.id, record, {"epoch": epoch}, checkpoint, epoch == epochs)
    store.update(run.id, status="completed", finished=time.time())
    return run.id
