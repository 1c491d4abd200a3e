"""A damaged runs.db: detected on open with a clear message, rebuilt from the run folders with no
completed run lost (counted with tests/support/snapshots.py), from the library and the CLI."""

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from mnist_core.cli import main as cli
from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.integrity import verify
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.repair import rebuild
from mnist_core.jobs.store import DB_NAME, RunStore, StoreDamaged
from mnist_core.learn.config import TrainConfig
from support.snapshots import records_lost, snapshot
from support.store_faults import DAMAGES, damage_db, workers_exited


def cfg(**kw):
    return TrainConfig.from_dict(dict(model="mlp_128_64", epochs=2, limit=1500, batch_size=50, **kw))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Two completed runs of two epochs (30 batches each), trained once for the whole module."""
    root = tmp_path_factory.mktemp("template") / "store"
    jobs = JobManager(RunStore(root), max_concurrent=1)
    runs = [jobs.submit(cfg(seed=seed), actor=ADMIN) for seed in (1, 2)]
    for run in runs:
        assert jobs.wait(run.id, timeout_s=180).status == "completed", jobs.log_tail(run.id)
    workers_exited()
    jobs.store.fold_wal()
    jobs.store.close()
    return root


@pytest.fixture()
def root(template) -> Path:
    """A copy of the template at this test's own $MNIST_LAB_CHECKPOINTS (conftest), as the CLI sees it."""
    dest = Path(os.environ["MNIST_LAB_CHECKPOINTS"])
    shutil.copytree(template, dest)
    return dest


def take_snapshot(root: Path):
    store = RunStore(root)
    snap, runs = snapshot(store), {r.id: r for r in store.list()}
    store.close()
    return snap, runs


def test_the_run_json_mirror_follows_status_changes_and_never_fails_the_caller(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "store")
    run = store.create({"model": "mlp_128_64", "epochs": 1})
    assert store.read_mirror(run.id)["status"] == "queued"
    assert store.claim_queued(1) == [run.id]
    assert store.read_mirror(run.id)["status"] == "running"
    writes = []
    with pytest.MonkeyPatch.context() as counting:  # its own: undoing `monkeypatch` would undo conftest's
        counting.setattr(RunStore, "_mirror", lambda self, run_id: writes.append(run_id))
        store.append_batches(run.id, [(1, 1, 0.5, 1.0)], progress={"epoch": 1})
        store.append_epoch(run.id, {"epoch": 1}, None, epochs_done=1)
    assert writes == []  # per batch and per epoch: no file write
    store.update(run.id, status="completed", test_acc=0.9, test_metrics={"loss": 0.3})
    mirror = store.read_mirror(run.id)
    assert (mirror["status"], mirror["test_acc"], mirror["epochs_done"]) == ("completed", 0.9, 1)
    assert mirror["test_metrics"] == {"loss": 0.3} and mirror["config"]["epochs"] == 1
    assert oct(store.layout.mirror_path(run.id).stat().st_mode & 0o777) == "0o644"

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mnist_core.jobs.layout.tempfile.mkstemp", full_disk)
    store.update(run.id, reason="still recorded")  # the mirror fails quietly, the store does not
    assert store.get(run.id).reason == "still recorded"
    assert not list(store.layout.run_dir(run.id).glob(".*.tmp"))


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_database_is_detected_on_open_with_a_clear_message(root, kind):
    damage_db(root, kind)
    with pytest.raises(StoreDamaged) as caught:
        RunStore(root)
    message = str(caught.value)
    assert str(root / DB_NAME) in message and "damaged" in message
    assert "mnist-lab check --repair" in message and "Rebuild the run store from the run folders" in message
    assert caught.value.root == root
    with pytest.raises(StoreDamaged):
        JobManager()  # the dashboard's and the CLI's way in


