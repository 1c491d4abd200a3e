"""A class on one dashboard: ownership enforced in the job API, fair turns, limits and exercises."""

import sqlite3

import pytest

from mnist_core.analysis.compare import comparison_rows
from mnist_core.jobs.classroom import ClassPolicy, LimitReached, NotAllowed, runs_to_queue, wall_rows
from mnist_core.jobs.identity import ADMIN, LOCAL, User
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import Run, RunStore, fair_order
from mnist_core.learn.config import ConfigError, TrainConfig
from mnist_core.learn.models import REGISTRY
from mnist_core.lessons.book import LESSONS

A, B, C = (User(f"{n}@school.example", n.upper(), "learner") for n in "abc")
TEACHER = User("t@school.example", "Ms T", "teacher")


def tiny(**kw):
    base = dict(model="mlp_128_64", epochs=1, limit=300, batch_size=50, val_fraction=0.1)
    return TrainConfig.from_dict({**base, **kw})


def fake(run_id: str, owner: str, seq: int) -> Run:
    return Run(run_id, "m", {}, "queued", None, 0, None, None, seq, None, None, None, 0, {}, None, None,
               {}, None, 0, 0, owner=owner)  # fmt: skip


def test_fair_order_takes_learners_in_turn():
    queued = [fake(f"{o}{i}", o, seq) for seq, (o, i) in enumerate((o, i) for o in "abc" for i in (1, 2, 3))]
    assert [r.id for r in fair_order(queued, {})] == ["a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3", "c3"]
    # whoever started most recently waits for the others
    assert [r.id for r in fair_order(queued, {"a": 10.0, "b": 5.0})][:3] == ["c1", "b1", "a1"]


def test_three_learners_times_three_runs_start_round_robin(jobs):
    blocker = jobs.submit(tiny(epochs=30, limit=3000), actor=TEACHER)  # holds the only slot
    mine = {u.id: [jobs.submit(tiny(seed=i), actor=u).id for i in range(3)] for u in (A, B, C)}
    expected = [mine[u.id][i] for i in range(3) for u in (A, B, C)]
    positions = {r.id: r.queue_position for r in jobs.store.list(("queued",))}
    assert sorted(positions, key=positions.get) == expected  # what each learner is told
    assert jobs.get(mine[C.id][0]).queue_position == 3
    jobs.stop(blocker.id, actor=TEACHER)
    for run_id in expected:
        done = jobs.wait(run_id, timeout_s=120)
        assert done.status == "completed", (done.reason, jobs.log_tail(run_id)[-1500:])
    started = sorted(expected, key=lambda rid: jobs.store.get(rid).started)
    assert started == expected


def test_learners_control_only_their_own_runs_and_teachers_all(jobs):
    run = jobs.submit(tiny(epochs=30, limit=3000), actor=A)
    assert run.owner == A.id and run.owner_name == "A"
    for action in (
        lambda: jobs.stop(run.id, actor=B),
        lambda: jobs.delete(run.id, actor=B),
        lambda: jobs.clone(run.id, actor=B, lr=0.01),
    ):
        with pytest.raises(NotAllowed, match="belongs to A"):
            action()
    assert jobs.get(run.id).status == "running"  # untouched
    stopped = jobs.stop(run.id, actor=TEACHER)
    assert stopped.status == "stopped"
    with pytest.raises(NotAllowed, match="only they or a teacher can extend"):
        jobs.extend(run.id, 1, actor=B)
    clone = jobs.clone(run.id, actor=A, epochs=1, limit=300)
    assert clone.owner == A.id
    jobs.stop(clone.id, actor=A)
    jobs.delete(run.id, actor=A)
    assert all(r.id != run.id for r in jobs.store.list())


def test_limits_on_queued_runs_and_run_size(jobs):
    jobs.set_policy(ClassPolicy(max_queued=2, max_run_images=5000), actor=TEACHER)
    jobs.submit(tiny(epochs=30, limit=3000, seed=1), actor=TEACHER)  # teachers are not bound
    jobs.submit(tiny(), actor=A)
    jobs.submit(tiny(seed=2), actor=A)
    with pytest.raises(LimitReached, match="already have 2 run"):
        jobs.submit(tiny(seed=3), actor=A)
    jobs.submit(tiny(), actor=B)  # B has their own allowance
    with pytest.raises(LimitReached, match=r"at most 5,000 images in all .* 3 x 3,000 = 9,000"):
        jobs.submit(tiny(epochs=3, limit=3000), actor=B)


