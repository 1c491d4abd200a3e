"""Lessons: every judge on synthetic run records for both outcomes, the attempt's life (predict, run,
problem, retry, redo) in a real run store, and the LR range test in the engine."""

import math

import pytest
import torch
from torch import nn

from mnist_core.jobs.identity import ADMIN, User
from mnist_core.jobs.store import RunError, RunStore
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.engine import Diverged, fit, range_lr, train_model
from mnist_core.lessons import attempts as lessons
from mnist_core.lessons.augment import AUGMENT
from mnist_core.lessons.book import BY_KEY, LESSONS
from mnist_core.lessons.confusion import CONFUSION
from mnist_core.lessons.conv import CONV, shifted
from mnist_core.lessons.depth import DEPTH
from mnist_core.lessons.line import LINE
from mnist_core.lessons.lr import LR, _suggested_config, suggest_lr
from mnist_core.lessons.overfit import OVERFIT
from mnist_core.lessons.preprocess import PREPROCESS, STAGES, drawing_accuracy, drawing_set

ADA, BEN = User("ada@school.example", "Ada", "learner"), User("ben@school.example", "Ben", "learner")


def record(store: RunStore, config: dict, test_acc=None, epochs=(), status="completed", **fields):
    """A finished run as the worker would leave it: config, epoch records, test accuracy, status."""
    run = store.create(TrainConfig.from_dict(config).to_dict(), owner=ADA.id)
    for n, e in enumerate(epochs, 1):
        store.append_epoch(run.id, dict(epoch=n, images_per_s=1000.0, **e), None, epochs_done=n)
    store.update(run.id, status=status, test_acc=test_acc, finished=1.0, **fields)
    return store.get(run.id)


def judged(store: RunStore, lesson, runs: dict, prediction: str) -> lessons.Progress:
    attempt = lessons.Attempt(
        lesson.key, ADA.id, prediction=prediction, runs={a: r.id for a, r in runs.items()}
    )
    return lessons.progress(store, lesson, attempt)


def arm_config(lesson, name):
    return lesson.arm(name).config


@pytest.fixture()
def store(tmp_path):
    return RunStore(tmp_path / "store")


# ---- each judge, both ways, from records in a real store ----
@pytest.mark.parametrize(
    "accs, outcome",
    [({"perceptron": 0.919, "hidden": 0.974}, "hidden"), ({"perceptron": 0.905, "hidden": 0.912}, "same")],
)
def test_line_is_judged_from_the_runs_test_accuracy(store, accs, outcome):
    runs = {a: record(store, arm_config(LINE, a), acc) for a, acc in accs.items()}
    for prediction in ("hidden", "same"):
        p = judged(store, LINE, runs, prediction)
        assert p.status == "judged" and p.outcome == outcome
        assert p.correct is (prediction == outcome)  # a judge that always says "right" fails here
    assert f"{accs['hidden']:.1%}" in p.explanation and f"{accs['perceptron']:.1%}" in p.explanation


def epochs_with_gap(train_acc: float, val_acc: float, n: int = 3) -> list[dict]:
    return [dict(train_loss=0.1, train_acc=train_acc, val_loss=0.3, val_acc=val_acc)] * n


@pytest.mark.parametrize(
    "gaps, outcome",
    [
        ({"plain": 0.06, "l2": 0.02, "dropout": 0.03}, "both"),
        ({"plain": 0.06, "l2": 0.058, "dropout": 0.02}, "dropout"),
        ({"plain": 0.06, "l2": 0.055, "dropout": 0.065}, "neither"),
    ],
)
def test_overfitting_is_judged_from_the_last_epochs_gap(store, gaps, outcome):
    runs = {
        a: record(store, arm_config(OVERFIT, a), 0.9, epochs_with_gap(0.99, 0.99 - g))
        for a, g in gaps.items()
    }
    p = judged(store, OVERFIT, runs, "both")
    assert p.outcome == outcome and p.correct is (outcome == "both")
    assert f"{gaps['plain'] * 100:.1f} points" in p.explanation


@pytest.mark.parametrize(
    "accs, outcome",
    [
        ((0.932, 0.963, 0.972), "each"),
        ((0.932, 0.963, 0.964), "diminishing"),
        ((0.950, 0.951, 0.952), "none"),
        ((0.960, 0.950, 0.940), "worse"),
    ],
)
def test_depth_judge(store, accs, outcome):
    runs = {a: record(store, arm_config(DEPTH, a), acc) for a, acc in zip(("c1", "c2", "c3"), accs)}
    p = judged(store, DEPTH, runs, "each")
    assert p.outcome == outcome and p.correct is (outcome == "each")


