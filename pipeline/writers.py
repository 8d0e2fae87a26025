"""Output sinks as context managers that flush as they go, so an interrupted run leaves usable files."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import UserError
from pipeline.types import Forecasts, Tracks

TRACK_COLUMNS = [
    "frame", "time_s", "track_id", "class_name", "confidence", "x1", "y1", "x2", "y2", "cx", "cy",
]
PREDICTION_COLUMNS = [
    "frame", "time_s", "track_id", "step", "t_future_s", "pred_cx", "pred_cy",
    "pred_x1", "pred_y1", "pred_x2", "pred_y2", "std_x", "std_y",
]


def _f(v: float, nd: int = 2) -> str:
    return f"{v:.{nd}f}"


class _CsvSink:
    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = path
        self.columns = columns
        self._fh = None
        self._writer = None

    def __enter__(self):
        try:
            self._fh = self.path.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {exc.strerror}") from None
        self._writer = csv.writer(self._fh)
        self._writer.writerow(self.columns)
        self._fh.flush()
        return self

    def _rows(self, rows: list[list[str]]) -> None:
        self._writer.writerows(rows)
        self._fh.flush()  # whole frames only: an interrupt never leaves half a frame's rows behind

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


class TracksCsv(_CsvSink):
    """`tracks.csv`: one row per object per frame."""

    def __init__(self, path: Path, names: dict[int, str]) -> None:
        super().__init__(path, TRACK_COLUMNS)
        self.names = names

    def write(self, frame: int, time_s: float, tracks: Tracks) -> None:
        c = tracks.centers
        self._rows([
            [str(frame), _f(time_s, 4), str(int(tid)), self.names.get(int(cls), str(cls)), _f(conf, 3),
             *(_f(v) for v in box), _f(c[i, 0]), _f(c[i, 1])]
            for i, (box, conf, cls, tid) in enumerate(zip(tracks.xyxy, tracks.confidence, tracks.class_id, tracks.track_id))
        ])


class PredictionsCsv(_CsvSink):
    """`predictions.csv`: one row per object per frame per future step; box and std columns may be empty."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, PREDICTION_COLUMNS)

    def write(self, frame: int, time_s: float, fc: Forecasts) -> None:
        rows = []
        for i, tid in enumerate(fc.track_id.tolist()):
            for k, t in enumerate(fc.t_future_s.tolist()):
                box = [_f(v) for v in fc.boxes[i, k]] if fc.boxes is not None else ["", "", "", ""]
                std = [_f(v) for v in fc.std[i, k]] if fc.std is not None else ["", ""]
                rows.append([str(frame), _f(time_s, 4), str(tid), str(k + 1), _f(t, 3),
                             _f(fc.centers[i, k, 0]), _f(fc.centers[i, k, 1]), *box, *std])
        self._rows(rows)


class VideoSink:
    """Annotated video with the input's size and fps; release() on exit finalises the container."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], codec: str = "mp4v") -> None:
        self.path, self.fps, self.size, self.codec = path, fps, size, codec
        self._vw: cv2.VideoWriter | None = None
        self.frames_written = 0

    def __enter__(self) -> VideoSink:
        self._vw = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.codec), self.fps, self.size)
        if not self._vw.isOpened():
            raise UserError(f"cannot open video writer for {self.path} with codec {self.codec!r}; try output.codec: mp4v")
        return self

    def write(self, image: np.ndarray) -> None:
        self._vw.write(image)
        self.frames_written += 1

    def __exit__(self, *exc: object) -> None:
        if self._vw is not None:
            self._vw.release()
