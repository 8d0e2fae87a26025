"""Draws what it is given (tracks, trails, forecasts) onto a frame with OpenCV; decides nothing."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from pipeline.events.types import Overlay
from pipeline.core.types import Forecasts, Tracks
from pipeline.forecast.calibration import region

# 20 BGR colours far apart in hue and brightness; a track keeps its colour for its whole life (by id).
_PALETTE = [
    (56, 56, 255), (255, 144, 30), (60, 200, 60), (0, 215, 255), (255, 56, 203), (255, 255, 0),
    (0, 128, 255), (180, 105, 255), (50, 205, 154), (255, 0, 127), (0, 100, 200), (200, 200, 60),
    (147, 20, 255), (80, 127, 255), (255, 191, 0), (113, 179, 60), (203, 192, 255), (0, 69, 255),
    (230, 216, 173), (130, 0, 75),
]
TICKS_S = (1.0, 2.0, 3.0)  # forecast time ticks, seconds ahead
_TRAIL_FADE = (0.25, 0.55)  # opacity of the oldest and middle thirds of a trail (the newest third is solid)
_CONE_ALPHA = 0.16
CONE_LEVEL = 0.8  # the cone is the region that holds this share of true positions (stated in the legend)
_OUTLINE = (20, 20, 20)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(track_id: int) -> tuple[int, int, int]:
    """A stable BGR colour per track id (box, trail, forecast and cone of one object share it).

    Hashed, not id modulo the palette, so ids that often co-exist (18 and 118) rarely share a colour.
    """
    return _PALETTE[((int(track_id) * 2654435761) % 2**32) * len(_PALETTE) >> 32]


Paint = Callable[[np.ndarray, tuple[int, int]], None]  # draws on a layer whose top-left is at the given origin


def disjoint_groups(rects: np.ndarray) -> list[np.ndarray]:
    """Indexes of rectangles (x0, y0, x1, y1, end exclusive) grouped so that the groups' bounding rectangles
    do not overlap: each group is then blended once, and no pixel is blended twice."""
    groups = [np.array([i]) for i in range(len(rects))]
    rects = np.asarray(rects, np.int64)
    while len(rects) > 1:
        r = rects
        ov = ((r[:, None, 0] < r[None, :, 2]) & (r[None, :, 0] < r[:, None, 2])
              & (r[:, None, 1] < r[None, :, 3]) & (r[None, :, 1] < r[:, None, 3]))
        np.fill_diagonal(ov, False)
        if not ov.any():
            break
        label = np.full(len(r), -1)
        for seed in range(len(r)):  # connected components of the overlap graph
            if label[seed] >= 0:
                continue
            label[seed], todo = seed, [seed]
            while todo:
                nxt = np.flatnonzero(ov[todo.pop()] & (label < 0))
                label[nxt] = seed
                todo.extend(nxt.tolist())
        keys = np.unique(label)
        groups = [np.concatenate([groups[k] for k in np.flatnonzero(label == key)]) for key in keys]
        rects = np.array([[r[label == key, 0].min(), r[label == key, 1].min(), r[label == key, 2].max(),
                           r[label == key, 3].max()] for key in keys])
    return groups


def _translucent(out: np.ndarray, items: list[tuple[np.ndarray, Paint]], alpha: float, pad: int) -> None:
    """Blend what each item paints at `alpha`, only over its points' bounding box (+ pad).

    Items whose boxes overlap are painted on one layer and blended once, so overlaps stay readable; apart
    they are blended separately, so a 1080p frame with people all over it blends their few pixels, not the
    whole frame (the result is the same: outside the painted pixels a blend changes nothing).
    """
    h, w = out.shape[:2]
    rects, keep = [], []
    for k, (pts, _) in enumerate(items):
        x0, y0 = (max(0, int(v) - pad) for v in pts.min(0))
        x1, y1 = min(w, int(pts[:, 0].max()) + pad + 1), min(h, int(pts[:, 1].max()) + pad + 1)
        if x1 > x0 and y1 > y0:
            rects.append((x0, y0, x1, y1))
            keep.append(k)
    if not rects:
        return
    r = np.array(rects)
    for group in disjoint_groups(r):
        x0, y0 = int(r[group, 0].min()), int(r[group, 1].min())
        x1, y1 = int(r[group, 2].max()), int(r[group, 3].max())
        sub = out[y0:y1, x0:x1]
        layer = sub.copy()
        for g in np.sort(group):  # in the given order, as one layer would be painted
            items[keep[g]][1](layer, (x0, y0))
        cv2.addWeighted(layer, alpha, sub, 1 - alpha, 0, dst=sub)


def dashed_segments(pts: np.ndarray, dash: float, gap: float) -> list[np.ndarray]:
    """2-point segments of a dashed line along a polyline (by arc length), as int32 arrays for cv2.polylines."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] < 1:
        return []
    starts = np.arange(0.0, cum[-1], dash + gap)
    ends = np.minimum(starts + dash, cum[-1])
    at = [np.stack([np.interp(v, cum, pts[:, 0]), np.interp(v, cum, pts[:, 1])], 1) for v in (starts, ends)]
    return [np.round(np.stack([a, b])).astype(np.int32) for a, b in zip(*at)]