@pytest.mark.parametrize(
    "plain, augmented, outcome", [(0.923, 0.943, "up"), (0.93, 0.934, "same"), (0.94, 0.92, "down")]
)
def test_augmentation_judge(store, plain, augmented, outcome):
    runs = {
        "plain": record(store, arm_config(AUGMENT, "plain"), plain, epochs_with_gap(1.0, 0.9)),
        "augmented": record(store, arm_config(AUGMENT, "augmented"), augmented, epochs_with_gap(0.95, 0.93)),
    }
    p = judged(store, AUGMENT, runs, "same")
    assert p.outcome == outcome and p.correct is (outcome == "same")


def sweep_run(store: RunStore, lowest_at: int = 60, steps: int = 100):
    """A finished range test whose loss falls, bottoms out at step `lowest_at`, then explodes."""
    cfg = dict(LR.arm("sweep").config)
    run = record(store, cfg, 0.5, [dict(train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5)])
    losses = [2.3 - 2.0 * min(s, lowest_at) / lowest_at + max(0, s - lowest_at) * 0.3 for s in range(steps)]
    store.append_batches(run.id, [(s + 1, 1, loss, 0.0) for s, loss in enumerate(losses)])
    store.update(run.id, progress=dict(batches=steps))
    return store.get(run.id), range_lr(cfg["lr"], lowest_at, steps)


@pytest.mark.parametrize(
    "large_loss, small_acc, outcome", [(50.0, 0.2, "both"), (0.3, 0.2, "crawl"), (0.3, 0.9, "fine")]
)
def test_learning_rate_judge_and_the_suggested_rate(store, large_loss, small_acc, outcome):
    sweep, lowest = sweep_run(store)
    lr_cfg = lambda a: LR.arm(a).config  # noqa: E731
    end = lambda loss: [dict(train_loss=loss, train_acc=0.9, val_loss=loss, val_acc=0.9)]  # noqa: E731
    runs = {
        "small": record(store, lr_cfg("small"), small_acc, end(2.0)),
        "good": record(store, lr_cfg("good"), 0.92, end(0.25)),
        "large": record(store, lr_cfg("large"), 0.1, end(large_loss)),
        "sweep": sweep,
    }
    evidence = lessons.Evidence(store, runs)
    suggested = _suggested_config(evidence)
    assert suggested["lr"] == pytest.approx(lowest / 3, rel=0.05)  # a third of the lowest point
    runs["suggested"] = record(store, suggested, 0.91, end(0.3))
    p = judged(store, LR, runs, "both")
    assert p.outcome == outcome and p.correct is (outcome == "both")
    assert f"{suggested['lr']:g}" in p.explanation


def test_a_nan_is_a_measurement_for_the_large_rate_and_a_problem_elsewhere(store):
    nan = dict(
        status="failed", reason="The loss became nan", test_metrics={"diverged": {"epoch": 1, "batch": 3}}
    )
    large = record(store, LR.arm("large").config, None, (), **nan)
    assert lessons.diverged(large)
    good = record(store, LR.arm("good").config, None, (), **nan)
    attempt = lessons.Attempt("lr", ADA.id, prediction="both", runs={"large": large.id, "good": good.id})
    p = lessons.progress(store, LR, attempt)
    assert p.status == "problem" and "lr 0.1" in p.message and "lr 10" not in p.message


@pytest.mark.parametrize(
    "numbers, outcome",
    [
        (
            dict(
                mlp_acc=0.91,
                mlp_shifted=0.40,
                cnn_acc=0.97,
                cnn_shifted=0.85,
                mlp_params=19885,
                cnn_params=20538,
            ),
            "cnn",
        ),
        (
            dict(
                mlp_acc=0.91,
                mlp_shifted=0.88,
                cnn_acc=0.97,
                cnn_shifted=0.95,
                mlp_params=19885,
                cnn_params=20538,
            ),
            "same",
        ),
        (
            dict(
                mlp_acc=0.91,
                mlp_shifted=0.90,
                cnn_acc=0.97,
                cnn_shifted=0.80,
                mlp_params=19885,
                cnn_params=20538,
            ),
            "mlp",
        ),
    ],
)
def test_convolution_judge(numbers, outcome):
    got, text = CONV.judge(numbers)
    assert got == outcome and "20,538" in text