def test_a_missing_or_empty_database_beside_run_folders_is_damage_too(root):
    before, _ = take_snapshot(root)
    (root / DB_NAME).write_bytes(b"")
    with pytest.raises(StoreDamaged, match=r"empty \(0 bytes\) but 2 run folder"):
        RunStore(root)
    (root / DB_NAME).unlink()
    with pytest.raises(StoreDamaged, match="missing but 2 run folder"):
        RunStore(root)
    report = rebuild(root)
    assert report.moved_to is None and report.runs == 2
    assert records_lost(before, snapshot(RunStore(root))) == []
    RunStore(tmp := root.parent / "fresh")  # a new store without run folders is not damage
    assert (tmp / DB_NAME).is_file()


def test_rebuild_restores_completed_runs_exactly(root):
    before, rows = take_snapshot(root)
    assert len(before.runs) == 2 and len(before.epochs) == 4 and len(before.batches) == 120
    damaged = damage_db(root, "garbage")
    report = rebuild(root)
    assert (report.runs, report.epochs, report.batches) == (2, 4, 120)
    assert report.skipped == [] and report.notes == []
    assert report.moved_to.name.startswith("runs.db.damaged-") and report.moved_to.read_bytes() == damaged
    store = RunStore(root)
    assert records_lost(before, snapshot(store)) == []  # runs, epoch records, batch losses, files
    for run in store.list():  # every field of a completed run comes back from its run.json
        assert asdict(run) == asdict(rows[run.id])
        assert [e["checkpoint"] for e in store.epochs(run.id)] == [
            str(store.layout.epoch_checkpoint(run.id, e)) for e in (1, 2)
        ]
    assert verify(store) == []
    again = rebuild(root)  # the store is sound now: nothing to do
    assert (again.damage, again.runs, again.moved_to) == (None, 0, None)
    assert "nothing to rebuild" in again.text()


def test_runs_without_a_readable_run_json_or_still_active_come_back_interrupted(root):
    before, rows = take_snapshot(root)
    a, b = sorted(rows)
    store = RunStore(root)
    store.layout.mirror_path(a).write_text("{not json")
    mirror = json.loads(store.layout.mirror_path(b).read_text())
    store.layout.mirror_path(b).write_text(json.dumps({**mirror, "status": "running", "pid": None}))
    store.close()
    damage_db(root, "zeroed")
    report = rebuild(root)
    assert report.runs == 2 and report.skipped == []
    assert len(report.notes) == 1 and a in report.notes[0] and "unreadable" in report.notes[0]
    store = RunStore(root)
    assert records_lost(before, snapshot(store)) == []
    ra, rb = store.get(a), store.get(b)
    assert ra.status == "interrupted" and "Rebuilt from its checkpoints" in ra.reason
    assert ra.config == rows[a].config and ra.epochs_done == 2 and ra.best_val_acc == rows[a].best_val_acc
    assert ra.test_acc is None  # not in any checkpoint
    assert rb.status == "interrupted" and "process is unknown" in rb.reason and "Extend" in rb.reason
    assert rb.test_acc == rows[b].test_acc and rb.pid is None
    assert store.read_mirror(a)["status"] == "interrupted"  # the mirror is whole again
    assert verify(store) == []


def test_pruned_epochs_come_back_without_a_checkpoint_path(root):
    before, rows = take_snapshot(root)
    a = sorted(rows)[0]
    store = RunStore(root)
    store.layout.epoch_checkpoint(a, 1).unlink()  # pruned: only best and last are kept
    store.close()
    before.files = {p: d for p, d in before.files.items() if not p.endswith(f"{a}/epoch-001.pt")}
    damage_db(root, "truncated")
    report = rebuild(root)
    store = RunStore(root)
    assert report.runs == 2 and records_lost(before, snapshot(store)) == []
    assert [e["checkpoint"] for e in store.epochs(a)] == [None, str(store.layout.epoch_checkpoint(a, 2))]


