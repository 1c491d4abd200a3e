"""Lessons that check themselves: a prediction, an experiment through the job API, a measured verdict.

A lesson is data (lesson_book.py): a question with choices, the experiment's arms (training configs),
what is measured from the finished runs, and a judge that says which choice the measured numbers
support. A learner's attempt (their prediction and the run ids) is kept in the run store's settings,
per learner, so it survives reloads, restarts and a rebuild; the verdict is always recomputed from
the runs themselves, never stored as the truth."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property

from ..jobs.identity import User
from ..jobs.manager import JobManager
from ..jobs.store import Run, RunError, RunStore
from ..learn.config import TrainConfig
from ..words import count

IMAGES_ENV = "MNIST_LAB_LESSON_IMAGES"  # cap every lesson run's training images (tests, slow machines)
FINISHED = ("completed", "failed", "stopped", "interrupted")


@dataclass(frozen=True)
class Choice:
    key: str
    text: str


@dataclass(frozen=True)
class Arm:
    """One run of a lesson's experiment. `config` is a TrainConfig dict, or a function of the
    completed runs of the arms named in `after` (the LR lesson trains with the rate its sweep found)."""

    name: str
    label: str
    config: dict | Callable[[Evidence], dict]
    after: tuple[str, ...] = ()
    may_diverge: bool = False  # a run that diverges is a measurement here, not a failure


@dataclass(frozen=True)
class NextStep:
    """Where the lesson sends the learner next: a page, opened with one of the lesson's runs."""

    page: str  # train, runs, evaluate, draw or inside
    label: str
    arm: str = ""  # the run it opens (train: the config it loads; runs: all arms are selected)
    changes: dict = field(default_factory=dict)  # train: settings changed on top of the arm's config


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    question: str
    choices: tuple[Choice, ...]
    arms: tuple[Arm, ...]
    measures: str  # the quantity measured, in words
    measure: Callable[[Evidence], dict]  # the finished runs -> the numbers the judge reads
    judge: Callable[[dict], tuple[str, str]]  # numbers -> (the choice they support, why, in numbers)
    finding: str  # the classic result, for after the verdict
    next_step: NextStep
    figures: Callable[[Evidence, dict], list] = lambda evidence, numbers: []  # (caption, figure) pairs

    def choice(self, key: str | None) -> Choice | None:
        return next((c for c in self.choices if c.key == key), None)

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)


class Evidence:
    """The finished runs of an attempt, by arm name, with what measures need (loaded on demand)."""

    def __init__(self, store: RunStore, runs: dict[str, Run]):
        self.store, self.runs = store, runs

    def __getitem__(self, arm: str) -> Run:
        return self.runs[arm]

    def epochs(self, arm: str) -> list[dict]:
        return self.store.epochs(self.runs[arm].id)

    def last_epoch(self, arm: str) -> dict:
        epochs = self.epochs(arm)
        return epochs[-1] if epochs else {}

    def model(self, arm: str):
        from ..learn.checkpoints import load_checkpoint

        return load_checkpoint(self.store.layout.best_checkpoint(self.runs[arm].id)).model

    def batch_losses(self, arm: str) -> list[tuple[int, int, float]]:
        return self.store.batch_losses(self.runs[arm].id)

    @cached_property
    def mnist(self):
        from ..data.mnist import load_mnist

        return load_mnist()


def diverged(run: Run) -> bool:
    """The run's loss became NaN or infinite (the worker records where)."""
    return run.status == "failed" and bool((run.test_metrics or {}).get("diverged"))


# ---- a learner's attempt, kept in the run store ----
@dataclass
class Attempt:
    lesson: str
    owner: str
    number: int = 1
    prediction: str | None = None
    predicted_at: float | None = None
    runs: dict[str, str] = field(default_factory=dict)  # arm name -> run id
    verdict: dict | None = None  # the last verdict computed (history only; the runs are the truth)
    past: list[dict] = field(default_factory=list)  # earlier attempts' predictions and verdicts
    retried: dict[str, int] = field(default_factory=dict)  # arm name -> times its run was redone

    def request_key(self, arm: str) -> str:
        """What names this arm's run in the store (unique there): two tabs submitting the same arm
        of the same attempt get one run; a retry, or a redo, asks for a new one."""
        return f"lesson:{self.owner}:{self.lesson}:{self.number}:{arm}:{self.retried.get(arm, 0)}"


