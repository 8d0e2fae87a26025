"""Draws what it is given (tracks, trails, forecasts) onto a frame with OpenCV; decides nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.events.types import Alert, Overlay
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


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1 and y1 exclusive
Spots = Callable[[int, int], list[tuple[int, int]]]  # a tag's (width, height) -> top-left corners to try, best first
TAG_GAP = 1  # pixels kept free between two tags, so their edges do not merge


def rects_meet(a: Rect, b: Rect, gap: int = 0) -> bool:
    """Whether two rectangles share a pixel (or come closer than `gap` pixels)."""
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _meets(a: np.ndarray, b: np.ndarray, gap: int) -> np.ndarray:
    """rects_meet for every pair of rows of a (M, 4) and b (N, 4): (M, N)."""
    return ((a[:, None, 0] < b[None, :, 2] + gap) & (b[None, :, 0] < a[:, None, 2] + gap)
            & (a[:, None, 1] < b[None, :, 3] + gap) & (b[None, :, 1] < a[:, None, 3] + gap))


def _covers(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels each row of a (M, 4) shares with each row of b (N, 4): (M, N)."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def box_rect(box: np.ndarray) -> Rect:
    """A detection box (x1, y1, x2, y2, floats) as the pixels its drawn outline covers."""
    x1, y1, x2, y2 = (int(v) for v in np.round(box))
    return x1, y1, x2 + 1, y2 + 1


@dataclass(frozen=True)
class TagLine:
    """One line of a tag: its text on its own fill colour (BGR)."""

    text: str
    bg: tuple[int, int, int]
    fg: tuple[int, int, int]


Form = tuple[TagLine, ...]  # the lines of one version of a label
Try = tuple[Form, bool]  # a form, and whether it may only go where it covers no other object's box


def clear_first(forms: list[Form]) -> list[Try]:
    """Every form (longest first) clear of the objects' boxes, then every form where it covers the fewest pixels."""
    return [(f, True) for f in forms] + [(f, False) for f in forms]


@dataclass(frozen=True)
class Tag:
    """A label on the frame: where it is, its lines, and what it names (kind: track, conflict, zone, line or
    direction; key: the track id or the name), so tests and callers can see where each label went."""

    rect: Rect
    lines: Form
    kind: str
    key: int | str
    scale: float
    outline: tuple[int, int, int]


def _line_height(scale: float) -> tuple[int, int]:
    """(height of one tag line, text height above the baseline): Hershey text has one height per scale."""
    (_, th), base = cv2.getTextSize("Ag", _FONT, scale, 1)
    return th + base + 3, th


def tag_size(lines: Form, scale: float) -> tuple[int, int]:
    """Width and height of a tag: the widest line plus 2 px either side, the lines stacked."""
    w = max(cv2.getTextSize(ln.text, _FONT, scale, 1)[0][0] for ln in lines) + 4
    return w, len(lines) * _line_height(scale)[0]


def draw_tag(out: np.ndarray, tag: Tag) -> None:
    """Each line on its own filled band, one outline around the whole tag (it stays apart from its neighbours)."""
    x0, y0, x1, y1 = tag.rect
    lh, th = _line_height(tag.scale)
    for k, ln in enumerate(tag.lines):
        cv2.rectangle(out, (x0, y0 + k * lh), (x1 - 1, y0 + (k + 1) * lh - 1), ln.bg, -1)
        cv2.putText(out, ln.text, (x0 + 2, y0 + k * lh + 2 + th), _FONT, tag.scale, ln.fg, 1, cv2.LINE_AA)
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), tag.outline, 1)


