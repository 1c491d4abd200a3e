"""The disk budget: what a run keeps, runs refused before they start, pruning, a full disk told apart."""

import errno
import os
import sqlite3

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.cli import main as cli
from mnist_core.jobs.classroom import ClassPolicy
from mnist_core.jobs.identity import ADMIN, User
from mnist_core.jobs.integrity import verify
from mnist_core.jobs.manager import JobManager, disk
from mnist_core.jobs.store import RunStore
from mnist_core.learn.checkpoints import CheckpointError, atomic_save, read_checkpoint
from mnist_core.learn.config import TrainConfig
from support import APPTEST_AUTH, PAGES_DIR, ROOT
from support.tmpfs import fill, require_mount, tmpfs


def cfg(**kw):
    base = dict(model="mlp_128_64", epochs=3, limit=1500, batch_size=50, val_fraction=0.1)
    return TrainConfig.from_dict({**base, **kw})


def test_a_run_keeps_one_copy_of_its_best_weights_and_one_optimizer_state(jobs):
    run = jobs.wait(jobs.submit(cfg(), actor=ADMIN).id, timeout_s=120)
    assert run.status == "completed", jobs.log_tail(run.id)
    folder = jobs.store.layout.run_dir(run.id)
    best = jobs.store.layout.best_checkpoint(run.id)
    epoch_files = sorted(folder.glob("epoch-*.pt"))
    assert len(epoch_files) == 3
    assert sum(os.path.samefile(best, p) for p in epoch_files) == 1  # a second name, not a copy
    assert [p.name for p in folder.glob("resume-*.pt")] == ["resume-003.pt"]
    assert all("optimizer" not in read_checkpoint(p)["extra"] for p in epoch_files)
    resume = read_checkpoint(folder / "resume-003.pt", kind="resume")
    assert resume["epoch"] == 3 and resume["step"] == 3 * 30 and resume["optimizer"]["state"]
    # what the store takes counts best.pt once
    sizes = sum(p.stat().st_size for p in folder.iterdir())
    assert disk.tree_bytes(folder) < sizes - best.stat().st_size + 64 * 1024
    # and Extend continues from the resume file
    more = jobs.wait(jobs.extend(run.id, 1, actor=ADMIN).id, timeout_s=120)
    assert more.status == "completed" and more.epochs_done == 4
    assert [p.name for p in folder.glob("resume-*.pt")] == ["resume-004.pt"]


def test_the_estimate_is_close_to_what_a_run_writes(jobs):
    c = cfg(epochs=2)
    run = jobs.wait(jobs.submit(c, actor=ADMIN).id, timeout_s=120)
    written = disk.tree_bytes(jobs.store.layout.run_dir(run.id))
    need = disk.run_need_bytes(c)
    assert written <= need <= 3 * written  # never under, and not wildly over


def test_prune_keeps_best_and_last_and_says_what_it_freed(jobs, capsys):
    run = jobs.wait(jobs.submit(cfg(epochs=4), actor=ADMIN).id, timeout_s=120)
    folder = jobs.store.layout.run_dir(run.id)
    best = jobs.store.layout.best_checkpoint(run.id)
    best_epoch = next(e for e, p in jobs.store.checkpoints(run.id) if os.path.samefile(p, best))
    sizes = {p.name: p.stat().st_size for p in folder.glob("epoch-*.pt")}
    report = disk.prune(jobs.store, actor=ADMIN)
    kept = sorted(p.name for p in folder.glob("epoch-*.pt"))
    assert kept == sorted({f"epoch-{best_epoch:03d}.pt", "epoch-004.pt"})
    assert report.files == 4 - len(kept) and report.runs == 1
    assert report.freed_bytes == sum(v for k, v in sizes.items() if k not in kept)
    assert [e["epoch"] for e in jobs.store.epochs(run.id)] == [1, 2, 3, 4]  # every record stays
    assert verify(jobs.store) == []
    assert disk.prune(jobs.store, actor=ADMIN).files == 0  # nothing left to prune
    more = jobs.wait(jobs.extend(run.id, 1, actor=ADMIN).id, timeout_s=120)  # Extend still works
    assert more.status == "completed" and more.epochs_done == 5
    os.environ["MNIST_LAB_CHECKPOINTS"] = str(jobs.store.root)  # the fixture's env is restored after
    assert cli(["prune"]) == 0
    out = capsys.readouterr().out
    assert "runs=1 files=1 freed_mb=" in out and "free_mb=" in out  # epoch 4 is no longer the last