def test_a_folder_with_corrupt_checkpoints_is_skipped_with_a_reason_not_a_crash(root):
    before, rows = take_snapshot(root)
    a, b = sorted(rows)
    store = RunStore(root)
    for e in (1, 2):  # every epoch file of a is damaged
        path = store.layout.epoch_checkpoint(a, e)
        path.write_bytes(path.read_bytes()[:1000])
    newest = store.layout.epoch_checkpoint(b, 2)  # b: only its newest epoch file
    newest.write_bytes(b"\0" * 100)
    (root / "runs" / "not a run").mkdir()
    (root / "runs" / "stray.txt").write_text("not a folder")
    store.close()
    damage_db(root, "garbage")
    report = rebuild(root)
    skipped = dict(report.skipped)
    assert set(skipped) == {a, "not a run"}
    assert "none of its 2 epoch checkpoints can be read" in skipped[a] and "truncated" in skipped[a]
    assert "Refused run id" in skipped["not a run"]
    assert (root / "runs" / a / "run.json").is_file()  # a skipped folder is left as it was
    assert report.runs == 1 and len(report.notes) == 1 and "restored up to epoch 1" in report.notes[0]
    store = RunStore(root)
    rb = store.get(b)
    assert rb.status == "interrupted" and rb.epochs_done == 1 and "only 1 of its 2 epoch" in rb.reason
    after = snapshot(store)
    assert after.epochs[(b, 1)] == before.epochs[(b, 1)]
    assert {k: v for k, v in after.batches.items() if k[0] == b} == {
        k: v for k, v in before.batches.items() if k[0] == b and v[0] == 1
    }
    assert verify(store) == [  # the skipped folder stays a problem: its files belong to no run
        f"run folder {a} has no record in the store: `mnist-lab check --repair` restores it "
        "(or says why it cannot)"
    ]


def test_cli_check_reports_the_damage_and_check_repair_rebuilds(root, capsys):
    before, _ = take_snapshot(root)
    damage_db(root, "zeroed")
    assert cli(["check"]) == 1
    out = capsys.readouterr().out
    assert "problem: The run store database" in out and str(root / DB_NAME) in out
    assert "mnist-lab check --repair" in out and "problems=1" in out and "Traceback" not in out
    assert cli(["runs"]) == 1  # any command: the same message, no traceback
    assert "mnist-lab check --repair" in capsys.readouterr().err
    assert cli(["check", "--repair"]) == 0
    out = capsys.readouterr().out
    assert "runs=2 epochs=4 batches=120 skipped=0 moved_to=" in out
    assert f"moved_to={root / 'runs.db.damaged-'}" in out and out.rstrip().endswith("problems=0")
    assert records_lost(before, snapshot(RunStore(root))) == []
    assert cli(["check", "--repair"]) == 0  # sound: nothing moved, nothing added
    assert "runs=0 epochs=0 batches=0 skipped=0 moved_to=none" in capsys.readouterr().out


def test_a_runs_db_deleted_under_the_live_store_is_refused_then_rebuilt(root):
    from mnist_core.jobs.identity import ADMIN
    from mnist_core.jobs.store import StoreLost

    before, rows = take_snapshot(root)
    jobs = JobManager(RunStore(root), max_concurrent=1)  # the dashboard's, open before the fault
    run_id = sorted(rows)[0]
    (root / DB_NAME).unlink()
    for action in (jobs.list, lambda: jobs.get(run_id), lambda: jobs.submit(cfg(), actor=ADMIN)):
        with pytest.raises(StoreLost, match="records went missing.*mnist-lab check --repair"):
            action()
    assert not (root / DB_NAME).exists()  # no empty store was created in its place
    report = rebuild(root)
    assert report.runs == 2 and records_lost(before, snapshot(RunStore(root))) == []
    with pytest.raises(StoreLost, match="was replaced by another file"):
        jobs.list()  # the old store object never mixes its file and the rebuilt one
    assert {r.id for r in JobManager(RunStore(root)).list()} == set(rows)  # reopened: whole


