"""TrajNet++ real scenes (WILDTRACK, L-CAS): newline-delimited JSON, positions in metres on the ground plane.

Two record kinds: `{"track": {"f", "p", "x", "y"}}` (frame, pedestrian, metres) and `{"scene": {"id", "p", "s",
"e", "fps", "tag"}}` (a 21-step window s..e around primary pedestrian p). The trajectories come from the track
records only; rows repeated exactly (a row shared by several scenes) are dropped ("repeated track row").
Scenes serve to validate and to time the frames: every scene spans 20 steps of 1/fps seconds, so one frame is
1 / (fps * (e - s) / 20) s: wildtrack frames step 5 at 2 fps (0.1 s a frame), lcas step 1 at 2.5 fps (0.4 s).
Each scene's primary pedestrian must have track rows. Keys `trajnetpp/<file stem>:<p>`, cut at gaps over 1 s.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory
from pipeline.learning.loaders._common import source_files, build, decode, drop_nonfinite, drop_rows

SCENE_STEPS = 20  # a TrajNet++ scene is 21 frames: 9 observed, 12 predicted
EXPECTED = 'one JSON record per line: {"track": {"f", "p", "x", "y"}} or {"scene": {"id", "p", "s", "e", "fps", ...}}'


def load(path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """One .ndjson file, or every .ndjson file in a folder (each file one recording)."""
    out: list[Trajectory] = []
    for f in source_files(path, "TrajNet++ data", "*.ndjson", recursive=False):
        tracks, scenes = _records(f)
        seconds_per_frame = _frame_seconds(f, scenes, tracks)
        tracks = _drop_repeats(tracks, skipped)
        a = drop_nonfinite(tracks, skipped)
        out += build(f"trajnetpp/{f.stem}", a[:, 1], a[:, 0] * seconds_per_frame, a[:, 2:4], skipped,
                     names=("pedestrian",))
    return out


def _records(f: Path) -> tuple[np.ndarray, list[tuple[int, dict]]]:
    """Track rows (N, 4) as f, p, x, y and the scene records with their line numbers."""
    rows: list[tuple[float, ...]] = []
    scenes: list[tuple[int, dict]] = []
    for n, line in enumerate(decode(f.read_bytes(), str(f)).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind, body = next(iter(record.items())) if isinstance(record, dict) and len(record) == 1 else ("", {})
            if kind == "track":
                rows.append(tuple(_number(body[k]) for k in ("f", "p", "x", "y")))
            elif kind == "scene":
                scenes.append((n, {k: _number(body[k]) for k in ("p", "s", "e", "fps")}))
            else:
                raise ValueError("neither a track nor a scene record")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{f} line {n}: {exc}; expected {EXPECTED}") from None
    if not rows:
        raise UserError(f"{f} has no track records; expected {EXPECTED}")
    return np.asarray(rows, np.float64), scenes


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _frame_seconds(f: Path, scenes: list[tuple[int, dict]], tracks: np.ndarray) -> float:
    """Seconds per frame, the same for every scene of the file; each scene's primary pedestrian has tracks."""
    if not scenes:
        raise UserError(f"{f} has no scene records, which give the frame rate; expected {EXPECTED}")
    known = set(tracks[:, 1].tolist())
    rates = set()
    for n, s in scenes:
        if s["fps"] <= 0 or s["e"] <= s["s"]:
            raise UserError(f"{f} line {n}: scene needs fps > 0 and e > s, got fps {s['fps']}, s {s['s']}, e {s['e']}")
        if s["p"] not in known:
            raise UserError(f"{f} line {n}: scene's primary pedestrian {s['p']:g} has no track records")
        rates.add(round(SCENE_STEPS / ((s["e"] - s["s"]) * s["fps"]), 9))
    if len(rates) > 1:
        raise UserError(f"{f}: scenes disagree on the frame duration ({sorted(rates)} s); expected one frame rate")
    return rates.pop()


def _drop_repeats(tracks: np.ndarray, skipped: Counter[str]) -> np.ndarray:
    """Exact repeats of an earlier track row (the same row listed for several scenes), keeping file order."""
    _, first = np.unique(tracks, axis=0, return_index=True)
    repeat = np.ones(len(tracks), bool)
    repeat[first] = False
    return drop_rows(tracks, repeat, "repeated track row", skipped)