def _key(owner: str, lesson: str) -> str:
    return f"lesson:{owner}:{lesson}"


def load_attempt(store: RunStore, owner: str, lesson: str) -> Attempt:
    saved = store.setting(_key(owner, lesson))
    if not isinstance(saved, dict):
        return Attempt(lesson, owner)
    known = set(Attempt.__dataclass_fields__)
    return Attempt(**{k: v for k, v in saved.items() if k in known})


def save_attempt(store: RunStore, attempt: Attempt) -> None:
    store.set_setting(_key(attempt.owner, attempt.lesson), asdict(attempt))


def predict(store: RunStore, attempt: Attempt, choice: str, lesson: Lesson) -> Attempt:
    """Record the learner's prediction; it cannot change once the experiment has started."""
    if lesson.choice(choice) is None:
        raise RunError(f"{choice!r} is not one of this lesson's answers.")
    if attempt.runs:
        raise RunError(
            "The experiment has started: the prediction is fixed. Redo the lesson to predict again."
        )
    attempt.prediction, attempt.predicted_at = choice, time.time()
    save_attempt(store, attempt)
    return attempt


def lesson_config(lesson: Lesson, arm: Arm, evidence: Evidence) -> TrainConfig:
    """The arm's training config, its images capped by $MNIST_LAB_LESSON_IMAGES where set."""
    values = arm.config(evidence) if callable(arm.config) else dict(arm.config)
    cap = images_cap()
    if cap:
        values["limit"] = min(values.get("limit") or cap, cap)
    return TrainConfig.from_dict(values)


@dataclass
class Progress:
    """Where an attempt stands, read from the run store: new, running, problem or judged."""

    status: str
    runs: dict[str, Run]
    waiting: list[str]  # arms not submitted yet
    prediction: str | None = None
    message: str = ""  # a problem: which run failed, and why
    numbers: dict = field(default_factory=dict)
    outcome: str | None = None  # the choice the measured numbers support
    explanation: str = ""  # written from the numbers

    @property
    def correct(self) -> bool | None:
        return None if self.outcome is None else self.outcome == self.prediction


def _runs(store: RunStore, attempt: Attempt) -> dict[str, Run]:
    found = {}
    for arm, run_id in attempt.runs.items():
        try:
            found[arm] = store.get(run_id)
        except RunError:
            pass  # deleted: that arm has to run again
    return found


def progress(store: RunStore, lesson: Lesson, attempt: Attempt, judge: bool = True) -> Progress:
    """The attempt's state; once every arm has finished, the verdict from the measured numbers."""
    runs = _runs(store, attempt)
    waiting = [a.name for a in lesson.arms if a.name not in runs]
    p = Progress("new", runs, waiting, prediction=attempt.prediction)
    if not attempt.prediction:
        return p
    broken = [
        (a, runs[a.name])
        for a in lesson.arms
        if a.name in runs
        and runs[a.name].status in FINISHED
        and runs[a.name].status != "completed"
        and not (a.may_diverge and diverged(runs[a.name]))
    ]
    if broken:
        p.status = "problem"
        p.message = " ".join(
            f"The {a.label} run ({run.id[-6:]}) {run.status}: {run.reason or 'no reason recorded'}"
            for a, run in broken
        )
        return p
    if waiting or any(r.active for r in runs.values()) or not runs:
        p.status = "running"
        return p
    p.status = "judged"
    if judge:
        p.numbers = lesson.measure(Evidence(store, runs))
        p.outcome, p.explanation = lesson.judge(p.numbers)
    return p


