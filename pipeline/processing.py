"""Per-frame work shared by file and live modes, and the clean-stop signal handling."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from pipeline.config import TrackRunConfig
from pipeline.detector import YoloDetector, detections_stream
from pipeline.errors import UserError
from pipeline.forecast.history import TrackHistory
from pipeline.forecast.predictors import Predictor, build_predictor, forecast
from pipeline.render import Annotator
from pipeline.tracker import MultiObjectTracker
from pipeline.types import Detections, Forecasts, Frame, Tracks


def check_display(show: bool, fix: str) -> None:
    """Fail fast when a window is asked for on a machine without a display."""
    if show and sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise UserError(f"showing a window needs a display but $DISPLAY is not set; {fix}")


class StopFlag:
    """Turns the first SIGINT/SIGTERM into a clean stop at the next frame boundary."""

    def __init__(self) -> None:
        self.stop = False

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        def handler(signum: int, _frame: object) -> None:
            if self.stop:  # second signal: stop now, context managers still close the files
                raise KeyboardInterrupt
            self.stop = True

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


@dataclass(frozen=True)
class FrameResult:
    """Everything one frame produced: what the writers and the renderer need."""

    frame: Frame
    tracks: Tracks
    forecasts: Forecasts
    trails: dict[int, np.ndarray]


class FrameProcessor:
    """Per-frame logic shared by file and live modes; holds all per-run state."""

    def __init__(self, cfg: TrackRunConfig, fps: float, frame_size: tuple[int, int]) -> None:
        self.cfg = cfg
        self.predictor: Predictor = build_predictor(cfg.predictor)
        self.detector = YoloDetector(cfg.detector)
        self.tracker = MultiObjectTracker(cfg.tracker, fps)
        self.history = TrackHistory(cfg.history, fps)
        self.annotator = Annotator(self.detector.names, cfg.output.show_boxes)
        self.frame_size = frame_size

    def warmup(self, image: np.ndarray) -> None:
        """Run the detector once so the first live frame does not pay for model compilation."""
        self.detector.detect(image)

    def update(self, frame: Frame, dets: Detections) -> FrameResult:
        """Track and forecast one frame's detections (frames must come in order)."""
        tracks = self.tracker.update(dets, frame.image)
        self.history.update(tracks, frame.time_s)
        p = self.predictor
        ids, win = self.history.windows(tracks.track_id, frame.time_s, p.step_s, p.obs_len, self.frame_size)
        fc = forecast(p, ids, win)
        since = frame.time_s - self.cfg.output.trail_s
        trails = {int(t): self.history.trail(int(t), since) for t in tracks.track_id}
        return FrameResult(frame, tracks, fc, trails)

    def results(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        """Results for a stream of frames, with decoding and detection `speed.detect_ahead` frames ahead."""
        for frame, dets in detections_stream(self.detector, frames, self.cfg.speed.detect_ahead):
            yield self.update(frame, dets)

    def annotate(self, r: FrameResult) -> np.ndarray:
        return self.annotator.draw(r.frame.image, r.tracks, r.trails, r.forecasts)
