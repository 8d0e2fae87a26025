"""Small summary tables (scores, counts) rewritten whole: a reader or a killed run never sees half a file."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipeline.core.atomic import replacing, write_error


def write_csv_atomic(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Replace `path` with the table whole (`core.atomic`); on failure the last complete table stays and no
    temp file is left; a full disk is the run's one-line disk-full error."""
    try:
        with replacing(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
    except OSError as exc:
        raise write_error(path, exc) from None
