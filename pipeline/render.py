"""Draws what it is given (tracks, trails, forecasts) onto a frame with OpenCV; decides nothing."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.events.types import Overlay
from pipeline.types import Forecasts, Tracks

_PALETTE = [
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
    (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
    (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203),
]


def color_for(track_id: int) -> tuple[int, int, int]:
    """A stable BGR colour per track id."""
    return _PALETTE[int(track_id) % len(_PALETTE)]


class Annotator:
    """Boxes with class, id and confidence; past trail; predicted path with its end point marked."""

    def __init__(self, names: dict[int, str], show_forecast_boxes: bool = True) -> None:
        self.names = names
        self.show_forecast_boxes = show_forecast_boxes

    def draw(
        self, image: np.ndarray, tracks: Tracks, trails: dict[int, np.ndarray], forecasts: Forecasts
    ) -> np.ndarray:
        out = image.copy()
        thick = max(1, round(min(out.shape[:2]) / 360))
        for tid, pts in trails.items():
            if len(pts) > 1:
                cv2.polylines(out, [np.round(pts).astype(np.int32)], False, color_for(tid), thick, cv2.LINE_AA)
        by_id = {int(t): i for i, t in enumerate(tracks.track_id)}
        for i, tid in enumerate(forecasts.track_id.tolist()):
            self._forecast(out, tid, forecasts, i, tracks.centers[by_id[tid]] if tid in by_id else None, thick)
        for box, conf, cls, tid in zip(tracks.xyxy, tracks.confidence, tracks.class_id, tracks.track_id):
            self._box(out, box, f"{self.names.get(int(cls), cls)} #{tid} {conf:.2f}", color_for(tid), thick)
        return out

    def _forecast(
        self, out: np.ndarray, tid: int, fc: Forecasts, i: int, start: np.ndarray | None, thick: int
    ) -> None:
        pts = fc.centers[i]
        if start is not None:
            pts = np.vstack([start[None], pts])
        ipts = np.round(pts).astype(np.int32)
        col = color_for(tid)
        cv2.polylines(out, [ipts], False, (255, 255, 255), thick + 2, cv2.LINE_AA)
        cv2.polylines(out, [ipts], False, col, thick, cv2.LINE_AA)
        end = tuple(int(v) for v in ipts[-1])
        cv2.circle(out, end, 3 * thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, end, 3 * thick, col, -1, cv2.LINE_AA)
        if self.show_forecast_boxes and fc.boxes is not None:
            x1, y1, x2, y2 = np.round(fc.boxes[i, -1]).astype(int)
            cv2.rectangle(out, (x1, y1), (x2, y2), col, 1, cv2.LINE_4)

    @staticmethod
    def _box(out: np.ndarray, box: np.ndarray, label: str, col: tuple[int, int, int], thick: int) -> None:
        x1, y1, x2, y2 = np.round(box).astype(int)
        cv2.rectangle(out, (x1, y1), (x2, y2), col, thick, cv2.LINE_AA)
        scale = 0.35 * thick + 0.1
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + base + 2
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 2, ty + base - 1), col, -1)
        cv2.putText(out, label, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


_ZONE = (255, 160, 0)  # BGR: zones and lines
_ALERT = (0, 215, 255)  # objects about to enter / cross
_CONFLICT = (0, 0, 255)


def shade_zones(image: np.ndarray, ov: Overlay) -> np.ndarray:
    """A copy of the frame with zones shaded (30 %) and outlined, and lines drawn, each with its name."""
    if not ov.zones and not ov.lines:
        return image
    out = image.copy()
    fill = out.copy()
    for _, poly in ov.zones:
        cv2.fillPoly(fill, [np.round(poly).astype(np.int32)], _ZONE, cv2.LINE_AA)
    cv2.addWeighted(fill, 0.3, out, 0.7, 0, dst=out)
    for name, pts in (*ov.zones, *ov.lines):
        ipts = np.round(pts).astype(np.int32)
        cv2.polylines(out, [ipts], len(pts) > 2, _ZONE, 2, cv2.LINE_AA)
        cv2.putText(out, name, tuple(int(v) for v in ipts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _ZONE, 1, cv2.LINE_AA)
    return out


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
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    x, y = org
    cv2.rectangle(out, (x, y - th - 2), (x + tw + 2, y + base), (0, 0, 0), -1)
    cv2.putText(out, text, (x + 1, y - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, col, 1, cv2.LINE_AA)
