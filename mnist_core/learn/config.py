"""The one validated training configuration: every entry point builds a TrainConfig."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from .models import REGISTRY, check_model_args


class ConfigError(ValueError):
    """A training configuration that cannot run; the message says what to change."""


OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "range")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
MNIST_TRAIN = 60_000  # MNIST's training set, before the validation split


def _f(default, help: str, **kw):
    """A dataclass field carrying the one-line help text shared by the CLI and the UI."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data; built by the CLI, the UI and the jobs."""

    model: str = _f("cnn_basic", "registry key of the architecture (see `models`)", group="model")
    model_args: dict = _f(
        {}, 'overrides of the architecture\'s arguments, e.g. {"dropout": 0.3}', group="model"
    )
    epochs: int = _f(5, "passes over the training split", group="run")
    batch_size: int = _f(64, "images per gradient step", group="run")
    optimizer: str = _f("adam", "sgd, adam or adamw", choices=OPTIMIZERS, group="optimisation")
    lr: float = _f(1e-3, "learning rate (peak rate for onecycle)", group="optimisation")
    momentum: float = _f(0.9, "SGD momentum (ignored by Adam/AdamW)", group="optimisation")
    nesterov: bool = _f(False, "Nesterov momentum for SGD", group="optimisation")
    weight_decay: float = _f(0.0, "L2 penalty (decoupled for AdamW)", group="regularisation")
    label_smoothing: float = _f(
        0.0, "share of the target spread over the other classes", group="regularisation"
    )
    schedule: str = _f(
        "constant",
        "learning-rate schedule (range: an LR range test, lr * 1e-5 rising to lr until the loss explodes)",
        choices=SCHEDULES,
        group="optimisation",
    )
    step_size: int = _f(2, "epochs between decays for the step schedule", group="schedule")
    gamma: float = _f(0.5, "decay factor for the step schedule", group="schedule")
    patience: int = _f(
        0, "early stopping: epochs without a better validation loss (0 = off)", group="regularisation"
    )
    val_fraction: float = _f(0.1, "share of the 60,000 training images held out for validation", group="run")
    seed: int = _f(0, "seed for the split, initial weights, shuffling and augmentation", group="run")
    limit: int = _f(0, "train on only the first N training images (0 = all), for smoke runs", group="run")
    rotate: float = _f(0.0, "augmentation: max rotation in degrees (0 = off)", group="augmentation")
    translate: float = _f(
        0.0, "augmentation: max shift as a fraction of the image (0 = off)", group="augmentation"
    )
    scale: float = _f(0.0, "augmentation: max zoom in or out as a fraction (0 = off)", group="augmentation")
    erase: float = _f(
        0.0, "augmentation: probability of erasing a random patch (0 = off)", group="augmentation"
    )
    device: str = _f("auto", "auto, cpu, cuda or mps", choices=DEVICES, group="execution")
    threads: int = _f(0, "CPU threads for PyTorch (0 = PyTorch's default)", group="execution")
    precision: str = _f(
        "auto",
        "auto (bf16 autocast where the CPU or GPU runs bf16 natively, else fp32), fp32 or bf16",
        choices=PRECISIONS,
        group="execution",
    )

    # ---- validation: the single place where a bad value becomes a clear message ----
    def validate(self) -> TrainConfig:
        problems: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            want = {"int": int, "float": float, "bool": bool, "str": str, "dict": dict}[str(f.type)]
            ok = isinstance(value, want) and not (want in (int, float) and isinstance(value, bool))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                problems.append(f"{f.name} must be {want.__name__}, got {value!r}")
                continue
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                problems.append(f"{f.name} must be one of {', '.join(choices)}; got {value!r}")
        if problems:
            raise ConfigError("Invalid training configuration: " + "; ".join(problems) + ".")

        def need(cond: bool, msg: str) -> None:
            if not cond:
                problems.append(msg)

        def finite(x: float) -> bool:
            return x == x and abs(x) != float("inf")

        if self.model not in REGISTRY:
            problems.append(f"unknown model {self.model!r}; choose one of {', '.join(REGISTRY)}")
        need(1 <= self.epochs <= 1000, f"epochs must be between 1 and 1000, got {self.epochs}")
        need(1 <= self.batch_size <= 60000, f"batch size must be between 1 and 60000, got {self.batch_size}")
        need(
            finite(self.lr) and 0 < self.lr <= 10,
            f"learning rate must be above 0 and at most 10, got {self.lr}",
        )
        need(
            finite(self.momentum) and 0 <= self.momentum < 1,
            f"momentum must be in [0, 1), got {self.momentum}",
        )
        need(
            not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
            "Nesterov momentum needs the sgd optimizer with momentum above 0",
        )
        need(
            finite(self.weight_decay) and 0 <= self.weight_decay <= 1,
            f"weight decay must be between 0 and 1, got {self.weight_decay}",
        )
        need(
            finite(self.label_smoothing) and 0 <= self.label_smoothing < 1,
            f"label smoothing must be in [0, 1), got {self.label_smoothing}",
        )
        need(
            1 <= self.step_size <= 1000, f"step size must be between 1 and 1000 epochs, got {self.step_size}"
        )
        need(finite(self.gamma) and 0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        need(0 <= self.patience <= 1000, f"patience must be between 0 and 1000, got {self.patience}")
        need(
            finite(self.val_fraction) and 0 <= self.val_fraction <= 0.5,
            f"validation fraction must be between 0 and 0.5, got {self.val_fraction}",
        )
        need(
            self.patience == 0 or self.val_fraction > 0,
            "early stopping (patience > 0) needs a validation split (validation fraction > 0)",
        )
        need(0 <= self.seed < 2**32, f"seed must be between 0 and 2**32-1, got {self.seed}")
        need(0 <= self.limit <= 60000, f"limit must be between 0 and 60000, got {self.limit}")
        need(
            finite(self.rotate) and 0 <= self.rotate <= 180,
            f"rotation must be between 0 and 180 degrees, got {self.rotate}",
        )
        need(
            finite(self.translate) and 0 <= self.translate <= 0.5,
            f"translation must be between 0 and 0.5, got {self.translate}",
        )
        need(
            finite(self.scale) and 0 <= self.scale <= 0.5,
            f"scale must be between 0 and 0.5, got {self.scale}",
        )
        need(
            finite(self.erase) and 0 <= self.erase <= 1,
            f"erase probability must be between 0 and 1, got {self.erase}",
        )
        need(0 <= self.threads <= 256, f"threads must be between 0 and 256, got {self.threads}")
        if not problems and self.model in REGISTRY:
            problems += check_model_args(self.model, self.model_args)
        if problems:
            raise ConfigError("Invalid training configuration: " + "; ".join(problems) + ".")
        return self

    # ---- construction from plain data (CLI, UI widgets, job files, JSON) ----
    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build and validate; unknown keys are an error, not silently ignored."""
        if not isinstance(values, dict):
            raise ConfigError(
                f"Invalid training configuration: expected a mapping, got {type(values).__name__}."
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in values if k not in names)
        if unknown:
            noun = "setting" if len(unknown) == 1 else "settings"
            raise ConfigError(f"Invalid training configuration: unknown {noun} {', '.join(unknown)}.")
        return cls(**values).validate()

    @classmethod
    def for_model(cls, model: str, **overrides) -> TrainConfig:
        """The model's reference preset, with overrides on top."""
        if model not in REGISTRY:
            raise ConfigError(
                f"Invalid training configuration: unknown model {model!r}; "
                f"choose one of {', '.join(REGISTRY)}."
            )
        return cls.from_dict({"model": model, **REGISTRY[model].preset, **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @property
    def train_images(self) -> int:
        """Images one epoch trains on: `limit`, else the training set less the validation share."""
        return self.limit or round(MNIST_TRAIN * (1 - self.val_fraction))

    @property
    def augments(self) -> bool:
        return any((self.rotate, self.translate, self.scale, self.erase))


def settings(*groups: str) -> list[str]:
    """Names of the settings in these groups (model, optimisation, schedule, regularisation, run,
    augmentation, execution), in declaration order: what a page lays out in one column."""
    return [f.name for f in fields(TrainConfig) if f.metadata["group"] in groups]


def field_help() -> dict[str, str]:
    """Help text per setting, for the CLI flags and the UI's one-line explanations."""
    return {f.name: f.metadata["help"] for f in fields(TrainConfig)}
