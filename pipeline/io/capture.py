"""Live sources: cameras and stream URLs, read by a thread that keeps only the newest frame."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.core.config import LiveConfig
from pipeline.core.redact import mask_credentials as mask_url  # the one masking function
from pipeline.core.errors import SourceUnavailableError, UserError

__all__ = ["mask_url", "LatestFrameReader", "open_source", "parse_source", "describe"]


def parse_source(source: str) -> int | str:
    """'0', '1' -> camera index; anything else is a URL or device path."""
    return int(source) if source.strip().isdigit() else source.strip()


def describe(source: int | str) -> str:
    return f"camera {source}" if isinstance(source, int) else mask_url(str(source))


# V4L2 on Linux: the generic probe also tries depth-sensor backends that log errors for every index.
_CAMERA_API = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY


def available_cameras(max_index: int = 6) -> list[int]:
    """Camera indexes that open and deliver a frame (used to say which ones exist)."""
    found = []
    for i in range(max_index):
        cap = cv2.VideoCapture(i, _CAMERA_API)
        if cap.isOpened() and cap.read()[0]:
            found.append(i)
        cap.release()
    return found


def open_source(source: int | str, cfg: LiveConfig) -> cv2.VideoCapture:
    """Open a camera or stream, or fail with a one-line message that says what to try."""
    if isinstance(source, str):
        ms = int(cfg.open_timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    else:
        cap = cv2.VideoCapture(source, _CAMERA_API)
    if cap.isOpened():
        return cap
    cap.release()
    if isinstance(source, int):
        ok = available_cameras()
        which = f"cameras that open: {', '.join(map(str, ok))}" if ok else "no camera opens on this machine"
        raise SourceUnavailableError(f"camera {source} does not exist or is busy; {which}")
    raise SourceUnavailableError(f"cannot open stream {mask_url(source)}; check the URL, network and credentials")


@dataclass
class CapturedFrame:
    """A frame with its capture-clock time (monotonic seconds) and sequence number."""

    index: int
    captured_at: float
    image: np.ndarray


class LatestFrameReader:
    """Background reader that holds only the newest frame: slow processing drops frames, never queues them.

    When reads fail it reopens the source with exponential backoff for `reconnect_s`, then ends.
    """

    def __init__(self, opener: Callable[[], cv2.VideoCapture], cfg: LiveConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._opener, self._cfg, self._clock = opener, cfg, clock
        self._cap = opener()
        self.reported_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._cond = threading.Condition()
        self._latest: CapturedFrame | None = None
        self._stop = threading.Event()
        self.captured = 0
        self.dropped = 0
        self.reconnects = 0
        self.ended = False
        self.end_reason = ""
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> LatestFrameReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ok, image = self._cap.read()
                if not ok or image is None:
                    if not self._reconnect():
                        return
                    continue
                frame = CapturedFrame(self.captured, self._clock(), image)
                with self._cond:
                    if self._latest is not None:
                        self.dropped += 1  # the previous newest frame was never processed
                    self._latest = frame
                    self.captured += 1
                    self._cond.notify_all()
        finally:
            self._cap.release()
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _reconnect(self) -> bool:
        deadline = self._clock() + self._cfg.reconnect_s
        wait = 0.1
        self._cap.release()
        while not self._stop.is_set() and self._clock() < deadline:
            self._stop.wait(min(wait, max(0.0, deadline - self._clock())))
            wait = min(wait * 2, self._cfg.backoff_max_s)
            try:
                cap = self._opener()
            except UserError:
                continue
            self._cap = cap
            self.reconnects += 1
            return True
        self.end_reason = f"stream lost; gave up after reconnecting for {self._cfg.reconnect_s:g} s"
        return False

    def get(self, timeout: float) -> CapturedFrame | None:
        """The newest unprocessed frame, waiting up to timeout; None if none came (check `ended`)."""
        with self._cond:
            if self._latest is None and not self.ended:
                self._cond.wait(timeout)
            frame, self._latest = self._latest, None
            return frame

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
