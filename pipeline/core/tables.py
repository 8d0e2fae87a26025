"""Small summary tables (scores, counts) rewritten whole: a reader or a killed run never sees half a file."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipeline.core.errors import FULL_ERRNOS, UserError, disk_full_error


def write_csv_atomic(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Replace `path` with the table (temp file + os.replace); on failure the last complete table stays and no
    temp file is left; a full disk is the run's one-line disk-full error."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in FULL_ERRNOS:
            raise disk_full_error(path, exc) from None
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
