"""Zones (polygons) and lines: real entries, exits and crossings, and predicted ones from forecast samples.

Why segments: at 10 fps a cyclist moves half a metre between frames, so testing only the points would miss a
line crossed between two frames; every test here is on the segment from the previous position to the new one.
Why samples: a forecast is a mean and a spread, so "will enter" is a probability: the share of sample paths
(drawn from the spread) that enter, with the median of their entry times as the ETA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from pipeline.core.config import EventsConfig
from pipeline.core.errors import UserError
from pipeline.events.calibration import Camera
from pipeline.events.types import Alert, Event


Calibrate = Callable[[str, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Zone:
    """A named polygon in ground units (pixels, or metres with a camera)."""

    name: str
    polygon: np.ndarray  # (V, 2)


@dataclass(frozen=True)
class Line:
    """A named segment from `a` to `b`. `directions` names its two crossings: the first from the left of a -> b
    to its right (looking from a towards b, image y down: for a line drawn left to right, downwards), the
    second back."""

    name: str
    a: np.ndarray
    b: np.ndarray
    directions: tuple[str, str] = ("in", "out")


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(...,) whether each point of (..., 2) lies inside the polygon (even-odd rule; NaN points are outside)."""
    x, y = pts[..., 0, None], pts[..., 1, None]
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    spans = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return (np.count_nonzero(spans & (x < xcross), axis=-1) % 2).astype(bool)