def test_a_run_that_would_not_fit_is_refused_before_it_starts_with_the_numbers(monkeypatch):
    require_mount()
    with tmpfs(6) as mnt:
        store = RunStore(mnt / "store")
        jobs = JobManager(store, max_concurrent=1)
        big = TrainConfig.from_dict(dict(model="better_cnn", epochs=20, limit=2000))
        with pytest.raises(disk.DiskBudgetError, match=r"needs about [\d.,]+ MB .* [\d.,]+ MB are free"):
            jobs.submit(big, actor=ADMIN)
        assert store.list() == []  # nothing queued, nothing written
        # the Train page says so instead of a traceback
        monkeypatch.setenv("MNIST_LAB_CHECKPOINTS", str(store.root))
        st.cache_resource.clear()
        at = AppTest.from_file(str(PAGES_DIR / "train.py"), default_timeout=60).run()
        at.selectbox(key="cfg_model").select("better_cnn").run()
        at.slider(key="cfg_epochs").set_value(20).run()
        next(b for b in at.button if b.label == "Start training").click().run()
        assert not at.exception
        assert any("would not fit" in e.value for e in at.error), [e.value for e in at.error]
        # once the disk is nearly full even a small run is refused
        fill(mnt, leave_bytes=512 * 1024)
        with pytest.raises(disk.DiskBudgetError):
            jobs.submit(cfg(epochs=1), actor=ADMIN)


def test_a_full_disk_is_told_apart_from_other_faults(tmp_path):
    assert disk.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk.is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert not disk.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not disk.is_disk_full(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    try:  # the error torch.save really raises on a full disk arrives wrapped: the cause counts
        try:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 1844736 vs 1844628"
            )
        except RuntimeError as inner:
            raise CheckpointError("Could not write checkpoint x.pt") from inner
    except CheckpointError as exc:
        assert disk.is_disk_full(exc)


def test_atomic_save_on_a_real_full_disk_leaves_the_previous_file_and_no_partial_one():
    require_mount()
    import torch

    with tmpfs(4) as mnt:
        path = atomic_save({"w": torch.zeros(1000)}, mnt / "model.pt")
        before = path.read_bytes()
        fill(mnt, leave_bytes=64 * 1024)
        with pytest.raises(CheckpointError, match="previous file, if any, is unchanged") as info:
            atomic_save({"w": torch.zeros(1_000_000)}, path)  # 4 MB: does not fit
        assert disk.is_disk_full(info.value)
        assert path.read_bytes() == before
        assert sorted(p.name for p in mnt.iterdir()) == ["filler.bin", "model.pt"]


ADA = User("ada@school.example", "Ada", "learner")
BEN = User("ben@school.example", "Ben", "learner")
TEACHER = User("t@school.example", "Teacher", "teacher")


def epoch_files(jobs: JobManager, run_id: str) -> list[str]:
    return sorted(p.name for p in jobs.store.layout.run_dir(run_id).glob("epoch-*.pt"))


def test_a_learners_prune_leaves_everyone_elses_epoch_files():
    """Through the job API and the Runs page, signed in: Ada's prune is hers alone; a teacher's is
    everyone's."""
    jobs = JobManager(RunStore(), max_concurrent=1)  # the store the page opens ($MNIST_LAB_CHECKPOINTS)
    ada, ben = (jobs.wait(jobs.submit(cfg(epochs=4, limit=300), actor=u).id, 120) for u in (ADA, BEN))
    assert ada.status == ben.status == "completed"
    bens = epoch_files(jobs, ben.id)
    assert len(bens) == 4
    report = disk.prune(jobs.store, actor=ADA)
    assert report.runs == 1 and len(epoch_files(jobs, ada.id)) < 4
    assert epoch_files(jobs, ben.id) == bens  # Ben's run is his to prune
    # the Runs page as Ada: the button says whose runs it prunes, and keeps to them
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets = {
        "auth": APPTEST_AUTH,
        "classroom": {"teachers": [TEACHER.id], "allowed_domains": ["school.example"]},
    }
    at.user = {"is_logged_in": True, "sub": ADA.id, "email": ADA.id, "email_verified": True, "name": "Ada"}
    at.switch_page("pages/runs.py")
    at.run()
    assert not at.exception
    labels = [b.label for b in at.button if b.label.startswith("Prune")]
    assert labels == ["Prune epoch files of your finished runs"]
    next(b for b in at.button if b.label == labels[0]).click().run()
    assert not at.exception
    assert epoch_files(jobs, ben.id) == bens
    assert disk.prune(jobs.store, actor=TEACHER).runs == 1  # a teacher prunes every run
    assert len(epoch_files(jobs, ben.id)) < 4


