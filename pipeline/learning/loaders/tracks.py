"""Our own tracks.csv (pixels, time_s column)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory
from pipeline.learning.loaders._common import source_files, group_rows


def load_tracks_csv(path: str | Path, frame_size: tuple[float, float] = (0.0, 0.0),
                    skipped: Counter[str] | None = None) -> list[Trajectory]:
    """Our own tracks.csv (one file, or a folder searched for tracks.csv files)."""
    files = source_files(Path(path), "tracks.csv", "tracks.csv", recursive=True, hint="; run `python run.py track` first")
    out: list[Trajectory] = []
    for f in files:
        with f.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            need = {"time_s", "track_id", "x1", "y1", "x2", "y2"}
            if not reader.fieldnames or not need <= set(reader.fieldnames):
                raise UserError(f"{f} is not a tracks.csv (needs columns {', '.join(sorted(need))})")
            rows = []
            for r in reader:
                try:
                    t, x1, y1, x2, y2 = (float(r[k]) for k in ("time_s", "x1", "y1", "x2", "y2"))
                except (TypeError, ValueError):
                    raise UserError(f"{f} line {reader.line_num}: time_s, x1, y1, x2, y2 must be numbers") from None
                if not np.isfinite([t, x1, y1, x2, y2]).all():
                    if skipped is not None:
                        skipped[f"non-finite ({f.name})"] += 1
                    continue
                rows.append((r["track_id"], t, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
        out += group_rows(str(f.parent.name), rows, True, frame_size)
    return out


def load(path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """The registry's entry: a tracks.csv, or a folder searched for them."""
    return load_tracks_csv(path, skipped=skipped)