def advance(jobs: JobManager, lesson: Lesson, attempt: Attempt, actor: User) -> str:
    """Submit every arm that can start now (its `after` arms completed), through the job API.
    Returns a sentence when an arm has to wait (the class's queue limit), else ''."""
    if not attempt.prediction:
        raise RunError("Choose your prediction first: it is recorded before anything runs.")
    runs = _runs(jobs.store, attempt)
    submitted = False
    note = ""
    for arm in lesson.arms:
        if arm.name in runs:
            continue
        if any(a not in runs or runs[a].status != "completed" for a in arm.after):
            continue
        config = lesson_config(lesson, arm, Evidence(jobs.store, runs))
        allowed = jobs.policy().max_queued
        if allowed and not actor.is_teacher and jobs.store.active_count(actor.id) >= allowed:
            note = (
                f"The {arm.label} run waits for a free place: your class lets each learner have "
                f"{count(allowed, 'run')} queued or training at once. It starts when one of yours ends."
            )
            break  # any other class rule refuses the run with its reason (LimitReached)
        run = jobs.submit(config, actor=actor, request_key=attempt.request_key(arm.name))
        attempt.runs[arm.name], runs[arm.name] = run.id, run
        submitted = True
        save_attempt(jobs.store, attempt)  # each run id is kept as soon as it exists
    if submitted:
        attempt.verdict = None
        save_attempt(jobs.store, attempt)
    return note


def retry(jobs: JobManager, lesson: Lesson, attempt: Attempt, actor: User) -> str:
    """Run again the arms whose runs failed, stopped or were interrupted (or were deleted)."""
    for arm in lesson.arms:
        run_id = attempt.runs.get(arm.name)
        if run_id is None:
            continue
        try:
            run = jobs.store.get(run_id)
        except RunError:
            attempt.runs.pop(arm.name)
            continue
        if run.status in FINISHED and run.status != "completed" and not (arm.may_diverge and diverged(run)):
            attempt.runs.pop(arm.name)
            attempt.retried[arm.name] = attempt.retried.get(arm.name, 0) + 1
        # arms built from this one must run again too
    for arm in lesson.arms:
        if arm.name in attempt.runs and any(a not in attempt.runs for a in arm.after):
            attempt.runs.pop(arm.name)
            attempt.retried[arm.name] = attempt.retried.get(arm.name, 0) + 1
    save_attempt(jobs.store, attempt)
    return advance(jobs, lesson, attempt, actor)


def record_verdict(store: RunStore, attempt: Attempt, p: Progress) -> bool:
    """Keep the verdict beside the attempt (for the overview and the history of redone lessons).
    True when it was new."""
    verdict = dict(outcome=p.outcome, correct=p.correct, explanation=p.explanation, numbers=p.numbers)
    if p.status != "judged" or p.outcome is None or attempt.verdict == verdict:
        return False
    attempt.verdict = verdict
    save_attempt(store, attempt)
    return True


def images_cap() -> int:
    """$MNIST_LAB_LESSON_IMAGES as a number (0: no cap)."""
    try:
        return max(0, int(os.environ.get(IMAGES_ENV, "0")))
    except ValueError:
        return 0


def redo(store: RunStore, attempt: Attempt) -> Attempt:
    """Start the lesson over: a new prediction and new runs; this attempt moves to the history."""
    attempt.past.append(
        dict(number=attempt.number, prediction=attempt.prediction, runs=attempt.runs, verdict=attempt.verdict)
    )
    fresh = Attempt(attempt.lesson, attempt.owner, number=attempt.number + 1, past=attempt.past)
    save_attempt(store, fresh)
    return fresh


def overview(store: RunStore, owner: str, lessons: list[Lesson]) -> list[dict]:
    """One row per lesson for this learner: not started, predicted, running, or right/wrong."""
    rows = []
    for lesson in lessons:
        a = load_attempt(store, owner, lesson.key)
        if a.verdict:
            state = "right" if a.verdict.get("correct") else "measured otherwise"
        elif a.runs:
            state = "in progress"
        elif a.prediction:
            state = "predicted"
        else:
            state = "not started"
        rows.append(dict(lesson=lesson.title, state=state, attempts=a.number, key=lesson.key))
    return rows


def points(x: float) -> str:
    """An accuracy difference in percentage points, signed: '+4.9 points'."""
    return f"{x * 100:+.1f} points"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"
