"""The model zoo: two configurable classes and one registry of named, referenced presets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import nn

from ..data.pixels import IMAGE_SIZE, NUM_CLASSES


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> ReLU -> (Dropout)] per hidden size -> Linear(10)."""

    family = "mlp"

    def __init__(
        self, hidden: tuple[int, ...] | list[int] = (128,), dropout: float = 0.0, batchnorm: bool = False
    ):
        super().__init__()
        _check_dropout(dropout)
        layers: list[nn.Module] = [nn.Flatten()]
        width = IMAGE_SIZE * IMAGE_SIZE
        for h in hidden:
            if int(h) < 1:
                raise ValueError(f"hidden sizes must be positive, got {h}")
            layers.append(nn.Linear(width, int(h), bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(int(h)))
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, NUM_CLASSES))
        self.net = nn.Sequential(*layers)
        if not hidden:
            self.family = "linear"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvNet(nn.Module):
    """Conv stages (each: convs -> BN -> ReLU, with a 2x2 max-pool), then a small classifier head.

    channels: filters per stage; convs: conv layers per stage; hidden: width of an optional
    fully connected layer; dropout: before the last Linear; gap: global-average-pool the features;
    pool_first: a stage's last conv is max-pooled before its BatchNorm, which then normalises a
    quarter of the values (a different function from BN -> pool, as good to learn; measured 1.1-1.2x
    the training steps per second of fast_cnn on a laptop CPU); stem_stride 2: the first conv steps
    by two pixels instead of the first stage max-pooling, so no layer works on the full 28x28 grid
    (a quarter of the first stage's multiply-adds and memory traffic).
    """

    family = "cnn"

    def __init__(
        self,
        channels: tuple[int, ...] | list[int] = (32, 64),
        convs: int = 1,
        kernel: int = 3,
        batchnorm: bool = True,
        hidden: int = 0,
        dropout: float = 0.0,
        gap: bool = False,
        pool_first: bool = False,
        stem_stride: int = 1,
    ):
        super().__init__()
        _check_dropout(dropout)
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels}")
        if len(channels) > 4:
            raise ValueError("at most 4 conv stages fit a 28x28 image")
        if kernel not in (3, 5) or convs not in (1, 2, 3):
            raise ValueError("kernel must be 3 or 5 and convs 1, 2 or 3")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        layers: list[nn.Module] = []
        c_in, side = 1, IMAGE_SIZE
        for stage, c in enumerate(channels):
            for i in range(convs):
                stride = stem_stride if stage == i == 0 else 1
                layers.append(
                    nn.Conv2d(c_in, int(c), kernel, stride, padding=kernel // 2, bias=not batchnorm)
                )
                pooled = i == convs - 1 and not (stage == 0 and stem_stride == 2)  # the stride did it
                if pooled and pool_first:
                    layers.append(nn.MaxPool2d(2))
                if batchnorm:
                    layers.append(nn.BatchNorm2d(int(c)))
                if pooled and not pool_first:
                    # max-pool before ReLU: the same function (ReLU is monotonic), 4x less ReLU work
                    layers.append(nn.MaxPool2d(2))
                layers.append(nn.ReLU())
                c_in = int(c)
            side //= 2
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if gap else []
        head.append(nn.Flatten())
        width = c_in if gap else c_in * side * side
        if hidden:
            head += [nn.Linear(width, int(hidden)), nn.ReLU()]
            width = int(hidden)
        if dropout:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(width, NUM_CLASSES))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _check_dropout(p: float) -> None:
    if not 0 <= p < 1:
        raise ValueError(f"dropout must be in [0, 1), got {p}")


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: what to build, what it is, what it should reach, and how to train it."""

    key: str
    cls: type
    args: dict
    description: str
    reference: str
    preset: dict = field(default_factory=dict)


def _spec(key, cls, args, description, reference, **preset) -> ModelSpec:
    return ModelSpec(key, cls, args, description, reference, preset)


_SPECS = [
    _spec(
        "perceptron",
        MLP,
        dict(hidden=()),
        "A single linear layer: softmax regression on the 784 raw pixels.",
        "about 92% test",
        optimizer="sgd",
        lr=0.1,
        momentum=0.0,
        batch_size=100,
        epochs=5,
    ),
    _spec(
        "deep",
        MLP,
        dict(hidden=(256,)),
        "One hidden layer of 256 ReLU units, with L2 regularisation through weight decay.",
        "about 96% test",
        optimizer="sgd",
        lr=0.05,
        momentum=0.0,
        weight_decay=1e-4,
        batch_size=100,
        epochs=5,
    ),
    _spec(
        "mlp_128_64",
        MLP,
        dict(hidden=(128, 64), dropout=0.2),
        "Two hidden layers (128, 64), ReLU and dropout 0.2.",
        "97-98% test",
        optimizer="adam",
        lr=1e-3,
        weight_decay=1e-4,
        batch_size=32,
        epochs=10,
    ),
    _spec(
        "mlp_500_125",
        MLP,
        dict(hidden=(500, 125)),
        "Two wide hidden layers (500, 125) with ReLU.",
        "above 97% test",
        optimizer="adam",
        lr=1e-3,
        batch_size=100,
        epochs=5,
    ),
    _spec(
        "cnn_1",
        ConvNet,
        dict(channels=(32,), batchnorm=True),
        "One conv layer (32 filters) with BatchNorm, pooling, then a linear classifier.",
        "98.4% test",
        optimizer="adam",
        lr=1e-3,
        batch_size=64,
        epochs=5,
        schedule="cosine",
    ),
    _spec(
        "cnn_2",
        ConvNet,
        dict(channels=(32, 64), batchnorm=True, dropout=0.2),
        "Two conv layers (32, 64 filters) with BatchNorm and dropout 0.2.",
        "99.1% test",
        optimizer="adam",
        lr=1e-3,
        batch_size=64,
        epochs=6,
        schedule="cosine",
    ),
    _spec(
        "cnn_3",
        ConvNet,
        dict(channels=(32, 64, 128), batchnorm=True, dropout=0.3),
        "Three conv layers (32, 64, 128 filters), BatchNorm, dropout 0.3, trained with augmentation.",
        "99.3% test (with augmentation)",
        optimizer="adam",
        lr=1e-3,
        batch_size=64,
        epochs=8,
        schedule="cosine",
        rotate=10.0,
        translate=0.1,
    ),
    _spec(
        "cnn_basic",
        ConvNet,
        dict(channels=(32, 64), batchnorm=False, hidden=128, dropout=0.5),
        "The textbook CNN: conv32-pool-conv64-pool-fc128-dropout0.5-fc10, 3x3 kernels.",
        "421,642 parameters; 99.21% test after 10 epochs",
        optimizer="adam",
        lr=1e-3,
        batch_size=64,
        epochs=10,
    ),
    _spec(
        "better_cnn",
        ConvNet,
        dict(channels=(32, 64), convs=2, batchnorm=True, hidden=128, dropout=0.3),
        "Two conv pairs with BatchNorm, dropout 0.3, OneCycle and light augmentation.",
        "at least 99.5% test",
        optimizer="adam",
        lr=3e-3,
        batch_size=128,
        epochs=8,
        schedule="onecycle",
        rotate=8.0,
        translate=0.08,
        scale=0.08,
    ),
    _spec(
        "fast_cnn",
        ConvNet,
        dict(channels=(16, 32, 64), batchnorm=True, pool_first=True, stem_stride=2),
        "A small BatchNorm CNN tuned for time-to-accuracy on a laptop CPU.",
        "at least 99.0% test within 20 s on a 2-core CPU",
        optimizer="adam",
        lr=5e-3,
        batch_size=128,
        epochs=2,
        schedule="onecycle",
    ),
]
REGISTRY: dict[str, ModelSpec] = {s.key: s for s in _SPECS}


def build_model(key: str, overrides: dict | None = None) -> nn.Module:
    """Instantiate a registry model; `overrides` replace its default arguments."""
    if key not in REGISTRY:
        raise KeyError(f"unknown model {key!r}; choose one of {', '.join(REGISTRY)}")
    spec = REGISTRY[key]
    args = {**spec.args, **(overrides or {})}
    model = spec.cls(**args)
    model.registry_key, model.model_args = key, args
    return model


def identity(model: nn.Module) -> tuple[str, dict]:
    """The registry key and arguments a model was built from (what rebuilds it)."""
    return str(model.registry_key), dict(model.model_args)  # type: ignore[arg-type]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_table(model: nn.Module) -> list[dict]:
    """One row per leaf layer for a single 28x28 image: name, type, output shape, params, FLOPs."""
    rows: list[dict] = []
    hooks = []

    def hook(module, inputs, output, name):
        out_shape = tuple(output.shape[1:])
        flops = 0
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            flops = 2 * k * output.numel()
        elif isinstance(module, nn.Linear):
            flops = 2 * module.in_features * module.out_features
        elif isinstance(
            module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d)
        ):
            flops = output.numel()
        rows.append(
            dict(
                layer=name,
                type=type(module).__name__,
                output_shape=out_shape,
                params=sum(p.numel() for p in module.parameters(recurse=False)),
                flops=flops,
            )
        )

    for name, module in model.named_modules():
        if not list(module.children()):
            hooks.append(module.register_forward_hook(lambda m, i, o, n=name: hook(m, i, o, n)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def flops(model: nn.Module) -> int:
    """Forward-pass floating point operations for one image (a multiply-add counts as 2)."""
    return sum(r["flops"] for r in layer_table(model))


def memory_format(model: nn.Module) -> torch.memory_format:
    """Conv nets run channels_last (measured 1.1-1.4x faster on a laptop CPU for cnn_basic); input
    and weights must share it, since mixing layouts is ~3x slower. Training and evaluation ask here."""
    return torch.channels_last if getattr(model, "family", "") == "cnn" else torch.contiguous_format


@dataclass(frozen=True)
class ModelSummary:
    """Size and cost of one architecture: what the Models and Train pages and `models` show."""

    key: str
    parameters: int
    flops: int
    layers: tuple[dict, ...]


@lru_cache(maxsize=256)
def _summary(key: str, overrides_json: str) -> ModelSummary:
    # a real model on the CPU and one zero image through it: every registry model in 23 ms. Not the
    # meta device: its shape checks import sympy on first use (0.3 s alone, 11 s on the Train
    # page's first visit beside a run) and were slower than real weights even after (0.9 s).
    model = build_model(key, json.loads(overrides_json))
    rows = tuple(layer_table(model))
    return ModelSummary(key, count_parameters(model), sum(r["flops"] for r in rows), rows)


def summary(key: str, overrides: dict | None = None) -> ModelSummary:
    """The registry model's summary, computed once per (key, arguments) and cached."""
    return _summary(key, json.dumps(overrides or {}, sort_keys=True))


MAX_PARAMETERS = 50_000_000  # 200 MB of fp32 weights; the registry's largest model has under 2 million


def check_model_args(model: str, args: dict) -> list[str]:
    """Problems with a model's arguments, found by building it on PyTorch's meta device: shapes and
    parameter counts without allocating a single weight, so a typo such as a billion-unit layer is
    refused instead of exhausting the machine's memory."""
    try:
        json.dumps(args, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return [f"model arguments must be plain JSON values (numbers, lists, true/false): {exc}"]
    try:
        with torch.device("meta"):
            n = count_parameters(build_model(model, args))
    except (TypeError, ValueError, RuntimeError, OverflowError, KeyError, IndexError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [f"model arguments for {model!r} are invalid: {first[:300]}"]
    if n > MAX_PARAMETERS:
        return [f"model arguments for {model!r} give {n:,} parameters; the limit is {MAX_PARAMETERS:,}"]
    return []
