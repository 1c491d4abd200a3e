"""A class on one dashboard: who may act on a run, per-learner limits, exercises, and the class wall."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from ..learn.config import ConfigError, TrainConfig
from ..words import count
from .identity import User
from .store import Run, RunError, RunStore

# Settings a teacher may bound for the class (at most N) and the ones they may fix to one value.
BOUNDABLE = ("epochs", "limit", "batch_size")
FIXABLE = ("model", "optimizer", "schedule")


class NotAllowed(RunError):
    """The acting user may not do this to this run (it belongs to another learner)."""


class LimitReached(RunError):
    """A per-learner limit (queued runs, run size) or an exercise rule refuses the run."""


@dataclass
class ClassPolicy:
    """The class's rules, set in configuration and changed by a teacher; 0 or empty means no rule."""

    max_queued: int = 0  # runs a learner may have queued or running at once
    max_run_images: int = 0  # epochs x training images of one run
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
        problems = [f"{k} must be a whole number >= 0" for k in ("max_queued", "max_run_images")
                    if not _count(getattr(policy, k))]  # fmt: skip
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
        """What in `cfg` breaks the exercise's rules or the size limit (for learners)."""
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
        size = run_images(cfg)
        if self.max_run_images and size > self.max_run_images:
            out.append(
                f"a run may train on at most {self.max_run_images:,} images in all (epochs x training "
                f"images); this one is {cfg.epochs} x {size // cfg.epochs:,} = {size:,}"
            )
        return out


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def run_images(cfg: TrainConfig) -> int:
    """Epochs x training images: the size of a run that per-learner limits bound."""
    from .disk import TRAIN_IMAGES

    images = cfg.limit or round(TRAIN_IMAGES * (1 - cfg.val_fraction))
    return cfg.epochs * images


def check_submit(policy: ClassPolicy, actor: User, cfg: TrainConfig, active_runs: int) -> None:
    """Refuse a learner's run that breaks a limit or the exercise; teachers are not bound."""
    if actor.is_teacher:
        return
    if policy.max_queued and active_runs >= policy.max_queued:
        raise LimitReached(
            f"You already have {count(active_runs, 'run')} queued or training; the class limit is "
            f"{policy.max_queued}. Wait for one to finish, or stop one."
        )
    problems = policy.problems(cfg)
    if problems:
        raise LimitReached("This run is not allowed in this class: " + "; ".join(problems) + ".")


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
        f"Run {run.id} belongs to {run.owner_name or 'another learner'}: only they or a teacher can "
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
