"""The run store: SQLite (WAL) records of every training run; its files' names belong to layout.py."""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path

from ..learn.metrics import eta_seconds, fraction_done
from ..paths import checkpoints_dir
from ..words import count
from .layout import DB_NAME, RunLayout, write_atomically

STATUSES = ("queued", "running", "completed", "stopped", "failed", "interrupted")
ACTIVE = ("queued", "running")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
REPAIR_HINT = (
    "Rebuild it from the run folders with `mnist-lab check --repair` or the dashboard's "
    "'Rebuild the run store from the run folders' button (the damaged file is kept aside)."
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, model TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT, created REAL NOT NULL, started REAL, finished REAL, queue_seq INTEGER,
    pid INTEGER, heartbeat REAL, parent TEXT, epochs_done INTEGER NOT NULL DEFAULT 0,
    progress TEXT, best_val_acc REAL, test_acc REAL, test_metrics TEXT, images_per_s REAL,
    train_seconds REAL NOT NULL DEFAULT 0, stop_requested INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT 'local', owner_name TEXT, exercise TEXT, node TEXT, precision TEXT);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, queue_seq);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS batch_metrics (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL, loss REAL NOT NULL,
    t REAL NOT NULL, PRIMARY KEY (run_id, step)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS epoch_metrics (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL, record TEXT NOT NULL, checkpoint TEXT,
    PRIMARY KEY (run_id, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dynamics (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (run_id, step)) WITHOUT ROWID;
"""
# The tables that hold a run's records, each with the column naming the run.
RUN_TABLES = (
    ("batch_metrics", "run_id"),
    ("epoch_metrics", "run_id"),
    ("dynamics", "run_id"),
    ("runs", "id"),
)


ADDED_COLUMNS = (
    ("owner", "TEXT NOT NULL DEFAULT 'local'"),
    ("owner_name", "TEXT"),
    ("exercise", "TEXT"),
    ("node", "TEXT"),
    ("precision", "TEXT"),
    ("request_key", "TEXT"),
    ("time_limit", "REAL"),
)
# one run per request key (a lesson's arm): a second submit of the same arm finds the first run
REQUEST_KEY_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_request_key ON runs(request_key) WHERE request_key IS NOT NULL"
)
SETTINGS_MIRROR_FORMAT = 2  # settings.json: {"format": 2, "settings": {key: {"value", "version"}}}


def fair_order(queued: builtins.list[Run], last_start: dict[str, float]) -> builtins.list[Run]:
    """The order queued runs will start in: learners take turns (round-robin by owner), each
    learner's runs in the order they queued them. The owner whose last run started longest ago
    (or never) goes next; ties go to whoever queued first."""
    by_owner: dict[str, builtins.list[Run]] = {}
    for run in sorted(queued, key=lambda r: r.queue_seq or 0):
        by_owner.setdefault(run.owner, []).append(run)
    turn = dict(last_start)
    order: builtins.list[Run] = []
    clock = max(turn.values(), default=0.0)
    while by_owner:
        owner = min(by_owner, key=lambda o: (turn.get(o, float("-inf")), by_owner[o][0].queue_seq or 0))
        order.append(by_owner[owner].pop(0))
        clock += 1.0  # each start is later than every start before it
        turn[owner] = clock
        if not by_owner[owner]:
            del by_owner[owner]
    return order


class RunError(ValueError):
    """A run id that is unsafe or unknown, or an action the run's state does not allow."""


class StoreDamaged(RuntimeError):
    """The store's database file is damaged (truncated, zeroed, garbage) or lost beside run folders.

    The message names the file and says how to rebuild the store from the run folders."""

    def __init__(self, db_path: str | Path, detail: str):
        self.db_path = Path(db_path)
        self.root = self.db_path.parent
        self.detail = detail
        super().__init__(
            f"The run store database {self.db_path} is damaged ({detail}). The run folders in "
            f"{self.root / 'runs'} hold each run's checkpoints and are not affected. {REPAIR_HINT}"
        )


class StoreLost(StoreDamaged):
    """runs.db was deleted or replaced while this store had it open: every later read or write of
    this store object raises this, so no process reads an empty store or writes into a file that
    is gone (a worker's next write fails with it)."""

    def __init__(self, db_path: str | Path, how: str):
        what = {
            "deleted": "was deleted",
            "replaced": "was replaced by another file (a rebuild, or a copy put in its place)",
        }[how]
        super().__init__(db_path, f"it {what} while the store was open, so the store's records went missing")
        self.how = how
        RuntimeError.__init__(
            self,
            f"The run store's records went missing: {self.db_path} {what} while this process had the "
            f"store open. The run folders in {self.root / 'runs'} hold each run's record (run.json) "
            f"and checkpoints and are not affected. {REPAIR_HINT}",
        )


class ActiveLimitReached(RunError):
    """The owner already has as many runs queued or training as `create` was allowed (checked in
    the same transaction as the insert, so two tabs submitting at once cannot both pass)."""


def is_damage(exc: BaseException) -> bool:
    """True for SQLite's 'database disk image is malformed' and 'file is not a database', not for
    a locked database, a full disk or another I/O fault."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    text = str(exc)
    return "malformed" in text or "not a database" in text


def check_run_id(run_id: str) -> str:
    """Refuse anything that could name a path outside the store ('..', separators, absolute)."""
    if not isinstance(run_id, str) or not _ID.fullmatch(run_id) or ".." in run_id:
        raise RunError(f"Refused run id {run_id!r}: ids are letters, digits, '-' and '_' only.")
    return run_id


@dataclass
class Run:
    """One row of the store, decoded."""

    id: str
    model: str
    config: dict
    status: str
    reason: str | None
    created: float
    started: float | None
    finished: float | None
    queue_seq: int | None
    pid: int | None
    heartbeat: float | None
    parent: str | None
    epochs_done: int
    progress: dict
    best_val_acc: float | None
    test_acc: float | None
    test_metrics: dict
    images_per_s: float | None
    train_seconds: float
    stop_requested: int
    owner: str = "local"  # the user id of who started it ("local" without sign-in)
    owner_name: str | None = None  # their display name, as configured
    exercise: str | None = None  # the class exercise in force when it was started
    node: str | None = None  # where it trained: this machine, or the cluster node (the last one)
    precision: str | None = None  # what it trained in and why, e.g. "bf16 · auto: this CPU runs ..."
    time_limit: float | None = None  # seconds each start may train (the class's limit when queued)
    request_key: str | None = None  # unique: what asked for it (a lesson's arm), so it runs once
    queue_position: int | None = None  # 1 = next to start (fair turns: see fair_order)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Run:
        d = dict(row)
        d["config"] = json.loads(d["config"])
        d["progress"] = json.loads(d["progress"] or "{}")
        d["test_metrics"] = json.loads(d["test_metrics"] or "{}")
        return cls(**d)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction_done(self) -> float:
        """Share of the run trained, from the worker's last progress report."""
        if self.status == "completed":
            return 1.0
        p = self.progress or {}
        return fraction_done(
            p.get("epoch", 0), self.config["epochs"], p.get("batch", 0), p.get("batches") or 1
        )

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None until the first report)."""
        elapsed = (self.progress or {}).get("elapsed_s")
        return eta_seconds(elapsed, self.fraction_done) if elapsed is not None else None


# the runs table's columns: Run mirrors the schema (from_row builds it from a whole row)
COLUMNS = tuple(f.name for f in dataclass_fields(Run) if f.name != "queue_position")
_JSON_COLUMNS = ("config", "progress", "test_metrics")


class RunStore:
    """All reads and writes of run records. Safe to use from many processes at once."""

    def __init__(self, root: str | Path | None = None, db_name: str = DB_NAME, new: bool = False):
        """Open (or create) the store; a damaged database raises StoreDamaged.

        `new=True` creates the database file `db_name` on purpose beside existing run folders (the
        rebuild does this); otherwise a missing or empty runs.db beside run folders is damage too."""
        self.root = Path(root) if root else checkpoints_dir()
        self.layout = RunLayout(self.root, check_run_id)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / db_name
        self._uri = self.db_path.absolute().as_uri()
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened first
        self._local = threading.local()
        if not new:
            self._refuse_lost_database()
        try:
            self.conn.executescript(SCHEMA)
            self._add_columns()
            # Cheap at open (well under a millisecond at 100k batch rows): SQLite checks the file
            # header and size, the schema and the two small tables; `check` runs the full check.
            bad = [
                row[0]
                for table in ("runs", "epoch_metrics")
                for row in self.conn.execute(f"PRAGMA quick_check({table})")
                if row[0] != "ok"
            ]
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            self.close()
            raise StoreDamaged(self.db_path, str(exc)) from None
        if bad:
            self.close()
            raise StoreDamaged(self.db_path, bad[0].splitlines()[-1])

    def _add_columns(self) -> None:
        """Stores made before runs had owners get the columns (with the local user as owner)."""
        have = {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}
        for column, decl in ADDED_COLUMNS:
            if column not in have:
                self._add_column("runs", column, decl)
        if "version" not in {row[1] for row in self.conn.execute("PRAGMA table_info(settings)")}:
            self._add_column("settings", "version", "INTEGER NOT NULL DEFAULT 0")
        self.conn.execute(REQUEST_KEY_INDEX)

    def _add_column(self, table: str, column: str, decl: str) -> None:
        try:
            self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another process added it first
                raise

    def _refuse_lost_database(self) -> None:
        """A missing or empty runs.db while run folders exist: SQLite would quietly start an empty
        store and every run would seem gone."""
        try:
            size = self.db_path.stat().st_size
        except FileNotFoundError:
            size = None
        if size:
            return
        folders = sum(1 for _ in self.layout.run_folders())
        if folders:
            state = "missing" if size is None else "empty (0 bytes)"
            raise StoreDamaged(self.db_path, f"the file is {state} but {count(folders, 'run folder')} exist")

    # ---- the database file: the one opened first, checked on every access ----
    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.db_path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def check_file(self) -> None:
        """StoreLost when runs.db is no longer the file this store opened: deleted (an open
        connection would go on reading and writing the unlinked file, a new one would create an
        empty store) or replaced. One stat (docs/reliability.md has its cost); a server backend
        would compare a store id it keeps instead."""
        if self._identity is None:
            return
        now = self._file_identity()
        if now != self._identity:
            raise StoreLost(self.db_path, "deleted" if now is None else "replaced")

    # ---- connection: one per process and thread, WAL so readers never wait for the writer ----
    @property
    def conn(self) -> sqlite3.Connection:
        local = self._local
        self.check_file()
        if getattr(local, "conn", None) is None or local.pid != os.getpid():
            # only the store's first connection may create the file: a later one must find it
            mode = "rw" if self._identity else "rwc"
            try:
                conn = sqlite3.connect(f"{self._uri}?mode={mode}", uri=True, timeout=30, isolation_level=None)
            except sqlite3.OperationalError:
                self.check_file()  # gone between the check and the open: say so
                raise
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            # a bounded write-ahead log: folded into the database every 256 pages (1 MB) and then
            # truncated, so the store's size follows its data and a full disk is met at the next
            # write rather than minutes later, when a reused log finally has to grow
            conn.execute("PRAGMA wal_autocheckpoint=256")
            conn.execute("PRAGMA journal_size_limit=0")
            local.conn, local.pid = conn, os.getpid()
            if self._identity is None:
                self._identity = self._file_identity()
        return local.conn

    @contextmanager
    def tx(self):
        """An IMMEDIATE transaction: one writer at a time, readers unaffected. The file is checked
        again inside it, just before COMMIT: a write into a deleted runs.db is rolled back."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            self.check_file()
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def close(self) -> None:
        if getattr(self._local, "conn", None) is not None:
            self._local.conn.close()
            self._local.conn = None

    def fold_wal(self) -> None:
        """Copy the write-ahead log into the database file, so the file alone is the whole store."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ---- the per-run mirror of the row (run.json), for rebuilding a damaged store ----
    def _mirror(self, run_id: str) -> None:
        """Write the run's full row to runs/<id>/run.json atomically. Best effort: it is a copy,
        so a failure (disk full, folder gone) never fails the caller. Writers call it inside their
        transaction, so that when another process sees a change (a run that ended), run.json
        already holds it and no temporary file of it is still being written."""
        try:
            row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return
            data = dict(row)
            for key in _JSON_COLUMNS:
                data[key] = json.loads(data[key]) if data[key] else None
            write_atomically(self.layout.mirror_path(run_id), json.dumps(data, indent=1))
        except (OSError, ValueError, sqlite3.Error):
            pass

    def read_mirror(self, run_id: str) -> dict | None:
        """The row run.json holds (JSON columns decoded), None if the folder has none; RunError when
        the file is unreadable or not a row of this run."""
        path = self.layout.mirror_path(run_id)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RunError(f"{path} is unreadable ({exc}).") from None
        need = {"id", "model", "config", "status", "created"}
        if not isinstance(data, dict) or data.get("id") != run_id or not need <= set(data):
            raise RunError(f"{path} is not the record of run {run_id}.")
        if not isinstance(data["config"], dict) or data["status"] not in STATUSES:
            raise RunError(f"{path} has no valid config or status.")
        return {k: v for k, v in data.items() if k in COLUMNS}

    # ---- creating and reading ----
    def create(
        self,
        config: dict,
        parent: str | None = None,
        run_id: str | None = None,
        owner: str = "local",
        owner_name: str | None = None,
        exercise: str | None = None,
        max_active_for_owner: int | None = None,
        request_key: str | None = None,
        time_limit: float | None = None,
    ) -> Run:
        """Queue a new run. In the same transaction as the insert: a `request_key` the store
        already holds returns that run instead (a second tab's submit of the same lesson arm), and
        an owner with `max_active_for_owner` runs queued or training is refused (ActiveLimitReached)."""
        run_id = check_run_id(run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
        now = time.time()
        with self.tx() as c:
            if request_key is not None:
                row = c.execute("SELECT id FROM runs WHERE request_key = ?", (request_key,)).fetchone()
                if row is not None:
                    return self.get(row[0])
            if max_active_for_owner:
                active = c.execute(
                    "SELECT COUNT(*) FROM runs WHERE owner = ? AND status IN ('queued', 'running')",
                    (owner,),
                ).fetchone()[0]
                if active >= max_active_for_owner:
                    raise ActiveLimitReached(
                        f"You already have {count(active, 'run')} queued or training; the class "
                        f"limit is {max_active_for_owner}. Wait for one to finish, or stop one."
                    )
            seq = c.execute("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM runs").fetchone()[0]
            c.execute(
                "INSERT INTO runs (id, model, config, status, created, queue_seq, parent, owner, "
                "owner_name, exercise, request_key, time_limit) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    config["model"],
                    json.dumps(config),
                    now,
                    seq,
                    parent,
                    owner,
                    owner_name,
                    exercise or None,
                    request_key,
                    time_limit,
                ),
            )
        self.layout.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        self._mirror(run_id)
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (check_run_id(run_id),)).fetchone()
        if row is None:
            raise RunError(f"No run {run_id!r}: it may have been deleted.")
        run = Run.from_row(row)
        if run.status == "queued":
            order = [r.id for r in self._queue_order(self.conn)]
            run.queue_position = order.index(run.id) + 1 if run.id in order else None
        return run

    def _queue_order(self, c: sqlite3.Connection) -> builtins.list[Run]:
        queued = [Run.from_row(r) for r in c.execute("SELECT * FROM runs WHERE status = 'queued'")]
        if not queued:
            return []
        last = dict(
            c.execute("SELECT owner, MAX(started) FROM runs WHERE started IS NOT NULL GROUP BY owner")
        )
        return fair_order(queued, last)

    def list(self, statuses: tuple[str, ...] | None = None) -> builtins.list[Run]:
        """Newest first; queued runs carry their queue position."""
        sql, args = "SELECT * FROM runs", tuple[str, ...]()
        if statuses:
            sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = tuple(statuses)
        runs = [Run.from_row(r) for r in self.conn.execute(sql + " ORDER BY created DESC", args)]
        if any(r.status == "queued" for r in runs):
            position = {r.id: pos for pos, r in enumerate(self._queue_order(self.conn), 1)}
            for r in runs:
                r.queue_position = position.get(r.id)
        return runs

    def active_count(self, owner: str) -> int:
        """How many runs `owner` has queued or training."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM runs WHERE owner = ? AND status IN ('queued', 'running')", (owner,)
        ).fetchone()[0]

    def setting(self, key: str):
        """A class-wide setting (JSON), or None when never set."""
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_setting(self, key: str, value) -> None:
        """Save a setting with the next version number, and mirror every setting (with its
        version) to settings.json inside the same transaction: writers hold the write lock in turn,
        so the mirror is written in commit order and a slower writer's older value cannot land
        over a newer one."""
        try:
            with self.tx() as c:
                version = c.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM settings").fetchone()[0]
                c.execute(
                    "INSERT INTO settings (key, value, version) VALUES (?, ?, ?) ON CONFLICT(key) "
                    "DO UPDATE SET value = excluded.value, version = excluded.version",
                    (key, json.dumps(value), version),
                )
                self._mirror_settings(c)
        except sqlite3.Error:
            self._mirror_settings(self.conn)  # not committed: the mirror goes back to what is
            raise

    def _mirror_settings(self, c: sqlite3.Connection) -> None:
        """settings.json: every setting and its version. Best effort, like run.json."""
        try:
            every = {
                k: {"value": json.loads(v), "version": n}
                for k, v, n in c.execute("SELECT key, value, version FROM settings")
            }
            text = json.dumps({"format": SETTINGS_MIRROR_FORMAT, "settings": every}, indent=1)
            write_atomically(self.layout.settings_mirror, text)
        except (OSError, ValueError, sqlite3.Error):
            pass

    def restore_settings(self) -> int:
        """Settings back from their mirror (a rebuild); returns how many it holds. A setting the
        store already holds at the same or a newer version keeps its value: the newest wins."""
        try:
            saved = json.loads(self.layout.settings_mirror.read_text())
        except (OSError, ValueError):
            return 0
        if not isinstance(saved, dict):
            return 0
        if saved.get("format") == SETTINGS_MIRROR_FORMAT and isinstance(saved.get("settings"), dict):
            rows = [
                (k, json.dumps(v["value"]), int(v["version"]))
                for k, v in saved["settings"].items()
                if isinstance(v, dict) and "value" in v and isinstance(v.get("version"), int)
            ]
        else:  # a mirror written before settings had versions: {key: value}
            rows = [(k, json.dumps(v), 0) for k, v in saved.items()]
        with self.tx() as c:
            c.executemany(
                "INSERT INTO settings (key, value, version) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
                "SET value = excluded.value, version = excluded.version "
                "WHERE excluded.version > settings.version",
                rows,
            )
            self._mirror_settings(c)
        return len(rows)

    def best_by_model(self) -> dict[str, tuple[float, str]]:
        """Best test accuracy any completed run of each model reached: {model: (accuracy, run id)}."""
        rows = self.conn.execute(
            "SELECT model, test_acc, id FROM runs WHERE status = 'completed' AND "
            "test_acc IS NOT NULL ORDER BY test_acc"
        )
        return {model: (acc, run_id) for model, acc, run_id in rows}  # the last (highest) wins

    def batch_losses(self, run_id: str, after_step: int = 0) -> builtins.list[tuple[int, int, float]]:
        """(step, epoch, loss) rows after `after_step`, so a live chart can fetch only what is new."""
        return [
            tuple(r)
            for r in self.conn.execute(
                "SELECT step, epoch, loss FROM batch_metrics WHERE run_id = ? AND step > ? ORDER BY step",
                (check_run_id(run_id), after_step),
            )
        ]

    def batch_times(self, run_id: str, after_step: int = 0) -> builtins.list[tuple[int, float]]:
        """(step, time written) rows after `after_step`: how fresh the live curves are."""
        return [
            tuple(r)
            for r in self.conn.execute(
                "SELECT step, t FROM batch_metrics WHERE run_id = ? AND step > ? ORDER BY step",
                (check_run_id(run_id), after_step),
            )
        ]

    def dynamics(self, run_id: str, after_step: int = 0) -> builtins.list[dict]:
        """The run's training-dynamics records (mnist_core.learn.dynamics) after `after_step`, oldest
        first: what the Dynamics view reads, live as the run trains."""
        rows = self.conn.execute(
            "SELECT record FROM dynamics WHERE run_id = ? AND step > ? ORDER BY step",
            (check_run_id(run_id), after_step),
        )
        return [json.loads(r) for (r,) in rows]

    def epochs(self, run_id: str) -> builtins.list[dict]:
        rows = self.conn.execute(
            "SELECT record, checkpoint FROM epoch_metrics WHERE run_id = ? ORDER BY epoch",
            (check_run_id(run_id),),
        )
        return [{**json.loads(rec), "checkpoint": ck} for rec, ck in rows]

    def checkpoints(self, run_id: str) -> builtins.list[tuple[int, Path]]:
        """(epoch, path) of every per-epoch checkpoint still on disk, for time travel."""
        return [
            (e["epoch"], Path(e["checkpoint"]))
            for e in self.epochs(run_id)
            if e.get("checkpoint") and Path(e["checkpoint"]).is_file()
        ]

    # ---- writes made by the worker and the job controller ----
    def update(self, run_id: str, **fields) -> None:
        for key in ("config", "progress", "test_metrics"):
            if key in fields and not isinstance(fields[key], (str, type(None))):
                fields[key] = json.dumps(fields[key])
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as c:
            c.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), check_run_id(run_id)))
            self._mirror(run_id)

    def append_batches(
        self,
        run_id: str,
        rows: builtins.list[tuple[int, int, float, float]],
        dynamics: Sequence[dict] = (),
        **fields,
    ) -> None:
        """(step, epoch, loss, t) rows, training-dynamics records and run fields (progress,
        heartbeat) in one transaction."""
        for key in ("progress",):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        with self.tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO batch_metrics (run_id, step, epoch, loss, t) VALUES (?, ?, ?, ?, ?)",
                [(run_id, *r) for r in rows],
            )
            _insert_dynamics(c, run_id, dynamics)
            if fields:
                cols = ", ".join(f"{k} = ?" for k in fields)
                c.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))

    def append_epoch(self, run_id: str, record: dict, checkpoint: str | None, **fields) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO epoch_metrics (run_id, epoch, record, checkpoint) "
                "VALUES (?, ?, ?, ?)",
                (run_id, record["epoch"], json.dumps(record), checkpoint),
            )
            if fields:
                cols = ", ".join(f"{k} = ?" for k in fields)
                c.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))

    def forget_checkpoints(self, run_id: str, epochs: builtins.list[int]) -> None:
        """These epochs' files were pruned: their records stay, without a checkpoint."""
        with self.tx() as c:
            c.executemany(
                "UPDATE epoch_metrics SET checkpoint = NULL WHERE run_id = ? AND epoch = ?",
                [(check_run_id(run_id), e) for e in epochs],
            )

    def truncate_after(self, run_id: str, epoch: int, step: int) -> None:
        """Forget metrics past a resume point (the unfinished epoch of a stopped run)."""
        with self.tx() as c:
            c.execute("DELETE FROM batch_metrics WHERE run_id = ? AND step > ?", (run_id, step))
            c.execute("DELETE FROM dynamics WHERE run_id = ? AND step > ?", (run_id, step))
            c.execute("DELETE FROM epoch_metrics WHERE run_id = ? AND epoch > ?", (run_id, epoch))

    # ---- the queue ----
    def running_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]

    def has_queued(self) -> bool:
        return self.conn.execute("SELECT 1 FROM runs WHERE status = 'queued' LIMIT 1").fetchone() is not None

    def claim_queued(self, max_running: int) -> builtins.list[str]:
        """Mark the next queued runs (fair turns) `running` while fewer than max_running run; returns ids.
        One transaction, so two processes scheduling at once never start the same run twice."""
        now = time.time()
        with self.tx() as c:
            running = c.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
            free = max_running - running
            if free <= 0:
                return []
            ids = [r.id for r in self._queue_order(c)[:free]]  # learners take turns
            for run_id in ids:
                c.execute(
                    "UPDATE runs SET status = 'running', started = ?, heartbeat = ?, pid = NULL, "
                    "reason = NULL WHERE id = ?",
                    (now, now, run_id),
                )
                self._mirror(run_id)
        return ids

    def cancel_queued(self, run_id: str, reason: str) -> bool:
        """A queued run becomes `stopped` (False if it had left the queue meanwhile)."""
        with self.tx() as c:
            cur = c.execute(
                "UPDATE runs SET status = 'stopped', finished = ?, reason = ? WHERE id = ? "
                "AND status = 'queued'",
                (time.time(), reason, check_run_id(run_id)),
            )
            if cur.rowcount == 1:
                self._mirror(run_id)
        return cur.rowcount == 1

    def requeue(self, run_id: str, config: dict) -> None:
        """Put a finished run back at the end of the queue with a new config (Extend)."""
        with self.tx() as c:
            seq = c.execute("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM runs").fetchone()[0]
            c.execute(
                "UPDATE runs SET status = 'queued', config = ?, queue_seq = ?, reason = NULL, "
                "finished = NULL, stop_requested = 0, pid = NULL WHERE id = ?",
                (json.dumps(config), seq, check_run_id(run_id)),
            )
            self._mirror(run_id)

    def ask_to_stop(self, run_id: str) -> bool:
        """Set the stop flag of a run that is still running (False: it had ended meanwhile)."""
        with self.tx() as c:
            cur = c.execute(
                "UPDATE runs SET stop_requested = 1 WHERE id = ? AND status = 'running'",
                (check_run_id(run_id),),
            )
        return cur.rowcount == 1

    def end_running(self, run_id: str, pid: int | None, status: str, reason: str) -> bool:
        """A run whose process is gone (or was killed) becomes `status`, only while it is still
        `running` under `pid`: a run that completed, or was restarted under another process, in the
        meantime keeps what it has. False when nothing was changed."""
        if status not in STATUSES or status in ACTIVE:
            raise RunError(f"{status!r} is not an end state.")
        same_pid = "pid IS NULL" if pid is None else "pid = ?"
        with self.tx() as c:
            cur = c.execute(
                "UPDATE runs SET status = ?, finished = ?, pid = NULL, reason = ? "
                f"WHERE id = ? AND status = 'running' AND {same_pid}",
                (status, time.time(), reason, check_run_id(run_id), *([] if pid is None else [pid])),
            )
            if cur.rowcount == 1:
                self._mirror(run_id)
        return cur.rowcount == 1

    def stop_requested(self, run_id: str) -> bool:
        row = self.conn.execute(
            "SELECT stop_requested FROM runs WHERE id = ?", (check_run_id(run_id),)
        ).fetchone()
        return bool(row and row[0])

    # ---- rebuilding a damaged store from the run folders (repair.py) ----
    def restore_run(
        self,
        row: dict,
        epochs: builtins.list[tuple[dict, str | None]],
        batches: builtins.list[tuple[int, int, float, float]],
        dynamics: Sequence[dict] = (),
    ) -> bool:
        """Insert a run rebuilt from its folder: the row, its (record, checkpoint path or None) epoch
        records, its (step, epoch, loss, t) batch losses and its training-dynamics records, in one
        transaction. False, and nothing written, when the store already holds the id."""
        run_id = check_run_id(row["id"])
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise RunError(f"Unknown run fields {sorted(unknown)}.")
        values = {k: json.dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in row.items()}
        with self.tx() as c:
            if c.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                return False
            key = values.get("request_key")
            if key and c.execute("SELECT 1 FROM runs WHERE request_key = ?", (key,)).fetchone():
                values["request_key"] = None  # another run answers that request now
            if values.get("queue_seq") is None:
                values["queue_seq"] = c.execute(
                    "SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM runs"
                ).fetchone()[0]
            c.execute(
                f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )
            c.executemany(
                "INSERT INTO epoch_metrics (run_id, epoch, record, checkpoint) VALUES (?, ?, ?, ?)",
                [(run_id, rec["epoch"], json.dumps(rec), ck) for rec, ck in epochs],
            )
            c.executemany(
                "INSERT INTO batch_metrics (run_id, step, epoch, loss, t) VALUES (?, ?, ?, ?, ?)",
                [(run_id, *b) for b in batches],
            )
            _insert_dynamics(c, run_id, dynamics)
            self._mirror(run_id)
        return True

    # ---- what the integrity check reads ----
    def database_problems(self) -> builtins.list[str]:
        """SQLite's own integrity check (empty when the file is sound)."""
        return [row[0] for row in self.conn.execute("PRAGMA integrity_check") if row[0] != "ok"]

    def epoch_numbers(self, run_id: str) -> builtins.list[int]:
        return [
            e
            for (e,) in self.conn.execute(
                "SELECT epoch FROM epoch_metrics WHERE run_id = ? ORDER BY epoch", (check_run_id(run_id),)
            )
        ]

    def last_batch_epoch(self, run_id: str) -> int | None:
        return self.conn.execute(
            "SELECT MAX(epoch) FROM batch_metrics WHERE run_id = ?", (check_run_id(run_id),)
        ).fetchone()[0]

    def orphaned_run_ids(self) -> builtins.list[str]:
        """Ids that metrics rows name but no run has."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT run_id FROM batch_metrics WHERE run_id NOT IN (SELECT id FROM runs) UNION "
                "SELECT DISTINCT run_id FROM epoch_metrics WHERE run_id NOT IN (SELECT id FROM runs)"
            )
        ]

    def counts(self) -> dict[str, int]:
        """How many runs, epoch records and batch records the store holds."""
        c = self.conn
        return {
            name: c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for name, table in (("runs", "runs"), ("epochs", "epoch_metrics"), ("batches", "batch_metrics"))
        }

    def remove_temp_files(self, run_id: str) -> int:
        """Delete half-written checkpoint files a killed process left behind; returns how many."""
        leftovers = list(self.layout.run_dir(run_id).glob(".*.tmp"))
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    def delete(self, run_id: str) -> None:
        """Remove the records and the files of a run that is not active."""
        run = self.get(run_id)
        if run.active:
            raise RunError(f"Run {run_id} is {run.status}; stop it before deleting it.")
        with self.tx() as c:
            for table, col in RUN_TABLES:
                c.execute(f"DELETE FROM {table} WHERE {col} = ?", (run_id,))
        shutil.rmtree(self.layout.run_dir(run_id), ignore_errors=True)


def _insert_dynamics(c: sqlite3.Connection, run_id: str, records) -> None:
    """Training-dynamics records, one row per recorded step (a repeated step replaces the row)."""
    c.executemany(
        "INSERT OR REPLACE INTO dynamics (run_id, step, epoch, record) VALUES (?, ?, ?, ?)",
        [(run_id, int(r["step"]), int(r.get("epoch") or 0), json.dumps(r)) for r in records],
    )
