"""track_summary.csv: one row per track, what a study tabulates (when, how long, how far, how fast, where).

Positions are foot points: metres on the ground with a camera, else pixels expressed in the track's body
heights. Speeds are least-squares slopes over `window_s` that read 0 when the points cannot be told from
standing still (`calibration.Path.speed`); a path grows only while the track moves, by steps longer than the
counting hysteresis, so a parked car's jitter adds nothing. Memory per track is bounded (a speed reservoir), finished rows
are small; the table is rewritten whole (every 10 s of video and at the end).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.tables import write_csv_atomic
from pipeline.events.calibration import Path as FootPath
from pipeline.events.types import Event

TRACK_SUMMARY_COLUMNS = ["track_id", "class_name", "first_s", "last_s", "duration_s", "path_length", "length_unit",
                         "median_speed", "max_speed", "speed_unit", "zones", "lines"]
SPEEDS_KEPT = 256  # per-frame speeds kept per track (a reservoir sample beyond that)
PASSAGES_KEPT = 64  # zone and line names listed per track


@dataclass
class _Track:
    class_name: str
    first_s: float
    last_s: float
    anchor: np.ndarray  # position the path was last extended from
    path: float = 0.0
    window: FootPath = field(default_factory=FootPath)  # recent foot points (speed window, standing-still test)
    speeds: list[float] = field(default_factory=list)
    speeds_seen: int = 0
    max_speed: float = 0.0
    zones: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


class TrackSummaries:
    """Per-track aggregates; a track unseen for `forget_s` becomes a finished row."""

    def __init__(self, metric: bool, step: float, window_s: float = 0.5, forget_s: float = 30.0) -> None:
        self.metric = metric  # positions in metres (a camera), else pixels scaled by each track's body height
        self.step, self.window_s, self.forget_s = step, window_s, forget_s  # step: m, or body heights
        self._live: dict[int, _Track] = {}
        self._done: list[list[str]] = []
        self._rng = np.random.default_rng(0)

    def update(self, t: float, ids: np.ndarray, classes: list[str], foot: np.ndarray, unit: np.ndarray,
               events: Iterable[Event] = (), speeds: np.ndarray | None = None) -> None:
        """One frame: `foot` (N, 2) in metres or pixels, `unit` (N,) metres or pixels per body height; `speeds`
        (N,), per second in foot's units, when the caller already measured them the same way (GroundMotion)."""
        for i, tid in enumerate(ids.tolist()):
            p, u = foot[i], float(unit[i]) if unit[i] > 0 else 1.0
            if not np.isfinite(p).all():
                continue
            tr = self._live.get(tid)
            if tr is None:
                tr = self._live[tid] = _Track(classes[i], t, t, p.copy())
            tr.last_s = t
            if speeds is not None:
                v = float(speeds[i])
            else:
                tr.window.add(t, p, self.window_s)
                v = tr.window.speed(self.window_s, 2 * self.step * (1.0 if self.metric else u))
            self._add_speed(tr, v, u)
            moved = float(np.hypot(*(p - tr.anchor)))
            if v == 0.0:  # standing still: the path does not grow by its jitter
                tr.anchor = p.copy()
            elif moved >= self.step * (1.0 if self.metric else u):
                tr.path += moved / (1.0 if self.metric else u)
                tr.anchor = p.copy()
        for e in events:
            tr = self._live.get(e.track_id)
            if tr is None:
                continue
            if e.event == "zone_enter" and len(tr.zones) < PASSAGES_KEPT:
                tr.zones.append(e.name)
            elif e.event == "line_cross" and len(tr.lines) < PASSAGES_KEPT:
                tr.lines.append(f"{e.name}:{e.direction}")
        for tid in [k for k, tr in self._live.items() if t - tr.last_s > self.forget_s]:
            self._done.append(self._row(tid, self._live.pop(tid)))

    def _add_speed(self, tr: _Track, v: float, unit: float) -> None:
        if not np.isfinite(v):
            return
        v = v * 3.6 if self.metric else v / unit  # km/h, or body heights per second
        tr.max_speed = max(tr.max_speed, v)
        tr.speeds_seen += 1
        if len(tr.speeds) < SPEEDS_KEPT:
            tr.speeds.append(v)
        else:
            k = int(self._rng.integers(0, tr.speeds_seen))
            if k < SPEEDS_KEPT:
                tr.speeds[k] = v

    def _row(self, tid: int, tr: _Track) -> list[str]:
        med = f"{np.median(tr.speeds):.2f}" if tr.speeds else ""
        return [str(tid), tr.class_name, f"{tr.first_s:.3f}", f"{tr.last_s:.3f}", f"{tr.last_s - tr.first_s:.3f}",
                f"{tr.path:.2f}", "m" if self.metric else "bh", med, f"{tr.max_speed:.2f}" if tr.speeds else "",
                "km/h" if self.metric else "bh/s", ";".join(dict.fromkeys(tr.zones)), ";".join(tr.lines)]

    def rows(self) -> list[list[str]]:
        """Finished tracks, then the ones still followed (as they are so far), by first appearance."""
        rows = self._done + [self._row(tid, tr) for tid, tr in self._live.items()]
        return sorted(rows, key=lambda r: (float(r[2]), int(r[0])))

    def write(self, path: Path) -> None:
        write_csv_atomic(path, TRACK_SUMMARY_COLUMNS, self.rows())