def test_preprocessing_judge_names_the_costliest_stage():
    base = dict(
        all_acc=0.97,
        mnist_acc=0.98,
        no_invert_acc=0.12,
        no_crop_acc=0.42,
        no_scale_acc=0.75,
        no_center_acc=0.95,
    )
    assert PREPROCESS.judge(base)[0] == "invert"
    assert PREPROCESS.judge({**base, "no_invert_acc": 0.96})[0] == "crop"


def test_confusion_judge_maps_the_pair_or_another():
    n = dict(a=4, b=9, count=87, errors=720, a_as_b=75, b_as_a=12, acc=0.928)
    assert CONFUSION.judge(n)[0] == "49"
    outcome, text = CONFUSION.judge({**n, "a": 1, "b": 6})
    assert outcome == "other" and "1 and 6" in text


def test_measures_on_a_real_model(mnist, tmp_path):
    """The measures that need a model (shifted digits, drawings, the confusion matrix) on a real one."""
    cfg = TrainConfig.from_dict(dict(model="perceptron", optimizer="sgd", lr=0.1, epochs=1, limit=3000))
    model = train_model(cfg, mnist=mnist).model
    images = mnist.test_images[:50]
    moved = shifted(images)
    assert moved.shape == images.shape and not torch.equal(moved, images)
    assert (moved.float().sum((1, 2)) <= images.float().sum((1, 2))).all()  # ink only shifted out, never in
    drawings, labels = drawing_set(mnist, n=40)
    everything = drawing_accuracy(model, drawings, labels)
    no_invert = drawing_accuracy(model, drawings, labels, **STAGES["invert"])
    assert everything > no_invert + 0.3  # dark-on-light drawings are unreadable without inverting


# ---- the attempt's life in a real store ----
def test_prediction_is_kept_per_learner_and_fixed_once_runs_exist(store):
    a = lessons.load_attempt(store, ADA.id, "line")
    with pytest.raises(RunError, match="not one of"):
        lessons.predict(store, a, "maybe", LINE)
    lessons.predict(store, a, "same", LINE)
    assert lessons.load_attempt(store, ADA.id, "line").prediction == "same"
    assert lessons.load_attempt(store, BEN.id, "line").prediction is None  # Ben's own progress
    assert lessons.load_attempt(RunStore(store.root), ADA.id, "line").prediction == "same"  # a restart
    a.runs = {"perceptron": "x"}
    with pytest.raises(RunError, match="fixed"):
        lessons.predict(store, a, "hidden", LINE)


def test_redo_starts_over_and_keeps_the_history(store):
    a = lessons.load_attempt(store, ADA.id, "line")
    lessons.predict(store, a, "same", LINE)
    a.runs, a.verdict = {"perceptron": "r1"}, dict(outcome="hidden", correct=False)
    lessons.save_attempt(store, a)
    fresh = lessons.redo(store, a)
    again = lessons.load_attempt(store, ADA.id, "line")
    assert again.number == 2 and again.prediction is None and not again.runs
    assert again.past[0]["prediction"] == "same" and again.past[0]["verdict"]["correct"] is False
    assert fresh.number == again.number
    rows = {r["key"]: r["state"] for r in lessons.overview(store, ADA.id, list(LESSONS))}
    assert rows["line"] == "not started" and len(rows) == 8


def test_the_experiment_runs_through_the_job_api_and_a_stopped_run_is_retried(jobs, monkeypatch):
    monkeypatch.setenv(lessons.IMAGES_ENV, "500")
    a = lessons.load_attempt(jobs.store, ADA.id, "confusion")
    with pytest.raises(RunError, match="prediction first"):
        lessons.advance(jobs, CONFUSION, a, ADA)
    lessons.predict(jobs.store, a, "49", CONFUSION)
    lessons.advance(jobs, CONFUSION, a, ADA)
    run = jobs.store.get(a.runs["model"])
    assert run.owner == ADA.id and run.config["limit"] == 500  # the learner's run, capped
    jobs.stop(run.id, actor=ADA)
    p = lessons.progress(jobs.store, CONFUSION, lessons.load_attempt(jobs.store, ADA.id, "confusion"))
    assert p.status == "problem" and "stopped" in p.message
    lessons.retry(jobs, CONFUSION, a, ADA)
    assert a.runs["model"] != run.id
    jobs.wait(a.runs["model"], timeout_s=120)
    p = lessons.progress(jobs.store, CONFUSION, lessons.load_attempt(jobs.store, ADA.id, "confusion"))
    assert p.status == "judged" and p.outcome in {c.key for c in CONFUSION.choices}
    assert p.numbers["errors"] > 0 and f"{p.numbers['errors']} mistakes" in p.explanation