def _normals(pts: np.ndarray) -> np.ndarray:
    """Unit normals of a polyline at its points (straight down where it does not move)."""
    tan = np.gradient(pts, axis=0) if len(pts) > 1 else np.zeros_like(pts)
    n = np.stack([-tan[:, 1], tan[:, 0]], 1)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(norm > 1e-6, n / np.maximum(norm, 1e-9), np.array([[0.0, 1.0]]))


def cone_polygon(path: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The band around a forecast path: `path` (K, 2) from now, `std` (K, 2) semi-axes per point (0 at now)."""
    n = _normals(path)
    w = np.sqrt((n[:, 0] * std[:, 0]) ** 2 + (n[:, 1] * std[:, 1]) ** 2)[:, None]
    return np.vstack([path + n * w, (path - n * w)[::-1]])


def _tick_points(t: np.ndarray, path: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(position, unit normal) of the path at each tick time before the forecast's end."""
    n = _normals(path)
    ticks = []
    for tk in TICKS_S:
        if tk < t[-1] - 1e-6:
            pos = np.array([np.interp(tk, t, path[:, 0]), np.interp(tk, t, path[:, 1])])
            k = min(int(np.searchsorted(t, tk)), len(t) - 1)
            ticks.append((pos, n[k]))
    return ticks


def _text_on(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black text on light colours, white on dark ones (BGR luma)."""
    return (0, 0, 0) if 0.114 * bg[0] + 0.587 * bg[1] + 0.299 * bg[2] > 140 else (255, 255, 255)


def put_label(out: np.ndarray, text: str, x: int, y: int, bg: tuple[int, int, int], fg: tuple[int, int, int],
              scale: float) -> tuple[int, int, int, int]:
    """Text on a filled box with its bottom-left at (x, y), moved as needed to stay wholly inside the frame.

    Returns the box drawn (x1, y1, x2, y2), inclusive.
    """
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    h, w = out.shape[:2]
    x = int(min(max(x, 0), max(w - tw - 3, 0)))
    y = int(min(max(y, th + 1), max(h - base - 1, th + 1)))
    cv2.rectangle(out, (x, y - th - 1), (x + tw + 2, y + base), bg, -1)
    cv2.putText(out, text, (x + 1, y - 1), _FONT, scale, fg, 1, cv2.LINE_AA)
    return x, y - th - 1, x + tw + 2, y + base


class Annotator:
    """Draws each object so the kinds of line cannot be confused, and a legend that says which is which.

    Past trail: solid, fading with age. Forecast: dashed, with a tick at +1, +2, +3 s and a small ringed dot
    at its end (a box there looked like a detection). Uncertainty: a translucent cone, the region that holds
    CONE_LEVEL (80 %) of true positions under the forecast's published spread (std and std2, recalibrated on
    the camera by default). Labels stay inside the frame; an object's colour comes from its track id.
    """

    def __init__(self, names: dict[int, str], show_forecast_boxes: bool = False) -> None:
        self.names = names
        self.show_forecast_boxes = show_forecast_boxes
        self._legends: dict[tuple[int, str], np.ndarray] = {}

    def draw(
        self, image: np.ndarray, tracks: Tracks, trails: dict[int, np.ndarray], forecasts: Forecasts,
        notes: dict[int, str] | None = None,
    ) -> np.ndarray:
        """The annotated frame; `notes` adds text to a track's label (e.g. its speed)."""
        out = image.copy()
        thick = max(1, round(min(out.shape[:2]) / 360))
        by_id = {int(t): i for i, t in enumerate(tracks.track_id)}
        t = np.concatenate([[0.0], forecasts.t_future_s])
        paths = {}
        for i, tid in enumerate(forecasts.track_id.tolist()):
            start = tracks.centers[by_id[tid]] if tid in by_id else forecasts.centers[i, 0]
            paths[tid] = (i, np.vstack([start[None], forecasts.centers[i]]))
        self._cones(out, forecasts, paths, thick)
        self._trails(out, trails, thick)
        for tid, (i, path) in paths.items():
            self._forecast(out, tid, t, path, forecasts, i, thick)
        for box, conf, cls, tid in zip(tracks.xyxy, tracks.confidence, tracks.class_id, tracks.track_id):
            note = f" {notes[int(tid)]}" if notes and int(tid) in notes else ""
            self._box(out, box, f"{self.names.get(int(cls), cls)} #{tid} {conf:.2f}{note}", color_for(tid), thick)
        horizon = f"+{forecasts.t_future_s[-1]:.1f} s" if len(forecasts.t_future_s) else ""
        self._legend(out, thick, horizon)
        return out

    @staticmethod
    def _cones(out: np.ndarray, fc: Forecasts, paths: dict[int, tuple[int, np.ndarray]], thick: int) -> None:
        """Translucent cones; overlapping ones share one layer and one blend, so overlaps stay readable."""
        if fc.std is None or not paths:
            return
        polys = {}
        reg = region(fc.std, fc.std2, CONE_LEVEL)
        for tid, (i, path) in paths.items():
            std = np.vstack([[0.0, 0.0], reg[i]])
            if np.all(np.isfinite(std)):
                polys[tid] = (cone_polygon(path, std), path[-1], std[-1])

        def paint(tid: int, poly: np.ndarray, end: np.ndarray, sd: np.ndarray) -> Paint:
            def draw(layer: np.ndarray, org: tuple[int, int]) -> None:
                col = color_for(tid)
                cv2.fillPoly(layer, [np.round(poly - org).astype(np.int32)], col, cv2.LINE_AA)
                axes = (max(1, int(sd[0])), max(1, int(sd[1])))
                cv2.ellipse(layer, tuple(int(v) for v in np.round(end - org)), axes, 0, 0, 360, col, -1, cv2.LINE_AA)
            return draw

        items = [(np.vstack([poly, end - sd, end + sd]), paint(tid, poly, end, sd)) for tid, (poly, end, sd) in polys.items()]
        _translucent(out, items, _CONE_ALPHA, 2)

    @staticmethod
    def _trails(out: np.ndarray, trails: dict[int, np.ndarray], thick: int) -> None:
        """Solid trails that fade with age: the oldest third faint, the middle half-way, the newest third opaque."""
        thirds: list[list[tuple[int, np.ndarray]]] = [[], [], []]
        for tid, pts in trails.items():
            if len(pts) < 2:
                continue
            cut = [0, len(pts) // 3, 2 * len(pts) // 3, len(pts) - 1]
            for k in range(3):
                if cut[k + 1] > cut[k]:
                    thirds[k].append((tid, np.round(pts[cut[k]:cut[k + 1] + 1]).astype(np.int32)))
        def paint(tid: int, p: np.ndarray) -> Paint:
            def draw(layer: np.ndarray, org: tuple[int, int]) -> None:
                cv2.polylines(layer, [p - np.array(org, np.int32)], False, color_for(tid), thick, cv2.LINE_AA)
            return draw

        for k, alpha in enumerate(_TRAIL_FADE):
            _translucent(out, [(p, paint(tid, p)) for tid, p in thirds[k]], alpha, thick + 1)
        for tid, p in thirds[2]:
            cv2.polylines(out, [p], False, color_for(tid), thick + 1, cv2.LINE_AA)

    def _forecast(self, out: np.ndarray, tid: int, t: np.ndarray, path: np.ndarray, fc: Forecasts, i: int,
                  thick: int) -> None:
        """Dashed path (dark outline under the colour), ticks at whole seconds, a ringed dot at the end."""
        col = color_for(tid)
        dashes = dashed_segments(path, dash=5.0 * thick + 3, gap=3.0 * thick + 2)
        cv2.polylines(out, dashes, False, _OUTLINE, thick + 2, cv2.LINE_AA)
        cv2.polylines(out, dashes, False, col, thick, cv2.LINE_AA)
        half = 3 * thick + 1
        for pos, n in _tick_points(t, path):
            a, b = (tuple(int(v) for v in np.round(pos + sgn * half * n)) for sgn in (1, -1))
            cv2.line(out, a, b, _OUTLINE, thick + 2, cv2.LINE_AA)
            cv2.line(out, a, b, col, thick, cv2.LINE_AA)
        end = tuple(int(v) for v in np.round(path[-1]))
        cv2.circle(out, end, 2 * thick + 2, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, end, 2 * thick, col, -1, cv2.LINE_AA)
        if self.show_forecast_boxes and fc.boxes is not None:
            x1, y1, x2, y2 = np.round(fc.boxes[i, -1]).astype(int)
            for seg in dashed_segments(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], float), 4.0, 4.0):
                cv2.polylines(out, [seg], False, col, 1, cv2.LINE_4)

    @staticmethod
    def _box(out: np.ndarray, box: np.ndarray, label: str, col: tuple[int, int, int], thick: int) -> None:
        """The detection box with its label above it (inside the box when there is no room above)."""
        x1, y1, x2, y2 = np.round(box).astype(int)
        cv2.rectangle(out, (x1, y1), (x2, y2), col, thick, cv2.LINE_AA)
        scale = 0.35 * thick + 0.1
        (_, th), base = cv2.getTextSize(label, _FONT, scale, 1)
        y = y1 - base - 1 if y1 - th - base - 2 >= 0 else y1 + th + 2
        put_label(out, label, x1, y, col, _text_on(col), scale)

    def _legend(self, out: np.ndarray, thick: int, horizon: str) -> None:
        """The key in the bottom-left corner on a dark translucent panel (drawn once per size, then pasted)."""
        key = (thick, horizon)
        if key not in self._legends:
            self._legends[key] = legend_patch(thick, horizon)
        patch = self._legends[key]
        h, w = out.shape[:2]
        ph, pw = min(patch.shape[0], h), min(patch.shape[1], w)
        sub = out[h - ph:h, 0:pw]
        cv2.addWeighted(patch[:ph, :pw], 0.75, sub, 0.25, 0, dst=sub)


