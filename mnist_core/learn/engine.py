"""The training engine: a model-agnostic `fit` with callbacks, schedules and early stopping."""

from __future__ import annotations

import copy
import inspect
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TextIO

import torch
from torch import nn

from ..data.augment import augment_batch
from ..data.mnist import Splits, batches, load_mnist, make_splits
from .config import TrainConfig
from .device import choose_precision, pick_device, reuse_freed_memory, run_precision
from .evaluate import evaluate
from .metrics import TrainMetrics, eta_seconds, fraction_done
from .models import build_model, memory_format


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, say); the message is meant for a learner."""


class Diverged(TrainingError):
    """The loss became NaN or infinite: the run ends with this clear reason, its curves kept."""

    def __init__(self, message: str, epoch: int, batch: int):
        super().__init__(message)
        self.epoch, self.batch = epoch, batch


RANGE_SPAN = 1e-5  # the LR range test sweeps from lr * RANGE_SPAN up to lr
RANGE_EXPLODED = 4.0  # ... and ends once a batch loss exceeds this many times the lowest so far


def range_lr(lr: float, step: int, total: int) -> float:
    """The learning rate of batch `step` (0-based) of `total` in an LR range test: exponential."""
    return lr * RANGE_SPAN ** (1 - step / max(total - 1, 1))


def _never_compiled() -> None:
    """torch.optim imports PyTorch's compiler (torch._dynamo: 2.4 s on a 2-core laptop, as long as
    importing PyTorch itself) the first time an optimizer is built, saved or zeroed, only to mark
    those methods "do not compile". This engine never compiles, so each mark is resolved once to
    the plain method, which is what the compiler's `disable` runs outside compilation anyway."""
    for cls in (torch.optim.Optimizer, *OPTIMIZERS.values()):
        for fn in vars(cls).values():
            raw = getattr(fn, "__wrapped__", None)
            if callable(raw) and hasattr(raw, "__code__"):
                raw.__dict__.setdefault("__dynamo_disable", raw)


OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def eager_step(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """`optimizer.step()` without its wrapper, which imports the compiler on every call to mark a
    graph break: the optimizer's own update under no_grad (what the wrapper runs outside
    compilation). It also tells a scheduler that the optimizer stepped, as the wrapper would."""
    update = inspect.unwrap(type(optimizer).step)

    def step() -> None:
        with torch.no_grad():
            update(optimizer)
        optimizer._opt_called = True  # type: ignore[attr-defined]  # what LRScheduler checks

    return step


def make_optimizer(cfg: TrainConfig, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    _never_compiled()
    params = list(params)
    kinds = OPTIMIZERS
    kwargs: dict = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        kwargs.update(momentum=cfg.momentum, nesterov=cfg.nesterov)
    try:  # one fused kernel per step instead of a loop over parameters (~10% on cnn_basic)
        return kinds[cfg.optimizer](params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return kinds[cfg.optimizer](params, **kwargs)


def make_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int, epochs: int | None = None):
    """Every schedule steps once per batch, so stopping mid-epoch leaves a consistent state."""
    total = (epochs or cfg.epochs) * steps_per_epoch
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size * steps_per_epoch, cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=total, pct_start=0.25)
    if cfg.schedule == "range":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: range_lr(1.0, min(step, total - 1), total)
        )
    return None