def test_prune_and_every_job_action_need_an_explicit_actor(jobs):
    """No action falls back to the administrator: a caller that forgets the user fails loudly."""
    run = jobs.store.create(cfg().to_dict(), owner=ADA.id, owner_name=ADA.name)
    for action in (
        lambda: jobs.submit(cfg()),
        lambda: jobs.stop(run.id),
        lambda: jobs.extend(run.id, 1),
        lambda: jobs.clone(run.id, lr=0.01),
        lambda: jobs.delete(run.id),
        lambda: jobs.set_policy({}),
        lambda: disk.prune(jobs.store),
        lambda: jobs.stop(run.id, 1.0, ADMIN),  # positionally is no way around it either
    ):
        with pytest.raises(TypeError, match="actor|positional"):
            action()
    assert [r.id for r in jobs.store.list()] == [run.id] and jobs.store.get(run.id).status == "queued"


# ---- the queue's disk need and a learner's quota ----
LEE = User("lee@school.example", "Lee", "learner")
KIM = User("kim@school.example", "Kim", "learner")
HEAD = User("head@school.example", "Head", "teacher")


def test_the_disk_check_counts_what_the_queue_will_write():
    require_mount()
    with tmpfs(24) as mnt:
        jobs = JobManager(RunStore(mnt / "store"), max_concurrent=1)
        wide = cfg(model="mlp_500_125", epochs=4)  # about 14 MB: one fits in 24 MB, two do not
        first = jobs.submit(wide, actor=ADMIN)  # its worker is still starting: nothing written yet
        try:
            with pytest.raises(
                disk.DiskBudgetError,
                match=r"needs about 14.4 MB .* [\d.]+ MB are free, of which the runs queued or training "
                r"will write 14.4 MB",
            ):
                jobs.submit(wide, actor=ADMIN)
            assert [r.id for r in jobs.store.list()] == [first.id]
            assert disk.usage(jobs.store)["queued_bytes"] == disk.run_need_bytes(wide)
        finally:
            jobs.stop(first.id, actor=ADMIN)


def test_a_learner_over_the_disk_quota_is_refused_with_the_numbers(jobs):
    jobs.set_policy(ClassPolicy(max_disk_mb=3), actor=HEAD)
    small = cfg(epochs=1, limit=300)  # writes about 1.4 MB, estimated at 2.3 MB
    done = jobs.wait(jobs.submit(small, actor=LEE).id, timeout_s=120)
    assert done.status == "completed", jobs.log_tail(done.id)
    used = disk.usage(jobs.store, owner=LEE.id)["owner_bytes"]
    assert used == disk.tree_bytes(jobs.store.layout.run_dir(done.id)) > 1_000_000
    with pytest.raises(
        disk.DiskBudgetError,
        match=rf"over your class's disk quota of 3 MB: your runs take {used / disk.MB:,.1f} MB, your runs "
        r"queued or training will write about 0.0 MB more, and this one needs about 2.3 MB",
    ):
        jobs.submit(small, actor=LEE)
    with pytest.raises(disk.DiskBudgetError, match="disk quota"):
        jobs.extend(done.id, 1, actor=LEE)  # Extend is held to it too
    # what is queued counts against the quota: Kim's first run fits, a second one beside it not
    blocker = jobs.submit(cfg(epochs=30, limit=3000), actor=HEAD)  # a teacher has no quota
    kims = jobs.submit(small, actor=KIM)
    with pytest.raises(disk.DiskBudgetError, match=r"your runs take 0.0 MB, your runs queued or training "
                       r"will write about 2.3 MB more"):  # fmt: skip
        jobs.submit(small, actor=KIM)
    jobs.stop(kims.id, actor=KIM)
    jobs.stop(blocker.id, actor=HEAD)
    jobs.set_policy(ClassPolicy(max_disk_mb=100), actor=HEAD)  # a teacher raises the quota
    assert jobs.wait(jobs.submit(small, actor=LEE).id, timeout_s=120).status == "completed"
