"""Run folders: auto-incremented under runs/, locked while a run writes, never replacing an input.

Each run folder holds a manifest (`.run_manifest.json`) of the files this program wrote there, so
`--overwrite` deletes only those, and a lock file (`.run.lock`) held while a run writes, so two runs never
interleave their files.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pipeline.core.atomic import write_atomic
from pipeline.core.errors import UserError

RUN_FILES = ("tracks.csv", "predictions.csv", "annotated.mp4", "tracks.parquet", "run.json")
MANIFEST = ".run_manifest.json"
LOCK = ".run.lock"
# Names a run may write: the fixed files, and live mode's numbered recordings and snapshots.
_OUR_NAMES = re.compile(r"^(tracks\.csv|predictions\.csv|forecast_scores\.csv|events\.csv|event_scores\.csv|"
                        r"trajectories\.png|heatmap\.png|report\.html|tracks\.txt|"
                        r"tracks\.parquet|predictions\.parquet|events\.parquet|run\.json|"
                        r"annotated(_\d+)?\.mp4|snapshot_\d+\.png)$")


def next_run_dir(base: Path, name: str = "exp") -> Path:
    """base/exp, base/exp2, base/exp3, ... the first that does not exist."""
    candidate, i = base / name, 1
    while candidate.exists():
        i += 1
        candidate = base / f"{name}{i}"
    return candidate


def _same_file(a: Path, b: Path) -> bool:
    """Same file on disk (resolved path or same inode: symlinks and hard links count)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _input_at_risk(path: Path, inputs: Iterable[Path]) -> tuple[Path, Path] | None:
    """An (output, input) pair where writing or clearing an output in `path` would hit an input file."""
    if not path.is_dir():
        return None
    for child in path.iterdir():
        if _OUR_NAMES.match(child.name):
            hit = next((i for i in inputs if _same_file(child, i)), None)
            if hit is not None:
                return child, hit
    return None


def choose_run_dir(out: str | None, overwrite: bool, base: Path = Path("runs/track"),
                   inputs: Iterable[Path] = (), name: str = "exp", exist_ok: bool = False) -> Path:
    """The folder a run will write into, checked up front (nothing is created yet).

    Without `out`: base/name, name2, ... the first free one, or base/name itself with `exist_ok` (ultralytics'
    --project/--name/--exist-ok).
    """
    if not name or Path(name).name != name or name in (".", ".."):
        raise UserError(f"--name {name!r} must be a plain folder name (no '/')")
    path = Path(out) if out else (base / name if exist_ok else next_run_dir(base, name))
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; give a folder")
    risk = _input_at_risk(path, list(inputs))
    if risk:
        raise UserError(f"{risk[0]} is the input {risk[1]}; a run never replaces its input: choose another --out")
    if path.is_dir() and any((path / f).exists() for f in RUN_FILES) and not overwrite:
        raise UserError(f"{path} already holds a run; pass --overwrite or choose another --out")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"cannot create output folder {path}: {parent} is not a writable folder")
    return path


class RunDir:
    """A run folder held for one run: created, locked, cleared of this program's earlier files on overwrite.

    `file(name)` hands out each output path and records it in the manifest before anything is written.
    """

    def __init__(self, path: Path, overwrite: bool = False, inputs: Iterable[Path] = ()) -> None:
        self.path, self.overwrite = Path(path), overwrite
        self.inputs = [Path(p) for p in inputs]
        self.files: list[str] = []
        self._lock: IO[str] | None = None

    def __str__(self) -> str:
        return str(self.path)

    def open(self) -> RunDir:
        """Create and lock the folder, then check and clear what an earlier run left (under the lock)."""
        create_run_dir(self.path)
        self._lock = _take_lock(self.path)
        try:
            self._clear_previous()
            self._save_manifest()
        except BaseException:
            self.close()
            raise
        return self

    def _clear_previous(self) -> None:
        risk = _input_at_risk(self.path, self.inputs)
        if risk:
            raise UserError(f"{risk[0]} is the input {risk[1]}; a run never replaces its input: choose another --out")
        ours = set(read_manifest(self.path))
        present = sorted(c.name for c in self.path.iterdir() if _OUR_NAMES.match(c.name))
        if present and not self.overwrite:
            raise UserError(f"{self.path} already holds a run; pass --overwrite or choose another --out")
        foreign = [n for n in present if n not in ours]
        if foreign:
            raise UserError(f"{self.path / foreign[0]} was not written by this program (not in {MANIFEST}); "
                            "--overwrite only replaces our own files: move it or choose another --out")
        for name in present:
            (self.path / name).unlink()

    def file(self, name: str) -> Path:
        """Path for an output file, recorded in the manifest first; never an input."""
        p = self.path / name
        hit = next((i for i in self.inputs if _same_file(p, i)), None)
        if hit is not None:
            raise UserError(f"{p} is the input {hit}; a run never replaces its input: choose another --out")
        if name not in self.files:
            self.files.append(name)
            self._save_manifest()
        return p

    def _save_manifest(self) -> None:
        write_atomic(self.path / MANIFEST, json.dumps({"written_by": "run.py", "files": self.files}, indent=1))

    @contextmanager
    def relocked(self) -> Iterator[RunDir]:
        """Hold the folder's lock again after close(), for files made from the finished ones (the report)."""
        self._lock = _take_lock(self.path)
        try:
            yield self
        finally:
            self.close()

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def __enter__(self) -> RunDir:
        return self.open() if self._lock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_manifest(path: Path) -> list[str]:
    """File names an earlier run of this program recorded in `path` (empty if none or unreadable)."""
    try:
        files = json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str) and _OUR_NAMES.match(f)]


def _take_lock(path: Path) -> IO[str]:
    """An exclusive lock on the run folder; a second run gets an error naming the holder's pid."""
    fh = (path / LOCK).open("a+", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise UserError(f"{path} is in use by another run (pid {holder}); wait for it to end or choose another --out") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def create_run_dir(path: Path) -> Path:
    """Create the run folder chosen by `choose_run_dir`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"output folder {path} is not writable; choose another --out")
    return path
