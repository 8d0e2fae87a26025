"""Output sinks as context managers that write whole frames, so an interrupted or full-disk run leaves usable files."""

from __future__ import annotations

import csv
import io
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from io import FileIO
from pathlib import Path

import numpy as np

from pipeline.core.errors import FULL_ERRNOS, DiskFullError, UserError, disk_full_error
from pipeline.core.types import Forecasts, Tracks
from pipeline.outputs.video import H264, INDEX_BYTES_PER_FRAME, MUXER_BYTES, H264Encoder, OpenCvEncoder, open_encoder

TRACK_COLUMNS = [
    "frame", "time_s", "track_id", "class_name", "confidence", "x1", "y1", "x2", "y2", "cx", "cy",
]
PREDICTION_COLUMNS = [
    "frame", "time_s", "track_id", "class_name", "step", "t_future_s", "t_target_s", "pred_cx", "pred_cy",
    "pred_x1", "pred_y1", "pred_x2", "pred_y2", "std_x", "std_y", "std2_x", "std2_y",
]
TRACK_GROUND_COLUMNS = ["x_m", "y_m", "speed_mps"]  # appended with --camera: foot point on the ground, speed
PREDICTION_GROUND_COLUMNS = ["pred_x_m", "pred_y_m"]  # appended with --camera: forecast foot point on the ground


def _f(v: float, nd: int = 2) -> str:
    return f"{v:.{nd}f}"


def _opt(v: float, nd: int) -> str:
    """A number, or empty where there is none (NaN: e.g. a point beyond the camera's horizon)."""
    return f"{v:.{nd}f}" if np.isfinite(v) else ""


def room_left(path: Path) -> int:
    """Bytes that can still be added to `path`: free space on its disk (for non-root), within the file size limit."""
    try:
        st = os.statvfs(path.parent)
        left = st.f_bavail * st.f_frsize
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            left = min(left, limit - (path.stat().st_size if path.exists() else 0))
    except OSError as exc:
        raise UserError(f"cannot check the free space for {path}: {exc.strerror}") from None
    return left


class _CsvSink:
    """A CSV file written one frame at a time: each frame's rows reach the file whole or not at all.

    The file is unbuffered (nothing is left in a buffer to be half-written later), and a write that fails
    part-way (a full disk) is cut back to the last frame boundary before the error is raised.
    """

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = path
        self.columns = columns
        self._fh: FileIO | None = None
        self.size = 0  # bytes of whole frames in the file

    def __enter__(self):
        try:
            self._fh = FileIO(self.path, "w")
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {exc.strerror}") from None
        if self.columns:  # MOT text files have no header
            self._rows([self.columns])
        return self

    def _rows(self, rows: list[list[str]]) -> None:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        self._append(buf.getvalue().encode("utf-8"))

    def _append(self, data: bytes) -> None:
        fh = self._fh
        assert fh is not None, "write inside `with`"
        view = memoryview(data)
        try:
            while view:
                view = view[fh.write(view):]
        except OSError as exc:
            self.cut(self.size)
            if exc.errno in FULL_ERRNOS:
                raise disk_full_error(self.path, exc) from None
            raise
        self.size += len(data)

    def cut(self, size: int) -> None:
        """Shorten the file to `size` bytes (a frame boundary): drops a frame that could not be written whole."""
        assert self._fh is not None, "cut inside `with`"
        self._fh.truncate(size)
        self._fh.seek(size)
        self.size = size

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


@contextmanager
def whole_frame(*sinks: _CsvSink | None) -> Iterator[None]:
    """One frame into several files: if any write fails, every CSV (None: not written) is cut back to before it.

    So tracks.csv and predictions.csv always end on the same frame, and never beyond the video's last frame.
    """
    written = tuple(s for s in sinks if s is not None)
    marks = [s.size for s in written]
    try:
        yield
    except BaseException:
        for s, m in zip(written, marks):
            s.cut(m)
        raise


class TracksCsv(_CsvSink):
    """`tracks.csv`: one row per object per frame."""

    def __init__(self, path: Path, names: dict[int, str], ground: bool = False) -> None:
        super().__init__(path, TRACK_COLUMNS + TRACK_GROUND_COLUMNS * ground)
        self.names = names

    def write(self, frame: int, time_s: float, tracks: Tracks, ground: np.ndarray | None = None) -> None:
        """`ground` (N, 3): x_m, y_m, speed_mps per track, written as extra columns (NaN: empty)."""
        c = tracks.centers
        extra = [[] for _ in range(len(tracks))] if ground is None else [[_opt(v, 3) for v in g] for g in ground]
        self._rows([
            [str(frame), _f(time_s, 4), str(int(tid)), self.names.get(int(cls), str(cls)), _f(conf, 3),
             *(_f(v) for v in box), _f(c[i, 0]), _f(c[i, 1]), *extra[i]]
            for i, (box, conf, cls, tid) in enumerate(zip(tracks.xyxy, tracks.confidence, tracks.class_id, tracks.track_id))
        ])