def legend_patch(thick: int, horizon: str) -> np.ndarray:
    """The legend as a small image: one sample of each mark, in a neutral colour, with its meaning."""
    scale, row = 0.16 * thick + 0.2, 7 * thick + 8
    col, sw = (235, 235, 235), 12 * thick + 10
    items = ["past path (fades)", "forecast, ticks 1 s apart", f"{CONE_LEVEL:.0%} of positions in the cone", f"forecast end {horizon}".strip(),
             "class #track conf"]
    tw = max(cv2.getTextSize(s, _FONT, scale, 1)[0][0] for s in items)
    patch = np.full((row * len(items) + 8, sw + tw + 18, 3), 25, np.uint8)
    for k, text in enumerate(items):
        y = 4 + row * k + row // 2
        a, b = (6, y), (6 + sw, y)
        if k == 0:
            cv2.line(patch, a, b, col, thick + 1, cv2.LINE_AA)
        elif k == 1:
            cv2.polylines(patch, dashed_segments(np.array([a, b], float), 4.0 * thick + 2, 3.0 * thick + 2), False, col, thick)
            cv2.line(patch, (6 + sw // 2, y - 3 * thick), (6 + sw // 2, y + 3 * thick), col, thick)
        elif k == 2:
            pts = np.array([[6, y], [6 + sw, y - row // 3], [6 + sw, y + row // 3]], np.int32)
            cv2.fillPoly(patch, [pts], (110, 110, 110), cv2.LINE_AA)
        elif k == 3:
            cv2.circle(patch, (6 + sw // 2, y), 2 * thick + 2, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(patch, (6 + sw // 2, y), 2 * thick, (120, 120, 120), -1, cv2.LINE_AA)
        else:
            cv2.rectangle(patch, (6, y - row // 3), (6 + sw, y + row // 3), col, 1)
        cv2.putText(patch, text, (12 + sw, y + 2 + thick), _FONT, scale, col, 1, cv2.LINE_AA)
    return patch


_ZONE = (255, 160, 0)  # BGR: zones and lines
_ALERT = (0, 215, 255)  # objects about to enter / cross
_CONFLICT = (0, 0, 255)


def shade_zones(image: np.ndarray, ov: Overlay, fill: bool = True) -> np.ndarray:
    """A copy of the frame with zones shaded (30 %; outline only without `fill`) and outlined, and lines drawn
    with their direction arrows, each with its name."""
    if not ov.zones and not ov.lines:
        return image
    out = image.copy()
    if fill:
        shaded = out.copy()
        for _, poly in ov.zones:
            cv2.fillPoly(shaded, [np.round(poly).astype(np.int32)], _ZONE, cv2.LINE_AA)
        cv2.addWeighted(shaded, 0.3, out, 0.7, 0, dst=out)
    for name, pts in (*ov.zones, *ov.lines):
        ipts = np.round(pts).astype(np.int32)
        cv2.polylines(out, [ipts], len(pts) > 2, _ZONE, 2, cv2.LINE_AA)
        cv2.putText(out, name, tuple(int(v) for v in ipts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _ZONE, 1, cv2.LINE_AA)
    draw_arrows(out, ov)
    return out


def draw_arrows(out: np.ndarray, ov: Overlay) -> None:
    """Each line's crossing directions: an arrow from its middle to each side, with the user's name for it."""
    for name, tail, head in ov.arrows:
        t, h = (tuple(int(v) for v in np.round(p)) for p in (tail, head))
        cv2.arrowedLine(out, t, h, _OUTLINE, 4, cv2.LINE_AA, tipLength=0.3)
        cv2.arrowedLine(out, t, h, _ZONE, 2, cv2.LINE_AA, tipLength=0.3)
        d = np.asarray(head, float) - np.asarray(tail, float)
        at = np.asarray(head, float) + 0.3 * d
        put_label(out, name, int(at[0]) - 4, int(at[1]) + 4, _OUTLINE, _ZONE, 0.4)


def draw_event_marks(out: np.ndarray, ov: Overlay, tracks: Tracks) -> None:
    """Objects about to enter a zone / cross a line: a thick box and `-> name 1.2s 80%`; forecast conflicts:
    a red link between the pair with the time to collision."""
    by_id = {int(t): i for i, t in enumerate(tracks.track_id)}
    labels: dict[int, list[str]] = {}
    for a in ov.alerts:
        labels.setdefault(a.track_id, []).append(f"-> {a.name} {a.eta_s:.1f}s {a.probability:.0%}")
    for tid, texts in labels.items():
        if tid not in by_id:
            continue
        x1, y1, x2, y2 = np.round(tracks.xyxy[by_id[tid]]).astype(int)
        cv2.rectangle(out, (x1 - 2, y1 - 2), (x2 + 2, y2 + 2), _ALERT, 3, cv2.LINE_AA)
        for k, text in enumerate(texts):
            _label(out, text, (x1, y2 + 14 + 14 * k), _ALERT)
    for c in ov.conflicts:
        p, q = (tuple(int(v) for v in pt) for pt in np.round(c.points))
        cv2.line(out, p, q, _CONFLICT, 2, cv2.LINE_AA)
        mid = ((p[0] + q[0]) // 2, (p[1] + q[1]) // 2)
        _label(out, f"TTC {c.ttc_s:.1f}s {c.distance:.1f}{ov.unit}", mid, _CONFLICT)


def _label(out: np.ndarray, text: str, org: tuple[int, int], col: tuple[int, int, int]) -> None:
    put_label(out, text, org[0], org[1], (0, 0, 0), col, 0.4)
