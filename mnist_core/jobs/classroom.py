"""A class on one dashboard: who may act on a run, per-learner limits, exercises, and the class wall."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace

from ..data.pixels import IMAGE_SIZE
from ..learn.config import ConfigError, TrainConfig
from ..learn.models import summary
from ..words import count, plain_markdown
from .identity import User
from .store import Run, RunError, RunStore

# Settings a teacher may bound for the class (at most N) and the ones they may fix to one value.
BOUNDABLE = ("epochs", "limit", "batch_size")
FIXABLE = ("model", "optimizer", "schedule")
MB = 1024 * 1024
# Peak memory of a training step over the sum of one image's layer outputs x batch size: measured
# 1.0-1.4 (cnn_3, better_cnn, batch 256 and 1024, fp32, Adam; docs/classroom.md "Limits"); 2 leaves
# room for the activations' gradients and the augmented copy of the batch.
ACTIVATION_FACTOR = 2
RUN_LIMITS = ("max_run_images", "max_epochs", "max_batch_mb", "max_run_seconds")  # these bind everyone
COUNTS = ("max_queued", "max_disk_mb", *RUN_LIMITS)


class NotAllowed(RunError):
    """The acting user may not do this to this run (it belongs to another learner)."""


class LimitReached(RunError):
    """A per-learner limit (queued runs, run size) or an exercise rule refuses the run."""


@dataclass
class ClassPolicy:
    """The class's rules, set in configuration and changed by a teacher; 0 or empty means no rule.

    The run limits (RUN_LIMITS: epochs, images, batch memory, time) have safe defaults and bind
    everyone who submits through the job API, the local user and the command line's administrator
    included (see limits_for); a teacher raises them for the class (`[classroom]` in the secrets
    file, or set_policy). The queue limit, the disk quota and the exercise bind learners only."""

    max_queued: int = 5  # runs a learner may have queued or running at once (a lesson has up to 5)
    max_run_images: int = 3_000_000  # epochs x training images of one run: 50 epochs of all 60,000
    max_epochs: int = 50  # epochs of one run, Extend included (the presets train 2 to 10)
    max_batch_mb: int = 2048  # estimated activation memory of one batch (batch_memory_bytes)
    max_run_seconds: int = 7200  # wall-clock time of one run's start; the worker stops it cleanly
    max_disk_mb: int = 2048  # a learner's run folders, with what their queued runs will write
    exercise: str = ""  # the current exercise's name; runs record it
    at_most: dict[str, int] = field(default_factory=dict)  # e.g. {"limit": 10000, "epochs": 3}
    fixed: dict[str, str] = field(default_factory=dict)  # e.g. {"model": "mlp_128_64"}

    @classmethod
    def from_dict(cls, values: dict) -> ClassPolicy:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown class settings: {', '.join(sorted(unknown))}")
        policy = cls(**values)
        problems = [f"{k} must be a whole number >= 0" for k in COUNTS if not _count(getattr(policy, k))]
        for key, most in policy.at_most.items():
            if key not in BOUNDABLE:
                problems.append(f"'at most' is only for {', '.join(BOUNDABLE)}, not {key}")
            elif not _count(most) or most < 1:
                problems.append(f"'at most' for {key} must be a whole number >= 1, not {most!r}")
        problems += [
            f"only {', '.join(FIXABLE)} can be fixed, not {k}" for k in policy.fixed if k not in FIXABLE
        ]
        if problems:
            raise ConfigError("; ".join(problems))
        return policy

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def rules(self) -> list[str]:
        """The exercise's rules in words, for the Train page."""
        words = {"epochs": "epochs", "limit": "training images", "batch_size": "images per batch"}
        out = [f"at most {v:,} {words[k]}" for k, v in sorted(self.at_most.items())]
        out += [f"{k} is {v}" for k, v in sorted(self.fixed.items())]
        return out

    def problems(self, cfg: TrainConfig) -> list[str]:
        """What in `cfg` breaks the exercise's rules or a run limit (everything a learner is held to)."""
        out = []
        for key, most in self.at_most.items():
            value = getattr(cfg, key)
            if key == "limit" and value == 0:
                out.append(f"the exercise allows at most {most:,} training images, not all of them")
            elif value > most:
                out.append(f"the exercise allows at most {most:,} for {key}, not {value:,}")
        for key, value in self.fixed.items():
            if getattr(cfg, key) != value:
                out.append(f"the exercise fixes {key} to {value}, not {getattr(cfg, key)}")
        return out + self.limit_problems(cfg)

    def limit_problems(self, cfg: TrainConfig) -> list[str]:
        """What in `cfg` goes over a run limit (these bind everyone), each with its numbers."""
        out = []
        if self.max_epochs and cfg.epochs > self.max_epochs:
            out.append(f"a run may train at most {self.max_epochs:,} epochs, not {cfg.epochs:,}")
        size = run_images(cfg)
        if self.max_run_images and size > self.max_run_images:
            out.append(
                f"a run may train on at most {self.max_run_images:,} images in all (epochs x training "
                f"images); this one is {cfg.epochs} x {size // cfg.epochs:,} = {size:,}"
            )
        need, batch = batch_memory_bytes(cfg), min(cfg.batch_size, cfg.train_images)
        if self.max_batch_mb and need > self.max_batch_mb * MB:
            per_image = need / batch
            most = max(1, int(self.max_batch_mb * MB // per_image))
            out.append(
                f"a batch of {batch:,} images of {cfg.model} needs about {need / MB:,.0f} MB "
                f"of memory for its activations ({per_image / 1024:,.0f} KB per image), and a run may "
                f"use {self.max_batch_mb:,} MB: use a batch size of at most {most:,}"
            )
        return out


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def run_images(cfg: TrainConfig) -> int:
    """Epochs x training images: the size of a run that per-learner limits bound."""
    return cfg.epochs * cfg.train_images


def batch_memory_bytes(cfg: TrainConfig) -> int:
    """About the memory one training batch takes: the fp32 input and every layer's output for one
    image (from the registry's summary, computed once per model and arguments) x the images of a
    batch, x ACTIVATION_FACTOR for the backward pass."""
    layers = summary(cfg.model, cfg.model_args or None).layers
    floats = IMAGE_SIZE * IMAGE_SIZE + sum(math.prod(r["output_shape"]) for r in layers)
    return ACTIVATION_FACTOR * 4 * floats * min(cfg.batch_size, cfg.train_images)


def limits_for(policy: ClassPolicy, actor: User) -> ClassPolicy:
    """The run limits that hold for `actor`. A learner's are the class's; a teacher's or the
    administrator's are the defaults, or the class's where a teacher raised one above its default:
    a class's tighter rules (an exercise's small runs) bind learners only."""
    if not actor.is_teacher:
        return policy
    default, held = ClassPolicy(), replace(policy)
    for key in RUN_LIMITS:
        value = getattr(policy, key)
        setattr(held, key, 0 if value == 0 else max(value, getattr(default, key)))
    return held


def time_limit(policy: ClassPolicy, actor: User) -> int:
    """The seconds each start of `actor`'s run may train (0: no limit); the worker stops it there."""
    return limits_for(policy, actor).max_run_seconds


def duration(seconds: float) -> str:
    """A time limit in words: '2 h', '1 h 30 min', '45 min', '1 s'."""
    s = round(seconds)
    if s < 60:
        return count(s, "s", "s")
    h, m = divmod(s // 60, 60)
    return " ".join(p for p in (f"{h} h" if h else "", f"{m} min" if m else "") if p)


def disk_quota_bytes(policy: ClassPolicy, actor: User) -> int:
    """The disk a learner's runs may take (0: no quota); teachers and the administrator have none."""
    return 0 if actor.is_teacher else policy.max_disk_mb * MB


def check_submit(policy: ClassPolicy, actor: User, cfg: TrainConfig, active_runs: int) -> None:
    """Refuse a run over a run limit (everyone), or a learner's run over the queue limit or outside
    the exercise; teachers and the administrator are held to the run limits only."""
    if actor.is_teacher:
        over = limits_for(policy, actor).limit_problems(cfg)
        if over:
            raise LimitReached(
                "This run is over the limits set for every run here: " + "; ".join(over) + ". A "
                "teacher can raise them on the Class wall page, or in the [classroom] section of the "
                "secrets file (0 = no limit)."
            )
        return
    if policy.max_queued and active_runs >= policy.max_queued:
        raise LimitReached(
            f"You already have {count(active_runs, 'run')} queued or training; the class limit is "
            f"{policy.max_queued}. Wait for one to finish, or stop one."
        )
    problems = policy.problems(cfg)
    if problems:
        raise LimitReached("This run is not allowed in this class: " + "; ".join(problems) + ".")


def runs_to_queue(
    policy: ClassPolicy, actor: User, wanted: list[TrainConfig], active: list[Run]
) -> tuple[list[TrainConfig], str]:
    """Of `wanted` (say the comparison table's missing runs), those to queue now: not the ones the
    actor already has queued or training with the same settings, and for a learner no more than
    the queue limit leaves room for. With a sentence on what waits ('' when nothing does)."""
    mine = [r for r in active if r.owner == actor.id]
    have = [r.config for r in mine]
    todo = [c for c in wanted if c.to_dict() not in have]
    room = len(todo)
    if policy.max_queued and not actor.is_teacher:
        room = max(0, policy.max_queued - len(mine))
    note = ""
    if room < len(todo):
        note = (
            f"{count(len(todo) - room, 'more run')} cannot be queued yet: your class lets each learner "
            f"have {count(policy.max_queued, 'run')} queued or training at once. Queue the rest when "
            "one of yours ends."
        )
    return todo[:room], note


# ---- the visibility rule: every page, link and entry point asks these, nothing else decides ----
# Runs are the class's shared work: every signed-in member sees every run, read-only. Acting on a
# run (stop, extend, delete, clone, prune its files) is its owner's, a teacher's or the
# administrator's. What is personal (a learner's lesson predictions and attempts, their drawings
# and uploads, their e-mail address) is shown to that learner and to teachers, never to classmates.


def sees_run(run: Run, viewer: User) -> bool:
    """Every member of the class sees every run (read-only unless `can_act`)."""
    return True


def can_act(run: Run, actor: User) -> bool:
    """The run's owner, a teacher or the administrator may change or remove it."""
    return actor.is_teacher or run.owner == actor.id


def sees_personal(owner: str, viewer: User) -> bool:
    """Whether `viewer` may see `owner`'s lesson predictions, drawings and e-mail address."""
    return viewer.is_teacher or viewer.id == owner


def reattaches_to(runs: list[Run], viewer: User) -> list[Run]:
    """The runs a page follows on its own (the live view, the Train page): the viewer's own; the
    local user and the administrator own every run of the machine."""
    return runs if viewer.is_admin else [r for r in runs if r.owner == viewer.id]


def check_control(run: Run, actor: User, action: str) -> None:
    """Only the run's owner, a teacher or the administrator may stop, extend, delete or clone it."""
    if can_act(run, actor):
        return
    raise NotAllowed(
        f"Run {run.id} belongs to {plain_markdown(display_name(run))}: only they or a teacher can "
        f"{action} it."
    )


def display_name(run: Run) -> str:
    """The name the class sees: the configured display name, never an e-mail address."""
    if run.owner_name and "@" not in run.owner_name:
        return run.owner_name
    return {"local": "You", "admin": "Administrator"}.get(run.owner, "a learner")


def wall_rows(store: RunStore, exercise: str | None = None) -> list[dict]:
    """Every completed run of the class, one plain row each, best validation accuracy first."""
    rows = []
    for run in store.list(("completed",)):
        if exercise is not None and (run.exercise or "") != exercise:
            continue
        c = run.config
        aug = "+".join(k for k in ("rotate", "translate", "scale", "erase") if c.get(k)) or "none"
        rows.append(
            dict(
                name=display_name(run),
                model=run.model,
                epochs=run.epochs_done,
                training_images=c.get("limit") or None,
                batch=c.get("batch_size"),
                optimizer=c.get("optimizer"),
                lr=c.get("lr"),
                weight_decay=c.get("weight_decay"),
                dropout=c.get("model_args", {}).get("dropout"),
                augmentation=aug,
                best_val_acc=run.best_val_acc,
                test_acc=run.test_acc,
                seconds=round(run.train_seconds),
                exercise=run.exercise or "",
                finished=run.finished,
                run=run.id,
            )
        )
    return sorted(rows, key=lambda r: -(r["best_val_acc"] or 0))
