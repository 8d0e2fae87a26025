"""Grand Central Station concourse (Yi et al., CVPR 2015 annotations): one file per pedestrian,
`Annotation/NNNNNN.txt` (NNNNNN = its id), a flat list of integers read three at a time: x (column), y (row),
frame, in pixels of the 1920x1080 overhead view.

Frames are 25 fps video frames, annotated every 20 (0.8 s; documented, not proven): time = frame / 25.
Metres: `H.json` maps (row, column), i.e. (y, x), to the ground and its output is then multiplied by 0.8
(SOURCES.md; that gives a median walking speed of about 1.1 m/s). Tracks unseen for more than 1 s (a missing
annotation step) are split: keys `gc/concourse:123`, `gc/concourse:123.1`. Labels are "pedestrian".
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory
from pipeline.learning.loaders._common import Member, build, drop_nonfinite, find_beside, members

FPS = 25.0
H_SCALE = 0.8  # H.json's output times this is metres (SOURCES.md)
ARCHIVE = "GC_Annotation.tar.xz"
EXPECTED = "integers x, y, frame, one per line, read three at a time"


def load(path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """The archive, the gc/ folder holding it, or an unpacked Annotation/ folder; H.json beside or above it."""
    rows, ids = [], []
    for m in members(path, "Grand Central annotations", ARCHIVE, ("*.txt",)):
        if not m.rel.stem.isdigit():
            continue  # only NNNNNN.txt are pedestrians (an unpacked folder may hold notes)
        rows.append(_triples(m))
        ids.append(np.full(len(rows[-1]), int(m.rel.stem)))
    if not rows:
        raise UserError(f"no NNNNNN.txt pedestrian files in {path}")
    data = drop_nonfinite(np.column_stack([np.concatenate(ids), np.concatenate(rows)]), skipped)
    xy = to_metres(data[:, 1], data[:, 2], _homography(path))
    return build("gc/concourse", data[:, 0], data[:, 3] / FPS, xy, skipped, names=("pedestrian",))


def _triples(m: Member) -> np.ndarray:
    """(K, 3) x, y, frame of one file; a token that is no number or a count not divisible by 3 is an error."""
    tokens = m.text.split()
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        for n, line in enumerate(m.text.splitlines(), 1):
            for token in line.split():
                try:
                    float(token)
                except ValueError:
                    raise UserError(f"{m.where} line {n}: {token!r} is not a number; expected {EXPECTED}") from None
        raise UserError(f"{m.where}: unreadable numbers; expected {EXPECTED}") from None
    if len(values) == 0 or len(values) % 3:
        n = len(m.text.splitlines())
        raise UserError(f"{m.where} line {n}: {len(values)} numbers, not a multiple of 3; expected {EXPECTED}")
    return values.reshape(-1, 3)


def _homography(path: Path) -> np.ndarray:
    f = find_beside(path, "H.json", "to turn Grand Central pixels into metres")
    try:
        h = np.asarray(json.loads(f.read_text(encoding="utf-8"))["homog"], np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{f} should be {{\"homog\": 3x3 numbers}}: {exc}") from None
    if h.shape != (3, 3) or not np.isfinite(h).all():
        raise UserError(f"{f}: homog must be 3x3 finite numbers, got shape {h.shape}")
    return h


def to_metres(x: np.ndarray, y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Ground metres (N, 2) of pixel columns x and rows y: H takes (row, col, 1), then x 0.8."""
    q = np.stack([y, x, np.ones_like(x)], axis=1) @ h.T
    return H_SCALE * q[:, :2] / q[:, 2:3]
