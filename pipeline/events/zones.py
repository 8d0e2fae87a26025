"""Zones (polygons) and lines: real entries, exits and crossings, and predicted ones from forecast samples.

Why segments: at 10 fps a cyclist moves half a metre between frames, so testing only the points would miss a
line crossed between two frames; every test here is on the segment from the previous position to the new one.
Why samples: a forecast is a mean and a spread, so "will enter" is a probability: the share of sample paths
(drawn from the spread) that enter, with the median of their entry times as the ETA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    """A named segment from `a` to `b`; a crossing's direction is seen looking from a to b (x right, y down)."""

    name: str
    a: np.ndarray
    b: np.ndarray


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
    lines = [Line(ln.name, *np.array(ln.points, np.float64)) for ln in cfg.lines]
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


def _direction(side_before: np.ndarray) -> np.ndarray:
    """Crossing direction from the side (cross product sign) the object came from."""
    return np.where(side_before > 0, "right_to_left", "left_to_right")


class ZoneMonitor:
    """Real and predicted zone entries and line crossings for every track; bounded per-track state."""

    def __init__(self, zones: list[Zone], lines: list[Line], alert_probability: float, forget_s: float,
                 calibrate: Calibrate = lambda kind, p: p) -> None:
        self.zones, self.lines = zones, lines
        self.calibrate = calibrate  # (kind, raw shares) -> the probabilities alerts carry
        self.threshold, self.forget_s = alert_probability, forget_s
        self._prev: dict[int, tuple[float, np.ndarray]] = {}  # track -> last (time, position)
        self._active: dict[tuple[int, str], float] = {}  # (track, zone/line) -> alert expiry time

    def real(self, frame: int, t: float, ids: np.ndarray, pos: np.ndarray) -> list[Event]:
        """Entries, exits and crossings on each track's segment from its previous position to `pos`."""
        ok = np.isfinite(pos).all(axis=1)
        idx = [i for i, tid in enumerate(ids.tolist()) if ok[i] and tid in self._prev]
        events: list[Event] = []
        if idx:
            t0 = np.array([self._prev[int(ids[i])][0] for i in idx])
            p0 = np.stack([self._prev[int(ids[i])][1] for i in idx])
            events = self._zone_real(frame, t, ids[idx], t0, p0, pos[idx]) + self._line_real(frame, t, ids[idx], t0, p0, pos[idx])
            events.sort(key=lambda e: e.time_s)
        for i in np.flatnonzero(ok):
            self._prev[int(ids[i])] = (t, pos[i].copy())
        for tid in [k for k, (last, _) in self._prev.items() if t - last > self.forget_s]:
            del self._prev[tid]
        for e in events:  # the event came: a later approach is a new alert
            self._active.pop((e.track_id, e.name), None)
        return events

    def _zone_real(self, frame: int, t: float, ids: np.ndarray, t0: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> list[Event]:
        out = []
        for z in self.zones:
            was_in = inside(p0, z.polygon)
            fr = _edge_crossings(p0, p1, z.polygon)
            for m in np.flatnonzero(np.isfinite(fr).any(axis=1)):
                state = bool(was_in[m])
                for f in np.sort(fr[m][np.isfinite(fr[m])]):
                    state = not state
                    when = float(t0[m] + f * (t - t0[m]))
                    out.append(Event(frame, when, int(ids[m]), "zone_enter" if state else "zone_exit", z.name,
                                     direction="in" if state else "out"))
        return out

    def _line_real(self, frame: int, t: float, ids: np.ndarray, t0: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> list[Event]:
        out = []
        for ln in self.lines:
            hit, f = segment_cross(p0, p1, ln.a, ln.b)
            direction = _direction(_cross(ln.b - ln.a, p0 - ln.a))
            out += [Event(frame, float(t0[m] + f[m] * (t - t0[m])), int(ids[m]), "line_cross", ln.name,
                          direction=str(direction[m])) for m in np.flatnonzero(hit)]
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
            direction = _direction(_cross(ln.b - ln.a, paths[:, 0, 0] - ln.a))
            out.append((ln.name, crosses.mean(axis=1), median_where(first, crosses), direction))
        return out


def median_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) median over axis 1 of `values` where `mask` (NaN where no sample qualifies)."""
    v = np.where(mask, values, np.nan)
    out = np.full(len(v), np.nan)
    rows = mask.any(axis=1)
    if rows.any():
        out[rows] = np.nanmedian(v[rows], axis=1)
    return out
