"""The run-folder layout: every file name under a store's root, and the atomic writes of its mirrors.

    ROOT/runs.db                      the run store's database (store.py owns what is inside)
    ROOT/settings.json                the class-wide settings, mirrored beside the database
    ROOT/runs/<run id>/run.json       the run's row, mirrored on every status change
    ROOT/runs/<run id>/epoch-NNN.pt   one self-describing checkpoint per kept epoch
    ROOT/runs/<run id>/best.pt        the best epoch (a hard link to its epoch file)
    ROOT/runs/<run id>/resume-NNN.pt  optimizer and schedule state after the last epoch (Extend)
    ROOT/runs/<run id>/log.txt        the run process's output

Nothing else in the project spells these names: the store, the worker, repair, integrity and the
disk budget ask here."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

DB_NAME = "runs.db"
SETTINGS_MIRROR = "settings.json"
MIRROR_NAME = "run.json"
_EPOCH_FILE = re.compile(r"epoch-(\d+)\.pt")
_RESUME_FILE = re.compile(r"resume-(\d+)\.pt")


class RunLayout:
    """Where a store's files live, given its root folder; `check_id` vets a run id before it
    becomes a path (the store passes its own check)."""

    def __init__(self, root: Path, check_id=lambda run_id: run_id):
        self.root = Path(root)
        self._check = check_id

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def settings_mirror(self) -> Path:
        return self.root / SETTINGS_MIRROR

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / self._check(run_id)

    def log_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "log.txt"

    def epoch_checkpoint(self, run_id: str, epoch: int) -> Path:
        return self.run_dir(run_id) / f"epoch-{epoch:03d}.pt"

    def best_checkpoint(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "best.pt"

    def resume_checkpoint(self, run_id: str, epoch: int) -> Path:
        return self.run_dir(run_id) / f"resume-{epoch:03d}.pt"

    def mirror_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / MIRROR_NAME

    def epoch_files(self, run_id: str) -> list[tuple[int, Path]]:
        """(epoch, path) of every epoch checkpoint in the run's folder, oldest first."""
        return _numbered(self.run_dir(run_id), "epoch-*.pt", _EPOCH_FILE)

    def resume_files(self, run_id: str) -> list[tuple[int, Path]]:
        return _numbered(self.run_dir(run_id), "resume-*.pt", _RESUME_FILE)

    def run_folders(self) -> list[Path]:
        """Every folder under runs/, sorted by name (ids start with their creation time)."""
        try:
            return sorted(p for p in (self.root / "runs").iterdir() if p.is_dir())
        except FileNotFoundError:
            return []


def _numbered(folder: Path, pattern: str, name: re.Pattern) -> list[tuple[int, Path]]:
    return sorted((int(m.group(1)), p) for p in folder.glob(pattern) if (m := name.fullmatch(p.name)))


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` all at once: a temporary file of its own (never a fixed name, so
    two writers cannot interleave) in the same folder, then a rename over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; readable like the checkpoints beside it
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
