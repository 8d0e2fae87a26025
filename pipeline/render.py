"""Draws what it is given (tracks, trails, forecasts) onto a frame with OpenCV; decides nothing."""

from __future__ import annotations

import cv2
import numpy as np

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
