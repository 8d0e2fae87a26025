"""MOTChallenge gt.txt (pixels)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory
from pipeline.learning.loaders._common import source_files, finite_rows, group_rows


def load_mot(path: str | Path, fps: float = 25.0, frame_size: tuple[float, float] = (640.0, 480.0),
             skipped: Counter[str] | None = None) -> list[Trajectory]:
    """MOTChallenge gt.txt (`frame,id,x,y,w,h,conf,...`, pixels); rows with conf 0 (ignore regions) dropped."""
    files = source_files(Path(path), "MOT ground truth", "gt.txt", recursive=True)
    out: list[Trajectory] = []
    for f in files:
        try:
            data = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise UserError(f"{f} is not a MOT gt.txt file: {exc}") from None
        if data.size == 0 or data.shape[1] < 6:
            raise UserError(f"{f} is empty or has fewer than 6 columns")
        if data.shape[1] > 6:
            data = data[data[:, 6] != 0]
        data = finite_rows(data[:, :6], f, skipped)
        rows = ((str(int(r[1])), (r[0] - 1) / fps, r[2] + r[4] / 2, r[3] + r[5] / 2, r[4], r[5]) for r in data)
        out += group_rows(f.parent.name, rows, True, frame_size)
    return out


def load(path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """The registry's entry: a gt.txt, or a folder searched for gt.txt files."""
    return load_mot(path, skipped=skipped)
