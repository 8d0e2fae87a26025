"""Files replaced whole: the one way this program rewrites a file that someone may read meanwhile.

run.json, the run and batch manifests, the score / count tables rewritten every 10 s, Parquet files and bench's
JSON are written under a temporary name beside the target and renamed over it (`os.replace`: atomic within a
file system), so a reader, a killed run or a full disk never leaves half a file; on any failure the previous
file stays and no temporary is left behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.core.errors import FULL_ERRNOS, UserError, disk_full_error


def temporary_name(path: Path) -> Path:
    """Where `path` is written before it is renamed: hidden, beside it (so the rename stays on its disk)."""
    return path.with_name(f"{'' if path.name.startswith('.') else '.'}{path.name}.tmp")


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yields the temporary path to write; on leaving, it replaces `path`, or is removed if anything failed.

    Errors are raised as they come (an OSError stays one): callers say what a failure means for them.
    """
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Replace `path` with `data` (text as UTF-8) whole; see `replacing`."""
    with replacing(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path


def write_error(path: Path, exc: OSError) -> UserError:
    """The one line for a failed write: the run's disk-full error, else what the system said."""
    if exc.errno in FULL_ERRNOS:
        return disk_full_error(path, exc)
    return UserError(f"cannot write {path}: {exc.strerror}")
