"""Edinburgh Informatics Forum tracker output (`tracks.<day>.txt`, Majecka 2009), overhead 640x480 camera.

Matlab-style text: a `% Total number of trajectories in file are N` header, then per trajectory
`Properties.Rk=[n t_start t_end size width height h1..h64];` and `TRACK.Rk=[[x y t];[x y t];...];` with box
centres in pixels and t the capture frame of that day. Metres: pixels x 0.0247 (24.7 mm per pixel on the floor,
README), image axes (y down).

Time assumption: the capture runs at "about 9 frames per second", varying with network and host load, and the
files keep only the frame index, so time = t / 9 s; short-term speeds are therefore only approximately right.
Repeated time stamps within a track are dropped ("duplicate time"); tracks unseen for more than 1 s (9 frames)
are split. The tracker's output is noisier than hand annotation. Keys `edinburgh/01Jul:5` (the R number);
labels "pedestrian" (the scene holds people only, plus occasional false detections).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory
from pipeline.learning.loaders._common import source_files, build, decode, drop_nonfinite

FPS = 9.0  # approximate capture rate (README)
M_PER_PX = 0.0247
LINE = re.compile(r"\s*(Properties|TRACK)\.R(\d+)\s*=\s*\[(.*)\]\s*;\s*$")
TOTAL = re.compile(r"%\s*Total number of trajectories in file are\s+(\d+)")
POINT = re.compile(r"\[([^\[\]]*)\]")
EXPECTED = "Properties.Rk=[n t0 t1 ...]; or TRACK.Rk=[[x y t];...]; per line (Matlab syntax)"


def load(path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """One tracks.<day>.txt, or every such file in a folder (each day one recording)."""
    out: list[Trajectory] = []
    for f in source_files(path, "Edinburgh tracks", "tracks.*.txt", recursive=False):
        tracks = _tracks(f)
        ids = np.concatenate([np.full(len(p), k) for k, p in tracks.items()])
        a = drop_nonfinite(np.column_stack([ids, np.concatenate(list(tracks.values()))]), skipped)
        day = f.name.removeprefix("tracks.").removesuffix(".txt")
        out += build(f"edinburgh/{day}", a[:, 0], a[:, 3] / FPS, a[:, 1:3] * M_PER_PX, skipped, names=("pedestrian",))
    return out


def _tracks(f: Path) -> dict[int, np.ndarray]:
    """{k: (n, 3) x, y, t} of every TRACK.Rk, checked against its Properties count and the header total."""
    tracks: dict[int, np.ndarray] = {}
    counts: dict[int, tuple[int, int]] = {}
    total = None
    for n, line in enumerate(decode(f.read_bytes(), str(f)).splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("%"):
            found = TOTAL.match(line.strip())
            total = int(found[1]) if found else total
            continue
        m = LINE.match(line)
        if m is None:
            raise UserError(f"{f} line {n}: cannot parse {line.strip()[:40]!r}; expected {EXPECTED}")
        k = int(m[2])
        if m[1] == "TRACK":
            tracks[k] = _points(m[3], f, n)
        else:
            counts[k] = (_first_number(m[3], f, n), n)
    for k, (count, n) in counts.items():
        if k in tracks and count != len(tracks[k]):
            raise UserError(f"{f} line {n}: Properties.R{k} says {count} points but TRACK.R{k} has {len(tracks[k])}")
    if total is not None and total != len(tracks):
        raise UserError(f"{f} line 1: says {total} trajectories but holds {len(tracks)} (truncated?)")
    if not tracks:
        raise UserError(f"{f} has no TRACK.Rk lines; expected {EXPECTED}")
    return tracks


def _points(body: str, f: Path, n: int) -> np.ndarray:
    """The [x y t];... list of one TRACK line as (K, 3)."""
    groups = POINT.findall(body)
    rest = POINT.sub("", body).replace(";", "").strip()
    if not groups or rest or any(len(g.split()) != 3 for g in groups):
        raise UserError(f"{f} line {n}: TRACK points must be [x y t] separated by ';'; expected {EXPECTED}")
    try:
        return np.array(" ".join(groups).split(), np.float64).reshape(-1, 3)
    except ValueError as exc:
        raise UserError(f"{f} line {n}: {exc}; expected numbers in {EXPECTED}") from None


def _first_number(body: str, f: Path, n: int) -> int:
    try:
        return int(float(body.split()[0]))
    except (ValueError, IndexError):
        raise UserError(f"{f} line {n}: Properties must start with the number of points; expected {EXPECTED}") from None