def test_an_exercise_binds_every_entry_point_for_learners(jobs, tmp_path):
    policy = ClassPolicy(exercise="small data", at_most={"limit": 10_000, "epochs": 3})
    with pytest.raises(NotAllowed):
        jobs.set_policy(policy, actor=A)
    jobs.set_policy(policy, actor=TEACHER)
    assert JobManager(RunStore(jobs.store.root)).policy() == policy  # kept in the store for everyone
    assert policy.rules() == ["at most 3 epochs", "at most 10,000 training images"]
    with pytest.raises(LimitReached, match="at most 10,000 training images, not all of them"):
        jobs.submit(tiny(limit=0), actor=A)
    with pytest.raises(LimitReached, match="at most 3 for epochs, not 5"):
        jobs.submit(tiny(epochs=5), actor=A)
    run = jobs.wait(jobs.submit(tiny(), actor=A).id, timeout_s=120)
    assert run.exercise == "small data"
    with pytest.raises(LimitReached, match="at most 3 for epochs"):
        jobs.extend(run.id, 3, actor=A)  # 1 + 3 epochs
    assert jobs.submit(tiny(epochs=5), actor=ADMIN).owner == "admin"  # the command line is not bound
    with pytest.raises(ConfigError, match="only for epochs, limit, batch_size"):
        ClassPolicy.from_dict({"at_most": {"lr": 1}})


def test_the_wall_lists_completed_runs_by_owner_with_nothing_personal(jobs):
    done = [jobs.wait(jobs.submit(tiny(seed=i), actor=u).id, timeout_s=120) for i, u in enumerate((A, B))]
    rows = wall_rows(jobs.store)
    assert {r["name"] for r in rows} == {"A", "B"} and len(rows) == 2
    assert {"model", "best_val_acc", "epochs", "training_images", "seconds", "exercise"} <= set(rows[0])
    assert not any("@" in str(v) for r in rows for v in r.values())  # no e-mail on the wall
    assert {r["run"] for r in rows} == {d.id for d in done}