def lr_schedule(cfg: TrainConfig, points: int = 120) -> tuple[list[float], list[float]]:
    """(epoch, learning rate) at about `points` evenly spaced batches of a run of `cfg`: its own
    optimizer and scheduler, stepped with nothing to update (the Train page's preview). With as many
    points as the run has batches, these are its rates exactly; with fewer, the same curve (every
    schedule is defined in fractions of the run, OneCycle's turn to within a batch)."""
    per_epoch = max(1, points // cfg.epochs)
    param = torch.zeros(1, requires_grad=True)  # no gradient: the optimizer's steps change nothing
    optimizer = make_optimizer(cfg, [param])
    scheduler, update = make_scheduler(cfg, optimizer, per_epoch), eager_step(optimizer)
    epochs, lrs = [], []
    for step in range(per_epoch * cfg.epochs + 1):
        epochs.append(step / per_epoch)
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        if scheduler is not None and step < per_epoch * cfg.epochs - 1:
            update()
            scheduler.step()
    return epochs, lrs


class Callback(Protocol):
    """Any object with some of these methods; each gets the live `FitState`."""

    def on_batch_end(self, state: FitState) -> None: ...
    def on_epoch_end(self, state: FitState) -> None: ...
    def on_fit_end(self, state: FitState) -> None: ...


@dataclass
class FitState:
    """What callbacks see: the config, the model, progress and the history so far."""

    config: TrainConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    batches_per_epoch: int
    epoch: int = 0  # 1-based epoch being trained (or just finished)
    batch: int = 0  # 1-based batch within the epoch
    batch_loss: float = float("nan")
    history: dict = field(default_factory=lambda: {"batch_loss": [], "epochs": []})
    best_epoch: int = 0
    stopped: bool = False  # the stop flag ended training early
    early_stopped: bool = False  # patience ran out
    started: float = field(default_factory=time.perf_counter)

    @property
    def last(self) -> dict:
        return self.history["epochs"][-1] if self.history["epochs"] else {}

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    @property
    def fraction_done(self) -> float:
        return fraction_done(self.epoch, self.config.epochs, self.batch, self.batches_per_epoch)

    @property
    def eta_s(self) -> float | None:
        return eta_seconds(self.elapsed_s, self.fraction_done)


def _emit(callbacks, event: str, state: FitState) -> None:
    for cb in callbacks:
        fn = getattr(cb, event, None)
        if fn is not None:
            fn(state)


def fit(
    model: nn.Module,
    data: Splits,
    cfg: TrainConfig,
    callbacks: Iterable = (),
    stop: Callable[[], bool] | None = None,
    resume: dict | None = None,
) -> FitState:
    """Train `model` on `data.train_*`, validating on `data.val_*` after every epoch.

    `stop` is polled after every batch (a threading.Event's `is_set` works). With a validation
    split the weights of the epoch with the lowest validation loss are restored at the end.
    `resume` (optimizer, scheduler, history, epoch) continues an earlier fit.
    """
    callbacks = list(callbacks)
    device = pick_device(cfg.device)
    reuse_freed_memory()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    fmt = memory_format(model)
    model.to(device).to(memory_format=fmt)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    steps = math.ceil(len(train_y) / cfg.batch_size)
    optimizer = make_optimizer(cfg, model.parameters())
    first_epoch = 1
    if resume:
        # Continue after epoch resume["epoch"]: step schedules carry on; cosine and OneCycle make
        # a fresh cycle over the remaining epochs (a warm restart), since theirs has run out.
        optimizer.load_state_dict(resume["optimizer"])
        first_epoch = resume["epoch"] + 1
    scheduler = make_scheduler(cfg, optimizer, steps, cfg.epochs - first_epoch + 1)
    step = eager_step(optimizer)
    if resume and cfg.schedule == "step" and resume.get("scheduler"):
        scheduler.load_state_dict(resume["scheduler"])
    state = FitState(cfg, model, optimizer, scheduler, steps)
    if resume:
        state.history = copy.deepcopy(resume["history"])
        if state.history["epochs"]:  # the clock continues too
            state.started -= state.history["epochs"][-1]["elapsed_s"]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    gen = torch.Generator().manual_seed(cfg.seed + first_epoch)
    aug = dict(rotate=cfg.rotate, translate=cfg.translate, scale=cfg.scale, erase=cfg.erase)
    precision, _why = choose_precision(cfg.precision, device)
    autocast = partial(torch.autocast, device.type, torch.bfloat16, precision == "bf16")
    has_val = len(data.val_y) > 0
    best_loss, best_weights, bad_epochs = math.inf, None, 0
    sweep = cfg.schedule == "range"  # an LR range test ends when the loss explodes, not with an error
    lowest = math.inf
    state.epoch = first_epoch - 1
    for epoch in range(first_epoch, cfg.epochs + 1):
        state.epoch = epoch
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        for b, (x, y) in enumerate(batches(train_x, train_y, cfg.batch_size, gen), 1):
            if cfg.augments:
                x = augment_batch(x, generator=gen, **aug)
            x = x.contiguous(memory_format=fmt)
            with autocast():
                logits = model(x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            step()
            if scheduler is not None:
                scheduler.step()
            value = loss.item()
            if sweep and (not math.isfinite(value) or value > RANGE_EXPLODED * lowest):
                state.early_stopped = True  # the sweep found where the loss explodes: its job is done
                break
            lowest = min(lowest, value)
            if not math.isfinite(value):
                raise Diverged(
                    f"The loss became {value} at epoch {epoch}, batch {b}: training diverged. "
                    f"Try a smaller learning rate than {cfg.lr:g}.",
                    epoch,
                    b,
                )
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            state.batch, state.batch_loss = b, value
            state.history["batch_loss"].append(value)
            _emit(callbacks, "on_batch_end", state)
            if stop is not None and stop():
                state.stopped = True
                break
        if state.stopped:
            break
        if not seen:  # a range test that exploded on its very first batch
            break
        train_time = time.perf_counter() - t0
        record = dict(
            epoch=epoch,
            train_loss=loss_sum.item() / seen,
            train_acc=correct.item() / seen,
            lr=optimizer.param_groups[0]["lr"],
            images_per_s=seen / train_time,
        )
        if has_val:
            val = evaluate(model, data.val_x, data.val_y, with_confusion=False, precision=precision)
            record.update(val_loss=val["loss"], val_acc=val["accuracy"])
            if val["loss"] < best_loss:
                best_loss, bad_epochs, state.best_epoch = val["loss"], 0, epoch
                best_weights = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
        else:
            state.best_epoch = epoch
        record.update(elapsed_s=state.elapsed_s, eta_s=state.eta_s)
        state.history["epochs"].append(record)
        _emit(callbacks, "on_epoch_end", state)
        if state.early_stopped or (cfg.patience and bad_epochs >= cfg.patience):
            state.early_stopped = True
            break
        if stop is not None and stop():
            state.stopped = True
            break
    if best_weights is not None and state.best_epoch != state.epoch:
        model.load_state_dict(best_weights)
    _emit(callbacks, "on_fit_end", state)
    return state


@dataclass
class TrainResult:
    model: nn.Module
    state: FitState
    metrics: TrainMetrics


def train_model(
    cfg: TrainConfig,
    callbacks: Iterable = (),
    stop: Callable[[], bool] | None = None,
    mnist=None,
    resume: dict | None = None,
    model: nn.Module | None = None,
) -> TrainResult:
    """Load the data, seed, build the registry model, fit, then measure the test set once."""
    cfg.validate()
    mnist = mnist or load_mnist()
    data = make_splits(mnist, cfg.val_fraction, cfg.seed, cfg.limit)
    torch.manual_seed(cfg.seed)
    model = model or build_model(cfg.model, cfg.model_args)
    t0 = time.perf_counter()
    state = fit(model, data, cfg, callbacks, stop, resume)
    train_s = time.perf_counter() - t0
    # a stopped run skips the test pass so that Stop answers within seconds
    test = (
        evaluate(model, data.test_x, data.test_y, precision=run_precision(cfg))
        if not state.stopped
        else dict(accuracy=None, loss=None, confusion=None, per_class_accuracy=None)
    )
    epochs = state.history["epochs"]
    best = next((e for e in epochs if e["epoch"] == state.best_epoch), epochs[-1] if epochs else {})
    metrics = TrainMetrics(
        test_acc=test["accuracy"],
        test_loss=test["loss"],
        confusion=test["confusion"],
        per_class_accuracy=test["per_class_accuracy"],
        best_epoch=state.best_epoch,
        val_acc=best.get("val_acc"),
        val_loss=best.get("val_loss"),
        epochs_run=len(epochs),
        train_seconds=train_s,
        stopped=state.stopped,
        early_stopped=state.early_stopped,
        images_per_s=(sum(e["images_per_s"] for e in epochs) / len(epochs)) if epochs else None,
    )
    return TrainResult(model, state, metrics)


class ProgressBar:
    """A training callback for terminals: a one-line bar on stderr with live loss, a line per epoch."""

    def __init__(self, stream: TextIO = sys.stderr, every_s: float = 0.2):
        self.stream, self.every_s, self._last = stream, every_s, 0.0

    def on_batch_end(self, s: FitState) -> None:
        now = time.perf_counter()
        if now - self._last < self.every_s and s.batch != s.batches_per_epoch:
            return
        self._last = now
        filled = int(24 * s.batch / s.batches_per_epoch)
        recent = s.history["batch_loss"][-20:]
        self.stream.write(
            f"\repoch {s.epoch}/{s.config.epochs} [{'#' * filled}{'-' * (24 - filled)}] "
            f"{s.batch}/{s.batches_per_epoch} loss {sum(recent) / len(recent):.4f}"
        )
        self.stream.flush()

    def on_epoch_end(self, s: FitState) -> None:
        e = s.last
        val = f"  val loss {e['val_loss']:.4f} acc {e['val_acc']:.2%}" if "val_loss" in e else ""
        eta = f"{e['eta_s']:.0f}s" if e.get("eta_s") is not None else "-"
        self.stream.write(
            f"\repoch {e['epoch']}/{s.config.epochs}  train loss {e['train_loss']:.4f} "
            f"acc {e['train_acc']:.2%}{val}  {e['images_per_s']:,.0f} img/s  "
            f"elapsed {e['elapsed_s']:.0f}s  ETA {eta}\n"
        )
        self.stream.flush()