def segment_cross(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where segments p->q (..., 2) cross a->b: (hit, fraction along p->q). Half-open (0, 1] along p->q, so a
    point exactly on the line is counted once over two consecutive segments."""
    r, s = q - p, b - a
    den = _cross(r, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = _cross(a - p, s) / den
        u = _cross(a - p, r) / den
    hit = (den != 0) & (t > 0) & (t <= 1) & (u >= 0) & (u <= 1)
    return hit, np.where(hit, t, np.nan)


def _edge_crossings(p: np.ndarray, q: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(M, V) fractions along each p->q where it crosses a polygon edge (NaN: no crossing)."""
    a, b = poly, np.roll(poly, -1, axis=0)
    return segment_cross(p[:, None], q[:, None], a[None], b[None])[1]


def build_geometry(cfg: EventsConfig, camera: Camera | None, size: tuple[int, int]) -> tuple[list[Zone], list[Line]]:
    """Zones and lines in ground units, each checked: a real area, and some part inside the video frame."""
    zones = [Zone(z.name, np.array(z.polygon, np.float64)) for z in cfg.zones]
    lines = [Line(ln.name, a, b, directions=(ln.directions[0], ln.directions[1]))
             for ln in cfg.lines for a, b in [np.array(ln.points, np.float64)]]  # exactly two points (LineConfig)
    for z in zones:
        area = 0.5 * abs(_cross(z.polygon, np.roll(z.polygon, -1, axis=0)).sum())
        if area <= 1e-9:
            raise UserError(f"zone '{z.name}' has no area (its points are on one line or repeated); give a polygon")
        _check_in_frame(z.name, "zone", to_pixels(z.polygon, camera, z.name), size)
    for ln in lines:
        if np.allclose(ln.a, ln.b):
            raise UserError(f"line '{ln.name}' has two equal points {ln.a.tolist()}; give two different points")
        _check_in_frame(ln.name, "line", to_pixels(np.stack([ln.a, ln.b]), camera, ln.name), size)
    return zones, lines


def to_pixels(pts: np.ndarray, camera: Camera | None, name: str) -> np.ndarray:
    """Ground-unit points in image pixels (identity without a camera); beyond the horizon is an error."""
    if camera is None:
        return pts
    px = camera.to_image(pts)
    if not np.isfinite(px).all():
        raise UserError(f"'{name}': a point lies beyond the camera's horizon; zones and lines with --camera are in metres "
                        "on the calibrated ground")
    return px


ARROW_PX = 28.0  # drawn length of a line's direction arrows


def direction_arrows(line: Line, camera: Camera | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, tail, head) in pixels for each of a line's crossing directions, from its middle: directions[0]
    towards the right of a -> b on the ground (where a crossing in that direction goes), directions[1] back."""
    ab = line.b - line.a
    right = np.array([-ab[1], ab[0]]) / float(np.hypot(*ab))  # right of a -> b with y down: cross(ab, right) > 0
    mid = (line.a + line.b) / 2
    eps = 0.05 * float(np.hypot(*ab))
    px = to_pixels(np.stack([mid, mid + eps * right]), camera, line.name)
    d = px[1] - px[0]
    d = d / max(float(np.hypot(*d)), 1e-9) * ARROW_PX
    return [(line.directions[0], px[0], px[0] + d), (line.directions[1], px[0], px[0] - d)]


def _check_in_frame(name: str, what: str, px: np.ndarray, size: tuple[int, int]) -> None:
    w, h = size
    pts = np.round(np.clip(px, -1e6, 1e6)).astype(np.int32)
    if what == "zone":
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [pts], 1)
        visible = bool(mask.any())
    else:
        visible = cv2.clipLine((0, 0, w, h), tuple(map(int, pts[0])), tuple(map(int, pts[1])))[0]
    if not visible:
        raise UserError(f"{what} '{name}' lies entirely outside the {w}x{h} video frame (pixels {px.round(1).tolist()}); "
                        "give coordinates inside the frame")


def _sides(line: Line, p: np.ndarray) -> np.ndarray:
    """Signed distance of points (..., 2) from a line, positive on the right of a -> b (image y down)."""
    ab = line.b - line.a
    return _cross(ab, p - line.a) / float(np.hypot(*ab))


def _direction(line: Line, side_before: np.ndarray) -> np.ndarray:
    """The user's name of a crossing from the side (sign) the object came from: directions[0] from left to
    right of a -> b, directions[1] back."""
    return np.where(side_before > 0, line.directions[1], line.directions[0])


@dataclass
class _Passage:
    """Where one track stands relative to one line or zone: the side it was last seen beyond the margin on
    (+1 right of the line / inside the zone, -1 the other, 0 not yet), and when it first went across since."""

    side: int = 0
    across_s: float | None = None
    entered_s: float | None = None  # zones: when the current stay began (None: first seen inside)


class ZoneMonitor:
    """Real and predicted zone entries and line crossings for every track; bounded per-track state.

    Real events count once per passage (hysteresis): a crossing or an entry counts when the foot point has gone
    `hysteresis` (in the caller's units per track: body heights or metres) past the line or boundary, at the
    time it went across; jitter within that band counts nothing, and an exit needs an entry (or a track first
    seen inside). Each test is on the segment between consecutive positions, so a crossing between frames counts.
    """

    def __init__(self, zones: list[Zone], lines: list[Line], alert_probability: float, forget_s: float,
                 calibrate: Calibrate = lambda kind, p: p, hysteresis: float = 0.0) -> None:
        self.zones, self.lines = zones, lines
        self.calibrate = calibrate  # (kind, raw shares) -> the probabilities alerts carry
        self.threshold, self.forget_s = alert_probability, forget_s
        self.hysteresis = hysteresis
        self._prev: dict[int, tuple[float, np.ndarray]] = {}  # track -> last (time, position)
        self._state: dict[tuple[int, str], _Passage] = {}  # (track, zone/line) -> where it stands
        self._active: dict[tuple[int, str], float] = {}  # (track, zone/line) -> alert expiry time

    def real(self, frame: int, t: float, ids: np.ndarray, pos: np.ndarray, unit: np.ndarray | None = None) -> list[Event]:
        """Entries, exits and crossings of each track's path from its previous position to `pos`; `unit` (N,)
        scales the hysteresis per track (body heights in pixels, or 1 for metres)."""
        ok = np.isfinite(pos).all(axis=1)
        unit = np.ones(len(ids)) if unit is None else np.asarray(unit, np.float64)
        events: list[Event] = []
        for i in np.flatnonzero(ok):
            tid = int(ids[i])
            t0, p0 = self._prev.get(tid, (t, pos[i]))
            margin = self.hysteresis * float(unit[i])
            for z in self.zones:
                events += self._zone_step(frame, tid, z, t0, p0, t, pos[i], margin)
            for ln in self.lines:
                events += self._line_step(frame, tid, ln, t0, p0, t, pos[i], margin)
            self._prev[tid] = (t, pos[i].copy())
        events.sort(key=lambda e: e.time_s)
        for tid in [k for k, (last, _) in self._prev.items() if t - last > self.forget_s]:
            del self._prev[tid]
            for key in [k for k in self._state if k[0] == tid]:
                del self._state[key]
        for e in events:  # the event came: a later approach is a new alert
            self._active.pop((e.track_id, e.name), None)
        return events

    def _line_step(self, frame: int, tid: int, ln: Line, t0: float, p0: np.ndarray, t: float, p1: np.ndarray,
                   margin: float) -> list[Event]:
        st = self._state.setdefault((tid, ln.name), _Passage())
        if t > t0:
            hit, f = segment_cross(p0, p1, ln.a, ln.b)
            if bool(hit) and st.across_s is None:
                st.across_s = float(t0 + float(f) * (t - t0))
        d = float(_sides(ln, p1))
        if abs(d) < max(margin, 1e-9):
            return []
        side, out = (1 if d > 0 else -1), []
        if st.side == -side and st.across_s is not None:
            out.append(Event(frame, st.across_s, tid, "line_cross", ln.name,
                             direction=str(_direction(ln, np.array(st.side)))))
        st.side, st.across_s = side, None
        return out

    def _zone_step(self, frame: int, tid: int, z: Zone, t0: float, p0: np.ndarray, t: float, p1: np.ndarray,
                   margin: float) -> list[Event]:
        """Probes along the segment p0 -> p1: each boundary crossing (noted), the middle of each piece between
        crossings and the end (tested against the margin), so a zone crossed between two frames counts too."""
        st = self._state.setdefault((tid, z.name), _Passage())
        fr = np.sort(_edge_crossings(p0[None], p1[None], z.polygon)[0])
        fr = fr[np.isfinite(fr)] if t > t0 else np.zeros(0)
        cuts = np.concatenate([[0.0], fr, [1.0]])
        out: list[Event] = []
        for k in range(len(cuts) - 1):
            if k > 0 and st.across_s is None:
                st.across_s = float(t0 + cuts[k] * (t - t0))
            f = 1.0 if k == len(cuts) - 2 else (cuts[k] + cuts[k + 1]) / 2
            probe = p0 + f * (p1 - p0)
            depth = cv2.pointPolygonTest(z.polygon.astype(np.float32).reshape(-1, 1, 2),
                                         (float(probe[0]), float(probe[1])), True)
            if abs(depth) < max(margin, 1e-9):
                continue
            side = 1 if depth > 0 else -1
            if st.side == -side and st.across_s is not None:
                when = st.across_s
                dwell = when - st.entered_s if side < 0 and st.entered_s is not None else None
                out.append(Event(frame, when, tid, "zone_enter" if side > 0 else "zone_exit", z.name,
                                 direction="in" if side > 0 else "out", dwell_s=dwell))
                st.entered_s = when if side > 0 else None
            if st.side != side:
                if side > 0 and st.side == 0:
                    st.entered_s = None  # first seen inside: its exit counts, its stay has no known start
                st.side = side
            st.across_s = None
        return out

    def inside_now(self, seen_since: float) -> dict[str, list[int]]:
        """Tracks each zone holds now: confirmed inside and seen at or after `seen_since`."""
        out: dict[str, list[int]] = {z.name: [] for z in self.zones}
        for (tid, name), st in self._state.items():
            if name in out and st.side > 0 and tid in self._prev and self._prev[tid][0] >= seen_since:
                out[name].append(tid)
        return out

    def predicted(self, frame: int, t: float, ids: np.ndarray, paths: np.ndarray, times: np.ndarray,
                  horizon_s: float) -> tuple[list[Event], list[Alert]]:
        """Alerts from sample paths (N, S, T, 2) on the time grid `times` (T,), times[0] = 0 = now.

        An alert is reported once, again after its horizon has passed while it still holds, or after its
        probability fell below half the threshold (hysteresis, so a flickering forecast does not repeat it).
        """
        events: list[Event] = []
        alerts: list[Alert] = []
        self._active = {k: exp for k, exp in self._active.items() if exp > t}
        for name, prob, eta, direction in self._zone_probs(paths, times) + self._line_probs(paths, times):
            kind = "zone_enter_predicted" if direction is None else "line_cross_predicted"
            said = self.calibrate(kind, prob)
            for i in range(len(ids)):
                key = (int(ids[i]), name)
                if prob[i] < self.threshold / 2:
                    self._active.pop(key, None)
                if prob[i] < self.threshold:
                    continue
                alerts.append(Alert(key[0], name, float(eta[i]), float(said[i])))
                if key not in self._active:
                    self._active[key] = t + horizon_s
                    events.append(Event(frame, t, key[0], kind, name, eta_s=float(eta[i]), probability=float(said[i]),
                                        direction="in" if direction is None else str(direction[i]),
                                        probability_raw=float(prob[i])))
        return events, alerts

    def _zone_probs(self, paths: np.ndarray, times: np.ndarray) -> list[tuple]:
        out = []
        for z in self.zones:
            ins = inside(paths, z.polygon)  # (N, S, T)
            enter = ins[..., 1:].any(axis=-1) & ~ins[..., 0]
            first = times[1 + np.argmax(ins[..., 1:], axis=-1)]
            out.append((z.name, enter.mean(axis=1), median_where(first, enter), None))
        return out

    def _line_probs(self, paths: np.ndarray, times: np.ndarray) -> list[tuple]:
        out = []
        for ln in self.lines:
            hit, f = segment_cross(paths[..., :-1, :], paths[..., 1:, :], ln.a, ln.b)  # (N, S, T-1)
            crosses = hit.any(axis=-1)
            k = np.argmax(hit, axis=-1)
            frac = np.take_along_axis(f, k[..., None], axis=-1)[..., 0]
            first = times[k] + frac * (times[k + 1] - times[k])
            direction = _direction(ln, _cross(ln.b - ln.a, paths[:, 0, 0] - ln.a))
            out.append((ln.name, crosses.mean(axis=1), median_where(first, cast(np.ndarray, crosses)), direction))
        return out


def median_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) median over axis 1 of `values` where `mask` (NaN where no sample qualifies)."""
    v = np.where(mask, values, np.nan)
    out = np.full(len(v), np.nan)
    rows = mask.any(axis=1)
    if rows.any():
        out[rows] = np.nanmedian(v[rows], axis=1)
    return out