def test_a_store_from_before_owners_opens_with_the_local_user_as_owner(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    db = sqlite3.connect(root / "runs.db")
    db.executescript(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, model TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT "
        "NULL, reason TEXT, created REAL NOT NULL, started REAL, finished REAL, queue_seq INTEGER, pid "
        "INTEGER, heartbeat REAL, parent TEXT, epochs_done INTEGER NOT NULL DEFAULT 0, progress TEXT, "
        "best_val_acc REAL, test_acc REAL, test_metrics TEXT, images_per_s REAL, train_seconds REAL NOT "
        "NULL DEFAULT 0, stop_requested INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO runs (id, model, config, status, created) VALUES ('old-1', 'mlp_128_64', '{}', "
        "'completed', 1.0);"
    )
    db.commit()
    db.close()
    (root / "runs" / "old-1").mkdir(parents=True)
    run = RunStore(root).get("old-1")
    assert run.owner == "local" and run.status == "completed"


def test_the_class_rules_survive_a_rebuild_of_a_damaged_store(jobs):
    from mnist_core.jobs.repair import rebuild

    policy = ClassPolicy(max_queued=3, exercise="after the flood", at_most={"epochs": 2})
    jobs.set_policy(policy, actor=TEACHER)
    run = jobs.wait(jobs.submit(tiny(), actor=A).id, timeout_s=120)
    jobs.store.close()
    db = jobs.store.root / "runs.db"
    db.write_bytes(b"\0" * db.stat().st_size)  # zeroed
    rebuild(jobs.store.root)
    fresh = JobManager(RunStore(jobs.store.root))
    assert fresh.policy() == policy
    back = fresh.store.get(run.id)
    assert back.owner == A.id and back.owner_name == "A" and back.exercise == "after the flood"


# ---- the run limits: safe defaults for everyone, raised by a teacher ----


def cancel_queued_then_stop(jobs, blocker):
    """Cancel the queued runs first, so that none of them starts when the blocker's slot frees."""
    for run in jobs.store.list(("queued",)):
        jobs.stop(run.id, actor=ADMIN)
    jobs.stop(blocker.id, actor=ADMIN)


def test_the_default_run_limits_refuse_a_too_long_run_for_everyone_and_fit_every_preset(jobs):
    assert jobs.policy() == ClassPolicy()  # nothing configured: the defaults hold
    for key in REGISTRY:  # every reference preset and every lesson's fixed runs fit the defaults
        assert ClassPolicy().limit_problems(TrainConfig.for_model(key)) == [], key
    arms = [a.config for lesson in LESSONS for a in lesson.arms if not callable(a.config)]
    assert len(arms) >= 10 and all(ClassPolicy().limit_problems(TrainConfig.from_dict(c)) == [] for c in arms)
    for who in (A, LOCAL, ADMIN, TEACHER):
        with pytest.raises(LimitReached, match="a run may train at most 50 epochs, not 51"):
            jobs.submit(tiny(epochs=51), actor=who)
    with pytest.raises(LimitReached, match="over the limits set for every run here.*can raise them"):
        jobs.submit(tiny(epochs=51), actor=LOCAL)
    assert jobs.store.list() == []  # nothing queued
    run = jobs.wait(jobs.submit(tiny(), actor=A).id, timeout_s=120)  # the healthy default run
    assert run.status == "completed" and run.time_limit == 7200
    with pytest.raises(LimitReached, match="at most 50 epochs, not 51"):
        jobs.extend(run.id, 50, actor=A)  # 1 + 50 epochs: Extend is held to it too


def test_images_x_epochs_are_bounded_and_a_teacher_raises_the_limits(jobs):
    # the default images limit is 50 epochs of the full set, so a teacher who allows more epochs
    # for small runs still bounds a run's size
    jobs.set_policy(ClassPolicy(max_epochs=200), actor=TEACHER)
    with pytest.raises(LimitReached, match=r"at most 3,000,000 images in all .* 100 x 54,000 = 5,400,000"):
        jobs.submit(tiny(epochs=100, limit=0), actor=A)
    with pytest.raises(LimitReached, match="at most 3,000,000 images"):
        jobs.submit(tiny(epochs=100, limit=0), actor=ADMIN)  # the administrator too
    long = jobs.submit(tiny(epochs=100, limit=300), actor=A)  # raised: 100 small epochs are allowed
    assert long.config["epochs"] == 100
    jobs.stop(long.id, actor=A)
    # a class's tighter rule binds learners only: teachers and the administrator keep the defaults
    jobs.set_policy(ClassPolicy(max_epochs=3), actor=TEACHER)
    with pytest.raises(LimitReached, match="at most 3 epochs, not 4"):
        jobs.submit(tiny(epochs=4), actor=A)
    jobs.stop(jobs.submit(tiny(epochs=4), actor=ADMIN).id, actor=ADMIN)


def test_change_one_thing_with_a_huge_batch_is_refused_by_its_memory_estimate(jobs):
    blocker = jobs.submit(tiny(epochs=30, limit=3000), actor=TEACHER)  # holds the only slot
    base = jobs.submit(TrainConfig.for_model("cnn_3"), actor=A)  # the preset, on all the images
    assert base.status == "queued"
    for who in (A, LOCAL):  # what Runs -> "Change one thing" calls
        with pytest.raises(LimitReached, match=(
            r"a batch of 54,000 images of cnn_3 needs about [\d,]+ MB of memory for its activations "
            r"\([\d,]+ KB per image\), and a run may use 2,048 MB: use a batch size of at most [\d,]+"
        )):  # fmt: skip
            jobs.clone(base.id, actor=who, batch_size=60_000)
    assert {r.id for r in jobs.store.list()} == {blocker.id, base.id}  # nothing queued
    assert jobs.clone(base.id, actor=A, batch_size=1024).status == "queued"  # a large batch that fits
    jobs.set_policy(ClassPolicy(max_batch_mb=100_000), actor=TEACHER)  # a teacher raises the bound
    assert jobs.clone(base.id, actor=A, batch_size=60_000).config["batch_size"] == 60_000
    cancel_queued_then_stop(jobs, blocker)  # accepted, and never trained here


def test_the_time_limit_stops_a_run_cleanly_and_keeps_its_finished_epochs(jobs):
    # 5 s: the data's loading counts, and a busy machine (the suite beside a benchmark) still ends
    # an epoch of 6,000 images well within it, while 50 of them take far longer
    jobs.set_policy(ClassPolicy(max_run_seconds=5), actor=TEACHER)
    run = jobs.wait(jobs.submit(tiny(epochs=50, limit=6000), actor=A).id, timeout_s=120)
    assert run.time_limit == 5
    assert run.status == "stopped", (run.status, run.reason, jobs.log_tail(run.id))
    assert run.reason.startswith("Stopped: reached the class's time limit of 5 s per run; ")
    assert 1 <= run.epochs_done < 50, run.reason
    assert f"{run.epochs_done} finished epoch" in run.reason and "are kept" in run.reason
    assert [e for e, _ in jobs.store.checkpoints(run.id)][-1] == run.epochs_done
    jobs.set_policy(ClassPolicy(max_run_seconds=600), actor=TEACHER)  # raised: Extend trains on
    more = jobs.wait(jobs.extend(run.id, 1, actor=A).id, timeout_s=120)
    assert more.status == "completed" and more.epochs_done == run.epochs_done + 1
    assert more.time_limit == 600


def test_queue_the_missing_runs_twice_queues_each_once_within_the_queue_limit(jobs):
    blocker = jobs.submit(tiny(epochs=30, limit=3000), actor=TEACHER)  # holds the only slot
    missing = [r["config"] for r in comparison_rows([])]
    assert len(missing) == 5

    def click(who):  # what the Runs page's button does
        todo, note = runs_to_queue(jobs.policy(), who, missing, jobs.store.list(("queued", "running")))
        return [jobs.submit(c, actor=who).id for c in todo], note

    jobs.set_policy(ClassPolicy(max_queued=3), actor=TEACHER)
    first, note = click(A)
    assert len(first) == 3 and "2 more runs cannot be queued yet" in note and "3 runs queued" in note
    assert click(A) == ([], note)  # a second click queues nothing more
    assert len(click(LOCAL)[0]) == 5 and click(LOCAL) == ([], "")  # no queue limit: still once each
    assert jobs.store.active_count(A.id) == 3 and jobs.store.active_count(LOCAL.id) == 5
    cancel_queued_then_stop(jobs, blocker)