def test_check_reports_run_folders_without_a_run_and_the_repair_restores_them(root, capsys):
    store = RunStore(root)
    store.fold_wal()
    older = root / "older-copy.db"
    shutil.copy2(root / DB_NAME, older)  # a backup taken before the newest run
    newest = store.create(cfg(seed=3).to_dict())
    store.cancel_queued(newest.id, "Cancelled before it started.")
    store.close()
    os.replace(older, root / DB_NAME)  # the backup put back: the newest run's row is gone
    for suffix in ("-wal", "-shm"):
        Path(f"{root / DB_NAME}{suffix}").unlink(missing_ok=True)
    problems = verify(RunStore(root))
    assert problems == [
        f"run folder {newest.id} has no record in the store: `mnist-lab check --repair` restores it "
        "(or says why it cannot)"
    ]
    assert cli(["check"]) == 1 and f"run folder {newest.id} has no record" in capsys.readouterr().out
    assert cli(["check", "--repair"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("problems=0")
    back = RunStore(root).get(newest.id)
    assert (back.status, back.reason) == ("stopped", "Cancelled before it started.")


def test_a_slower_writer_cannot_leave_an_older_class_policy_in_the_mirror_or_rebuild(tmp_path, monkeypatch):
    import threading

    from mnist_core.jobs import store as store_module
    from mnist_core.jobs.classroom import ClassPolicy
    from mnist_core.jobs.identity import ADMIN
    from mnist_core.jobs.layout import SETTINGS_MIRROR

    root = tmp_path / "store"
    first, second = JobManager(RunStore(root)), JobManager(RunStore(root))  # two dashboard processes
    real_write = store_module.write_atomically
    writing, second_done = threading.Event(), threading.Event()

    def slow_first_mirror(path, text, *args):
        if threading.current_thread().name == "first" and path.name == SETTINGS_MIRROR:
            writing.set()
            second_done.wait(2)  # the other teacher's change lands now, if it can
        real_write(path, text, *args)

    monkeypatch.setattr(store_module, "write_atomically", slow_first_mirror)
    old, new = ClassPolicy(max_queued=1), ClassPolicy(max_queued=5, exercise="newest")
    a = threading.Thread(target=first.set_policy, args=(old,), kwargs=dict(actor=ADMIN), name="first")
    a.start()
    assert writing.wait(5)
    b = threading.Thread(target=lambda: (second.set_policy(new, actor=ADMIN), second_done.set()))
    b.start()
    a.join()
    b.join()
    assert first.policy() == second.policy() == new
    first.store.close()
    second.store.close()
    damage_db(root, "zeroed")
    rebuild(root)
    assert JobManager(RunStore(root)).policy() == new  # the rebuild restores the newest


def test_restoring_settings_keeps_the_newest_value_and_reads_old_mirrors(tmp_path):
    from mnist_core.jobs.layout import SETTINGS_MIRROR

    store = RunStore(tmp_path / "store")
    store.set_setting("class_policy", {"max_queued": 1})
    store.set_setting("class_policy", {"max_queued": 5})
    stale = json.loads((store.root / SETTINGS_MIRROR).read_text())
    stale["settings"]["class_policy"] = {"value": {"max_queued": 1}, "version": 1}
    (store.root / SETTINGS_MIRROR).write_text(json.dumps(stale))
    assert store.restore_settings() == 1
    assert store.setting("class_policy") == {"max_queued": 5}  # version 2 beats version 1
    (store.root / SETTINGS_MIRROR).write_text(json.dumps({"lesson:ada:line": {"prediction": "same"}}))
    fresh = RunStore(tmp_path / "other")
    shutil.copy(store.root / SETTINGS_MIRROR, fresh.root / SETTINGS_MIRROR)
    assert fresh.restore_settings() == 1 and fresh.setting("lesson:ada:line") == {"prediction": "same"}
