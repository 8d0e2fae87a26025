"""Run folders: auto-incremented under runs/, never silently overwriting an earlier run."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import UserError

RUN_FILES = ("tracks.csv", "predictions.csv", "annotated.mp4")


def next_run_dir(base: Path, name: str = "exp") -> Path:
    """base/exp, base/exp2, base/exp3, ... the first that does not exist."""
    candidate, i = base / name, 1
    while candidate.exists():
        i += 1
        candidate = base / f"{name}{i}"
    return candidate


def choose_run_dir(out: str | None, overwrite: bool, base: Path = Path("runs/track")) -> Path:
    """The folder a run will write into, checked up front (nothing is created yet)."""
    path = Path(out) if out else next_run_dir(base)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; give a folder")
    if path.is_dir() and any((path / f).exists() for f in RUN_FILES) and not overwrite:
        raise UserError(f"{path} already holds a run; pass --overwrite or choose another --out")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"cannot create output folder {path}: {parent} is not a writable folder")
    return path


def create_run_dir(path: Path) -> Path:
    """Create the run folder chosen by `choose_run_dir`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"output folder {path} is not writable; choose another --out")
    return path
