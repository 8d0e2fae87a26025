"""Frame source: a video file as a generator of `Frame`s with explicit timestamps."""

from __future__ import annotations

import math
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2

from pipeline.core.errors import UserError
from pipeline.core.types import Frame

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (frame_count is the header's claim, may be wrong)."""

    width: int
    height: int
    fps: float
    frame_count: int


def _check_regular_readable(path: Path) -> None:
    """A FIFO or device would block the decoder forever (or stream endlessly): only regular files are videos."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise UserError(f"{path} is not a regular file (a FIFO, device or socket); pass a video file to --source")
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None


SNAP_S = 0.0005  # half a millisecond: the resolution many containers store (mkv), far below any motion


class ContainerClock:
    """Seconds of each decoded frame from the container's timestamps, counted from the first frame.

    Not index / fps: variable-frame-rate files (phones, screen recorders, cameras that drop frames) would get
    wrong speeds and horizons. A timestamp within SNAP_S of index / fps becomes index / fps, so constant-rate
    files keep exact times (29.97 stays 29.97); a missing or non-increasing one (the last frames some AVI
    decoders flush carry none) becomes the previous time + 1 / fps.
    """

    def __init__(self, fps: float) -> None:
        self.fps = fps  # of the container: `index` below counts the container's frames
        self._t0: float | None = None
        self._last = 0.0

    def time_of(self, pos_msec: float, index: int, step: int = 1) -> float:
        """time_s of frame `index`, given OpenCV's CAP_PROP_POS_MSEC right after reading it (`step` frames on)."""
        t = pos_msec / 1000.0
        if self._t0 is None:
            self._t0 = t if math.isfinite(t) else 0.0
            return 0.0
        t -= self._t0
        if not t > self._last:  # also NaN
            t = self._last + step / self.fps
        exact = index / self.fps
        self._last = exact if abs(t - exact) <= SNAP_S else round(t, 6)  # microseconds: no float noise in CSVs
        return self._last


class VideoFileSource:
    """Decodes a video file frame by frame; counts what actually decoded.

    Timestamps come from the container (`ContainerClock`), so a variable-frame-rate file keeps its real timing.
    With `stride` N (ultralytics' --vid-stride) only every Nth frame is decoded (the others are grabbed, not
    decoded): `info` then describes the stream handed out (fps / N, frames / N), while `Frame.index` stays the
    container's frame number, so tracks.csv rows still point at the right frame of the input.
    """

    def __init__(self, path: str | Path, stride: int = 1) -> None:
        if not isinstance(stride, int) or stride < 1:
            raise UserError(f"--vid-stride must be a whole number >= 1, got {stride}")
        self.path = Path(path)
        self.stride = stride
        if not self.path.exists():
            raise UserError(f"video not found: {self.path} (check the path passed to --source)")
        if self.path.is_dir():
            raise UserError(f"{self.path} is a directory; pass a video file to --source")
        _check_regular_readable(self.path)
        if cv2.haveImageReader(str(self.path)):  # reads the file's signature: a still image, whatever its name
            raise UserError(f"{self.path} is a still image, not a video; pass a video file to --source")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            raise UserError(
                f"{self.path} cannot be opened as a video (not a video file, or truncated/corrupt); "
                "check that it plays, or re-encode it to mp4"
            )
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if w <= 0 or h <= 0:
            self._cap.release()
            raise UserError(f"{self.path} has no video stream; pass a video file to --source")
        if not (0.5 <= fps <= 1000.0):
            self._cap.release()
            raise UserError(f"{self.path} reports an invalid frame rate ({fps}); re-encode it with a fixed fps")
        self.info = VideoInfo(width=w, height=h, fps=fps / stride, frame_count=-(-max(n, 0) // stride))
        self.frames_read = 0  # frames handed out
        self._index = 0  # the container's frame number of the next frame
        self._clock = ContainerClock(fps)

    def __iter__(self) -> Iterator[Frame]:
        try:
            while True:
                ok, image = self._cap.read()
                if not ok or image is None:
                    return
                if image.shape[1] != self.info.width or image.shape[0] != self.info.height:
                    image = cv2.resize(image, (self.info.width, self.info.height))
                t = self._clock.time_of(self._cap.get(cv2.CAP_PROP_POS_MSEC), self._index, self.stride)
                frame = Frame(self._index, t, image)
                self.frames_read += 1
                self._index += 1
                yield frame
                if not self._skip(self.stride - 1):
                    return
        finally:
            self.close()

    def _skip(self, n: int) -> bool:
        """Grab (demux without decoding) the n frames between two strided ones; False at the end of the video."""
        for _ in range(n):
            if not self._cap.grab():
                return False
            self._index += 1
        return True

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> VideoFileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