def around_box(rect: Rect, below_first: bool = False, step: int = 6) -> Spots:
    """Spots touching a box: above it, below it (left-aligned, right-aligned, centred), beside it, inside it; then
    sliding along each side in `step` px with the tag's middle still on that side (so it reads as this box's),
    for crowds where the usual spots are taken."""
    x0, y0, x1, y1 = rect

    def spots(w: int, h: int) -> list[tuple[int, int]]:
        cx = (x0 + x1 - w) // 2
        above, below = [(x0, y0 - h), (x1 - w, y0 - h), (cx, y0 - h)], [(x0, y1), (x1 - w, y1), (cx, y1)]
        beside = [(x1, y0), (x0 - w, y0), (x1, y1 - h), (x0 - w, y1 - h)]
        xs, ys = range(x0 - w // 2, x1 - w // 2, step), range(y0 - h // 2, y1 - h // 2, step)
        slides = [(x, y0 - h) for x in xs] + [(x, y1) for x in xs] + [(x1, y) for y in ys] + [(x0 - w, y) for y in ys]
        return [*(below + above if below_first else above + below), *beside, (x0, y0), (x0, y1 - h), *slides]
    return spots


def _diagonals(x: int, y: int, w: int, h: int, gap: int, right: bool, below: bool) -> list[tuple[int, int]]:
    """The four spots with a corner `gap` px diagonally off (x, y): the (right, below) side first, its opposite last."""
    xs = (x + gap, x - gap - w) if right else (x - gap - w, x + gap)
    ys = (y + gap, y - gap - h) if below else (y - gap - h, y + gap)
    return [(xs[0], ys[0]), (xs[1], ys[0]), (xs[0], ys[1]), (xs[1], ys[1])]


def _reach(u: np.ndarray, w: int, h: int) -> float:
    """How far a w x h tag's centre must go along unit vector u before the tag no longer covers its start."""
    return float(min(w / 2 / max(abs(u[0]), 1e-9), h / 2 / max(abs(u[1]), 1e-9)))


def around_point(p: np.ndarray, toward: np.ndarray | None = None, gap: int = 3) -> Spots:
    """Spots beside a point: centred on the side `toward` points to (if given), then the four diagonals, those
    on `toward`'s side first (right and above when it is not given)."""
    x, y = (int(round(float(v))) for v in p)
    d = np.zeros(2) if toward is None else np.asarray(toward, float)
    n = float(np.hypot(*d))

    def spots(w: int, h: int) -> list[tuple[int, int]]:
        first = []
        if n > 1e-9:
            c = np.array([x, y]) + d / n * (_reach(d / n, w, h) + gap)
            first = [(int(round(c[0] - w / 2)), int(round(c[1] - h / 2)))]
        return [*first, *_diagonals(x, y, w, h, gap, d[0] >= 0, d[1] > 0)]
    return spots


def beside_line(a: np.ndarray, b: np.ndarray, gap: int = 3) -> Spots:
    """Spots for a line's name by its first end: just off the line (above it, or right of an upright line),
    then on its other side, then the same by its far end."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    u = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
    n = np.array([u[1], -u[0]])
    if n[1] > 0 or (abs(n[1]) < 1e-9 and n[0] < 0):
        n = -n  # points up (or right)

    def spots(w: int, h: int) -> list[tuple[int, int]]:
        out = []
        for end, along in ((a, u), (b, -u)):
            for side in (n, -n):
                c = end + along * (_reach(along, w, h) + gap) + side * (_reach(side, w, h) + gap)
                out.append((int(round(c[0] - w / 2)), int(round(c[1] - h / 2))))
        return out
    return spots


class LabelPlacer:
    """Greedy label placement: each tag takes the first spot that stays inside the frame and meets no tag placed
    before it (nor a blocked rectangle such as the legend), preferring spots that cover no other object's box.

    A tag that fits nowhere tries its shorter forms (e.g. the track id only) and is otherwise left out: a label
    is never drawn over another one. Spots over other boxes are taken only when no form fits clear of them,
    and then the one covering the fewest pixels. The result depends only on the order of the calls.
    """

    def __init__(self, size: tuple[int, int], boxes: list[Rect] | None = None,
                 blocked: list[Rect] | None = None) -> None:
        self.size = size
        self.boxes = np.array(boxes or [], np.int64).reshape(-1, 4)
        self.blocked = list(blocked or [])
        self.tags: list[Tag] = []

    def place(self, tries: list[Try], spots: Spots, scale: float, outline: tuple[int, int, int], kind: str,
              key: int | str, own: int = -1) -> Tag | None:
        """Place the first of `tries` that fits (`own`: index of the labelled object's box, which it may cover)."""
        for lines, clear in tries:
            w, h = tag_size(lines, scale)
            rect = self._spot(spots(w, h), w, h, own, clear)
            if rect is not None:
                tag = Tag(rect, lines, kind, key, scale, outline)
                self.tags.append(tag)
                return tag
        return None

    def _spot(self, corners: list[tuple[int, int]], w: int, h: int, own: int, clear: bool) -> Rect | None:
        """The first free spot covering no other box; without `clear`, the first free one covering the fewest box
        pixels. Free: meeting no placed tag and no blocked rectangle once shifted inside the frame."""
        fw, fh = self.size
        if w > fw or h > fh or not corners:
            return None
        xy = np.clip(np.array(corners, np.int64), 0, [fw - w, fh - h])
        r = np.hstack([xy, xy + [w, h]])
        free = np.ones(len(r), bool)
        if self.tags:
            free &= ~_meets(r, np.array([t.rect for t in self.tags]), TAG_GAP).any(1)
        if self.blocked:
            free &= ~_meets(r, np.array(self.blocked), 0).any(1)
        others = self.boxes if own < 0 else np.delete(self.boxes, own, 0)
        cost = np.where(free, _covers(r, others).sum(1), np.iinfo(np.int64).max)
        k = int(np.argmin(cost))  # the first of the cheapest
        if not free[k] or (clear and cost[k] > 0):
            return None
        return int(r[k, 0]), int(r[k, 1]), int(r[k, 2]), int(r[k, 3])


class Annotator:
    """Draws each object so the kinds of line cannot be confused, and a legend that says which is which.

    Past trail: solid, fading with age. Forecast: dashed, with a tick at +1, +2, +3 s and a small ringed dot
    at its end (a box there looked like a detection). Uncertainty: a translucent cone, the region that holds
    CONE_LEVEL (80 %) of true positions under the forecast's published spread (std and std2, recalibrated on
    the camera by default). Labels never overlap one another and stay inside the frame (LabelPlacer); an object's
    alerts are lines of its own label; the legend takes the corner with the fewest objects; an object's colour
    comes from its track id.
    """

    def __init__(self, names: dict[int, str], show_forecast_boxes: bool = False) -> None:
        self.names = names
        self.show_forecast_boxes = show_forecast_boxes
        self._legends: dict[tuple[int, str], np.ndarray] = {}
        self.corner = LEGEND_CORNERS[0]  # kept while no other corner is freer, so the legend does not flicker
        self.tags: list[Tag] = []  # the last frame's labels, zone and line names included
        self.legend_rect: Rect = (0, 0, 0, 0)  # where the last frame's legend went

    def draw(
        self, image: np.ndarray, tracks: Tracks, trails: dict[int, np.ndarray], forecasts: Forecasts,
        notes: dict[int, str] | None = None, overlay: Overlay | None = None,
    ) -> np.ndarray:
        """The annotated frame; `notes` adds text to a track's label (e.g. its speed). `overlay`, the frame's
        events, adds each alert to its object's label (a second line) with a frame round the object, and the
        conflict links; labels then also keep off the zone and line names that shade_zones drew."""
        out = image.copy()
        thick = thickness(out.shape)
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
        for box, tid in zip(tracks.xyxy, tracks.track_id):
            x1, y1, x2, y2 = np.round(box).astype(int)
            cv2.rectangle(out, (x1, y1), (x2, y2), color_for(tid), thick, cv2.LINE_AA)
        if overlay is not None:
            _event_marks(out, overlay, tracks, thick)
        horizon = f"+{forecasts.t_future_s[-1]:.1f} s" if len(forecasts.t_future_s) else ""
        self._labels(out, tracks, notes, overlay, thick, horizon)
        return out

    def _labels(self, out: np.ndarray, tracks: Tracks, notes: dict[int, str] | None, overlay: Overlay | None,
                thick: int, horizon: str) -> None:
        """The legend in the freest corner, then every label where it meets no other (see LabelPlacer)."""
        size = (out.shape[1], out.shape[0])
        rects = [box_rect(b) for b in tracks.xyxy]
        static = static_tags(overlay, size) if overlay is not None else []
        key = (thick, horizon)
        if key not in self._legends:
            self._legends[key] = legend_patch(thick, horizon)
        patch = self._legends[key]
        ph, pw = min(patch.shape[0], size[1]), min(patch.shape[1], size[0])
        self.corner = legend_corner(size, (pw, ph), rects, [t.rect for t in static], self.corner)
        self.legend_rect = x0, y0, x1, y1 = corner_rect(self.corner, size, (pw, ph))
        placer = LabelPlacer(size, rects, [self.legend_rect])
        placer.tags.extend(static)
        scale = label_scale(thick)
        if overlay is not None:
            _place_conflicts(placer, overlay, scale)
        alerts = _alerts_by_track(overlay)
        order = sorted(range(len(tracks)), key=lambda i: (int(tracks.track_id[i]) not in alerts,
                                                          -float(tracks.confidence[i]), int(tracks.track_id[i])))
        for i in order:
            tid, cls = int(tracks.track_id[i]), int(tracks.class_id[i])
            note = f" {notes[tid]}" if notes and tid in notes else ""
            mid = f"{self.names.get(cls, cls)} #{tid}"
            head = f"{mid} {float(tracks.confidence[i]):.2f}{note}"
            placer.place(track_tries(tid, head, mid, alerts.get(tid, [])), around_box(rects[i]), scale, _OUTLINE,
                         "track", tid, own=i)
        for tag in placer.tags:  # the names too, again: trails and cones drawn since shade_zones may cover them
            draw_tag(out, tag)
        sub = out[y0:y1, x0:x1]
        cv2.addWeighted(patch[:ph, :pw], 0.75, sub, 0.25, 0, dst=sub)
        self.tags = placer.tags

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
_BLACK = (0, 0, 0)
_NAME_TEXT = (245, 245, 245)  # zone, line and direction names: light text on a dark fill, outlined in the zone colour
LEGEND_CORNERS = ("bottom-left", "bottom-right", "top-right", "top-left")  # the order among equally free corners


def thickness(shape: tuple[int, ...]) -> int:
    """Line width in pixels for a frame: 1 up to 540p, 3 at 1080p."""
    return max(1, round(min(shape[:2]) / 360))


def label_scale(thick: int) -> float:
    """Font scale of object labels (0.45 at 360p)."""
    return 0.35 * thick + 0.1


def corner_rect(corner: str, size: tuple[int, int], wh: tuple[int, int]) -> Rect:
    """The rectangle of a w x h patch in one corner of a frame of `size` (width, height)."""
    x = 0 if corner.endswith("left") else size[0] - wh[0]
    y = 0 if corner.startswith("top") else size[1] - wh[1]
    return x, y, x + wh[0], y + wh[1]


def legend_corner(size: tuple[int, int], wh: tuple[int, int], boxes: list[Rect], names: list[Rect], keep: str) -> str:
    """The corner for a w x h legend: one meeting no tracked box if there is one, else the one meeting the fewest;
    then the fewest zone and line names. `keep`, the legend's corner so far, is kept among equals and, when every
    corner has people in it, unless another has two fewer (in a crowd the legend would otherwise hop from corner to
    corner every few frames). Then LEGEND_CORNERS' order (the live status line is drawn top-left)."""
    def cost(corner: str) -> tuple[int, int, bool, int]:
        r = corner_rect(corner, size, wh)
        return (sum(rects_meet(r, b) for b in boxes), sum(rects_meet(r, t) for t in names), corner != keep,
                LEGEND_CORNERS.index(corner))

    costs = {c: cost(c) for c in LEGEND_CORNERS}
    best = min(LEGEND_CORNERS, key=costs.__getitem__)
    if costs[best][0] > 0 and costs[keep][0] - costs[best][0] < 2:
        return keep
    return best


def track_tries(tid: int, head: str, mid: str, alerts: list[Alert]) -> list[Try]:
    """A track's label forms in the order tried, each first where it covers no other object: `head` (class #id
    conf) with one line per alert, `mid` (class #id) with the alerts' names and times, the id with them, then the
    bare id. An alert is worth covering part of another object, a class name or a confidence is not: the alert
    lines are kept over another box before the label is cut to the id."""
    col = color_for(tid)
    fg = _text_on(col)
    full = tuple(TagLine(f"-> {a.name} {a.eta_s:.1f}s {a.probability:.0%}", _BLACK, _ALERT) for a in alerts)
    brief = tuple(TagLine(f"-> {a.name} {a.eta_s:.1f}s", _BLACK, _ALERT) for a in alerts)
    short = TagLine(f"#{tid}", col, fg)
    tries = [((TagLine(head, col, fg), *full), True), ((TagLine(mid, col, fg), *brief), True), ((short, *brief), True)]
    if alerts:
        tries += [((short, *brief), False), ((short,), True)]
    return list(dict.fromkeys([*tries, ((short,), False)]))


def _alerts_by_track(ov: Overlay | None) -> dict[int, list[Alert]]:
    """Each track's alerts, soonest first."""
    out: dict[int, list[Alert]] = {}
    for a in sorted(ov.alerts if ov is not None else (), key=lambda a: (a.eta_s, a.name)):
        out.setdefault(int(a.track_id), []).append(a)
    return out


def _event_marks(out: np.ndarray, ov: Overlay, tracks: Tracks, thick: int) -> None:
    """A dark-edged yellow frame round each object with an alert (unlike any track's plain box), and a red link
    between each pair forecast to conflict."""
    alerted = {int(a.track_id) for a in ov.alerts}
    for box, tid in zip(tracks.xyxy, tracks.track_id.tolist()):
        if tid in alerted:
            x1, y1, x2, y2 = np.round(box).astype(int)
            for col, w in ((_OUTLINE, 2 * thick + 3), (_ALERT, 2 * thick + 1)):
                cv2.rectangle(out, (x1 - 2, y1 - 2), (x2 + 2, y2 + 2), col, w, cv2.LINE_AA)
    for c in ov.conflicts:
        p, q = (tuple(int(v) for v in pt) for pt in np.round(c.points))
        cv2.line(out, p, q, _CONFLICT, 2 * thick, cv2.LINE_AA)


def _place_conflicts(placer: LabelPlacer, ov: Overlay, scale: float) -> None:
    """Each conflict's time to collision and distance by the middle of its link (just the time if that is all
    that fits)."""
    for c in ov.conflicts:
        mid = np.asarray(c.points, float).mean(0)
        full = f"TTC {c.ttc_s:.1f}s {c.distance:.1f}{ov.unit}"
        forms: list[Form] = [(TagLine(full, _BLACK, _CONFLICT),), (TagLine(f"TTC {c.ttc_s:.1f}s", _BLACK, _CONFLICT),)]
        placer.place(clear_first(forms), around_point(mid), scale, _CONFLICT, "conflict", f"{c.a}-{c.b}")


def static_tags(ov: Overlay, size: tuple[int, int]) -> list[Tag]:
    """Where the zone, line and direction names go: inside the frame, apart from one another, each on a dark
    fill with a zone-coloured outline (readable over any scene). The same every frame, so Annotator.draw can keep
    the objects' labels off them."""
    scale = 0.35 * thickness((size[1], size[0])) + 0.05
    placer = LabelPlacer(size)

    def put(name: str, spots: Spots, kind: str) -> None:
        placer.place(clear_first([(TagLine(name, _OUTLINE, _NAME_TEXT),)]), spots, scale, _ZONE, kind, name)

    for name, poly in ov.zones:
        poly = np.asarray(poly, float)
        top = poly[np.lexsort((poly[:, 0], poly[:, 1]))[0]]  # the topmost vertex (leftmost among equals)
        inward = poly.mean(0) - top
        x, y = (int(round(float(v))) for v in top)

        def spots(w: int, h: int, x: int = x, y: int = y, i: np.ndarray = inward) -> list[tuple[int, int]]:
            return _diagonals(x, y, w, h, 3, i[0] >= 0, i[1] >= 0)

        put(name, spots, "zone")
    for name, pts in ov.lines:
        put(name, beside_line(pts[0], pts[-1]), "line")
    for name, tail, head in ov.arrows:
        put(name, around_point(head, np.asarray(head, float) - np.asarray(tail, float)), "direction")
    return placer.tags


def shade_zones(image: np.ndarray, ov: Overlay, fill: bool = True) -> np.ndarray:
    """A copy of the frame with zones shaded (30 %; outline only without `fill`) and outlined, and lines drawn
    with their direction arrows, each with its name (see static_tags)."""
    if not ov.zones and not ov.lines:
        return image
    out = image.copy()
    if fill:
        shaded = out.copy()
        for _, poly in ov.zones:
            cv2.fillPoly(shaded, [np.round(poly).astype(np.int32)], _ZONE, cv2.LINE_AA)
        cv2.addWeighted(shaded, 0.3, out, 0.7, 0, dst=out)
    for _, pts in (*ov.zones, *ov.lines):
        cv2.polylines(out, [np.round(pts).astype(np.int32)], len(pts) > 2, _ZONE, 2, cv2.LINE_AA)
    draw_arrows(out, ov)
    for tag in static_tags(ov, (out.shape[1], out.shape[0])):
        draw_tag(out, tag)
    return out


def draw_arrows(out: np.ndarray, ov: Overlay) -> None:
    """Each line's crossing directions: an arrow from its middle to each side (named by static_tags)."""
    for _, tail, head in ov.arrows:
        t, h = (tuple(int(v) for v in np.round(p)) for p in (tail, head))
        cv2.arrowedLine(out, t, h, _OUTLINE, 4, cv2.LINE_AA, tipLength=0.3)
        cv2.arrowedLine(out, t, h, _ZONE, 2, cv2.LINE_AA, tipLength=0.3)


def draw_event_marks(out: np.ndarray, ov: Overlay, tracks: Tracks) -> None:
    """Alert frames, conflict links and their texts, onto a frame whose labels were drawn without the overlay.

    Annotator.draw(..., overlay=ov) does better: each alert becomes a line of its object's label and no label meets
    another. Here the alert texts can only be kept apart from one another and the names, below their objects.
    """
    thick = thickness(out.shape)
    _event_marks(out, ov, tracks, thick)
    size = (out.shape[1], out.shape[0])
    rects = [box_rect(b) for b in tracks.xyxy]
    placer = LabelPlacer(size, rects)
    static = static_tags(ov, size)
    placer.tags.extend(static)
    scale = label_scale(thick)
    _place_conflicts(placer, ov, scale)
    by_id = {int(t): i for i, t in enumerate(tracks.track_id)}
    for tid, alerts in _alerts_by_track(ov).items():
        if tid in by_id:
            forms = [f[1:] for f, clear in track_tries(tid, "", "", alerts)[:2]]
            placer.place(clear_first(forms), around_box(rects[by_id[tid]], below_first=True), scale, _OUTLINE, "alert", tid,
                         own=by_id[tid])
    for tag in placer.tags:  # the names too, again: the tracks drawn since shade_zones may cover them
        draw_tag(out, tag)