class PredictionsCsv(_CsvSink):
    """`predictions.csv`: one row per object per frame per future step; box and std columns may be empty."""

    def __init__(self, path: Path, ground: bool = False, names: dict[int, str] | None = None) -> None:
        super().__init__(path, PREDICTION_COLUMNS + PREDICTION_GROUND_COLUMNS * ground)
        self.names = names or {}

    def write(self, frame: int, time_s: float, fc: Forecasts, ground: np.ndarray | None = None,
              tracks: Tracks | None = None) -> None:
        """`ground` (N, H, 2): forecast foot points in metres, written as extra columns (NaN: empty); `tracks`:
        the frame's tracks, for each forecast's class name."""
        classes = {} if tracks is None else dict(zip(tracks.track_id.tolist(), tracks.class_id.tolist()))
        rows = []
        for i, tid in enumerate(fc.track_id.tolist()):
            cls = classes.get(tid)
            name = "" if cls is None else self.names.get(int(cls), str(cls))
            for k, t in enumerate(fc.t_future_s.tolist()):
                box = [_f(v) for v in fc.boxes[i, k]] if fc.boxes is not None else ["", "", "", ""]
                std = [_f(v) for v in fc.std[i, k]] if fc.std is not None else ["", ""]
                std += [_f(v) for v in fc.std2[i, k]] if fc.std2 is not None else ["", ""]
                extra = [] if ground is None else [_opt(v, 3) for v in ground[i, k]]
                rows.append([str(frame), _f(time_s, 4), str(tid), name, str(k + 1), _f(t, 3), _f(time_s + t, 4),
                             _f(fc.centers[i, k, 0]), _f(fc.centers[i, k, 1]), *box, *std, *extra])
        self._rows(rows)


class MotTxt(_CsvSink):
    """`tracks.txt` (--save-txt): MOTChallenge rows `frame,id,left,top,width,height,conf,-1,-1,-1`, frames from 1.

    The format tracker benchmarks read (py-motmetrics, TrackEval), so a run can be scored against ground truth.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, [])

    def write(self, frame: int, tracks: Tracks) -> None:
        self._rows([
            [str(frame + 1), str(int(tid)), _f(x1), _f(y1), _f(x2 - x1), _f(y2 - y1), _f(conf, 3), "-1", "-1", "-1"]
            for (x1, y1, x2, y2), conf, tid in zip(tracks.xyxy.tolist(), tracks.confidence.tolist(), tracks.track_id)
        ])


class EventsCsv(_CsvSink):
    """`events.csv`: one row per zone / line / conflict event (`pipeline.events.types.Event.row`)."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        super().__init__(path, columns)

    def write(self, rows: list[list[str]]) -> None:
        self._rows(rows)  # also with no rows: the file is flushed every frame


class VideoSink:
    """Annotated video with the input's size and fps (H.264 by default); close on exit finalises the container.

    An mp4 whose index (written when it is finalised) did not fit never plays, and OpenCV's writer fails
    silently on a full disk. So every frame first checks that the disk still has room for what the encoder
    may still write (the next frame, the frames x264 holds back) and the index; otherwise the run stops with
    a DiskFullError while the video can still be finalised.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], codec: str = H264, crf: int = 26,
                 preset: str = "auto") -> None:
        self.path, self.fps, self.size, self.codec = path, fps, size, codec
        self.crf, self.preset = crf, preset
        self._enc: H264Encoder | OpenCvEncoder | None = None
        self.frames_written = 0

    def __enter__(self) -> VideoSink:
        self._enc = open_encoder(self.path, self.fps, self.size, self.codec, self.crf, self.preset)
        return self

    def write(self, image: np.ndarray) -> None:
        assert self._enc is not None, "write inside `with`"
        need = self._enc.pending_bytes() + MUXER_BYTES + INDEX_BYTES_PER_FRAME * (self.frames_written + 1)
        left = room_left(self.path)
        if left < need:
            n = self.frames_written
            kept = f"with {n} frames in a playable video" if n else "before the video's first frame"
            raise DiskFullError(
                f"cannot write {self.path}: the disk is full ({max(left, 0) / 1e6:.1f} MB left on its disk or under "
                f"the file size limit, {need / 1e6:.1f} MB needed for the next frame and the video's index); the "
                f"run stopped {kept} and outputs whole up to the last complete frame: free some space and run again")
        self._enc.write(image)
        self.frames_written += 1

    def __exit__(self, *exc: object) -> None:
        if self._enc is not None:
            enc, self._enc = self._enc, None
            enc.close()