def test_every_lesson_is_well_formed():
    assert len(LESSONS) >= 8 and len(BY_KEY) == len(LESSONS)
    for lesson in LESSONS:
        assert len({c.key for c in lesson.choices}) == len(lesson.choices) >= 2
        for arm in lesson.arms:
            if not callable(arm.config):
                TrainConfig.from_dict(arm.config)  # every fixed config is valid
            assert set(arm.after) <= {a.name for a in lesson.arms}
        assert lesson.next_step.page in ("train", "runs", "evaluate", "draw", "inside")


# ---- the LR range test and divergence in the engine ----
def test_range_lr_rises_exponentially_to_the_peak():
    rates = [range_lr(10.0, s, 101) for s in range(101)]
    assert rates[0] == pytest.approx(1e-4) and rates[-1] == pytest.approx(10.0)
    assert all(b > a for a, b in zip(rates, rates[1:]))
    assert rates[50] == pytest.approx(math.sqrt(rates[0] * rates[-1]))


def test_a_range_test_ends_when_the_loss_explodes_not_with_an_error(mnist):
    cfg = TrainConfig.from_dict(
        dict(
            model="perceptron",
            optimizer="sgd",
            momentum=0.9,
            lr=10.0,
            epochs=1,
            limit=5000,
            batch_size=32,
            schedule="range",
        )
    )
    result = train_model(cfg, mnist=mnist)
    losses = result.state.history["batch_loss"]
    assert result.state.early_stopped and len(losses) < result.state.batches_per_epoch
    assert all(math.isfinite(v) for v in losses)
    rate, lowest = suggest_lr(
        [range_lr(10.0, s, result.state.batches_per_epoch) for s in range(len(losses))], losses
    )
    assert 1e-4 < rate < lowest < 10


class NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Linear(784, 10)

    def forward(self, x):
        out = self.w(x.flatten(1))
        return out * float("nan") if self.training and self.w.weight.grad is not None else out


def test_a_nan_loss_raises_diverged_with_where_it_happened(mnist):
    from mnist_core.data.mnist import make_splits

    cfg = TrainConfig.from_dict(dict(model="perceptron", epochs=1, limit=500, batch_size=50))
    with pytest.raises(Diverged, match="training diverged") as caught:
        fit(NaNNet(), make_splits(mnist, 0.1, 0, 500), cfg)
    assert caught.value.epoch == 1 and caught.value.batch == 2


def test_a_class_queue_limit_makes_later_arms_wait_instead_of_failing(jobs, monkeypatch):
    from mnist_core.jobs.classroom import ClassPolicy

    monkeypatch.setenv(lessons.IMAGES_ENV, "300")
    jobs.set_policy(ClassPolicy(max_queued=1), actor=ADMIN)
    a = lessons.load_attempt(jobs.store, ADA.id, "line")
    lessons.predict(jobs.store, a, "hidden", LINE)
    note = lessons.advance(jobs, LINE, a, ADA)
    assert set(a.runs) == {"perceptron"} and "1 run queued or training at once" in note
    jobs.wait(a.runs["perceptron"], timeout_s=120)
    assert lessons.advance(jobs, LINE, a, ADA) == "" and set(a.runs) == {"perceptron", "hidden"}


def test_an_arm_started_from_two_tabs_runs_once_and_so_does_its_retry(jobs, monkeypatch):
    monkeypatch.setenv(lessons.IMAGES_ENV, "300")
    a = lessons.load_attempt(jobs.store, ADA.id, "line")
    lessons.predict(jobs.store, a, "hidden", LINE)
    tab1, tab2 = (lessons.load_attempt(jobs.store, ADA.id, "line") for _ in range(2))  # both pages open
    lessons.advance(jobs, LINE, tab1, ADA)
    lessons.advance(jobs, LINE, tab2, ADA)  # the second tab's click, on what it loaded before
    assert tab2.runs == tab1.runs and set(tab1.runs) == {"perceptron", "hidden"}
    assert len(jobs.store.list()) == 2
    first_hidden = tab1.runs["hidden"]
    jobs.stop(first_hidden, actor=ADA)  # queued behind perceptron: cancelled at once
    tab1, tab2 = (lessons.load_attempt(jobs.store, ADA.id, "line") for _ in range(2))
    lessons.retry(jobs, LINE, tab1, ADA)
    lessons.retry(jobs, LINE, tab2, ADA)
    assert tab1.runs == tab2.runs and tab1.runs["hidden"] != first_hidden
    assert len(jobs.store.list()) == 3  # one new run for the retried arm, not two
    assert lessons.load_attempt(jobs.store, ADA.id, "line").runs == tab1.runs
