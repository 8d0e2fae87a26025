"""ETH/UCY split files (metres, 2.5 Hz)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory
from pipeline.learning.loaders._common import source_files, finite_rows, group_rows


def load_ethucy(path: str | Path, fps: float = 25.0, skipped: Counter[str] | None = None) -> list[Trajectory]:
    """ETH/UCY split files (`frame ped_id x y`, metres; frames are 25 fps video frames, one row every 10).

    `path` may be a file or a folder of .txt files.
    """
    files = source_files(Path(path), "ETH/UCY data", "*.txt", recursive=False)
    out: list[Trajectory] = []
    for f in files:
        try:
            data = np.loadtxt(f, dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise UserError(f"{f} is not an ETH/UCY file (frame id x y per line): {exc}") from None
        if data.size == 0 or data.shape[1] < 4:
            raise UserError(f"{f} is empty or has fewer than 4 columns (frame id x y)")
        data = finite_rows(data[:, :4], f, skipped)
        rows = ((str(int(r[1])), r[0] / fps, r[2], r[3], 0.0, 0.0) for r in data)
        out += group_rows(f.stem, rows, False, (0.0, 0.0))
    return out


def load(path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """The registry's entry: a split file or a folder of them, at 25 fps."""
    return load_ethucy(path, skipped=skipped)
