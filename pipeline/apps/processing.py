"""Per-frame work shared by file and live modes, and the clean-stop signal handling."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.config import DetectorConfig, TrackRunConfig
from pipeline.perception.detector import Detector, OpenVinoYolo, build_detector, detections_stream
from pipeline.core.errors import UserError
from pipeline.events.engine import EventEngine, foot_points
from pipeline.events.track_summary import TrackSummaries
from pipeline.events.types import EventFrame
from pipeline.forecast.history import TrackHistory
from pipeline.forecast.auto import SelfScoringForecaster, build_forecaster
from pipeline.forecast.scoring import ScoresFile
from pipeline.outputs.render import Annotator, shade_zones
from pipeline.perception.tracker import MultiObjectTracker
from pipeline.core.types import Detections, Forecasts, Frame, Tracks


def check_display(show: bool, fix: str) -> None:
    """Fail fast when a window is asked for on a machine without a display."""
    if show and sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise UserError(f"showing a window needs a display but $DISPLAY is not set; {fix}")


class StopFlag:
    """Turns the first SIGINT/SIGTERM into a clean stop at the next frame boundary.

    A later signal never raises: a KeyboardInterrupt inside a writer's close left unfinalised, unplayable
    videos (and aborts at exit). It only says that the files are being finished; installed() should span
    the files' whole life, so shutdown is bounded (the writer queue, then closing the files).
    """

    def __init__(self) -> None:
        self.stop = False

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        if threading.current_thread() is not threading.main_thread():  # a Ray actor's thread: its owner sets .stop
            yield self
            return

        def handler(signum: int, _frame: object) -> None:
            if self.stop:  # os.write: print() could re-enter a stderr write the signal interrupted
                os.write(2, b"stopping: finishing the output files so they stay complete, please wait\n")
                return
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
    events: EventFrame | None = None  # with --camera / --zones: events, ground columns, what to draw
    # forecasts are made at the models' step (0.4 s): `forecasts` holds them on those frames only (what
    # predictions.csv gets), `shown` the last ones of the tracks present on every frame (what is drawn)
    shown: Forecasts | None = None


class DetectorCache:
    """Detectors kept across runs in one process, one per detector config: a batch worker loads its model once.

    A detector holds no per-video state (tracks live in the tracker); `prepare` re-fits it to each video's size.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Detector] = {}

    def get(self, cfg: DetectorConfig) -> Detector:
        key = repr(cfg)
        if key not in self._loaded:
            self._loaded[key] = build_detector(cfg)
        return self._loaded[key]


class FrameProcessor:
    """Per-frame logic shared by file and live modes; holds all per-run state."""

    def __init__(self, cfg: TrackRunConfig, fps: float, frame_size: tuple[int, int],
                 detector: Detector | None = None) -> None:
        """`detector`: one already loaded for cfg.detector (a batch worker keeps its own across videos)."""
        self.cfg = cfg
        # zones and the camera are checked against the frame before any model loads or output exists
        self.events = EventEngine(cfg.events, frame_size, cfg.history.max_lost_s) if cfg.events.active else None
        self._event_scores: Path | None = None
        # self-scoring interpolates the truth between processed frames up to 1 s apart (live drops frames);
        # across a longer stall a forecast point is not scored
        self.detector = detector if detector is not None else build_detector(cfg.detector)
        self.detector.prepare(frame_size)  # compiles in the background while the forecaster and tracker load
        if self.events is not None:
            self.events.names = dict(self.detector.names)  # counts per class name
        self._counts: Path | None = None
        metric = self.events is not None and self.events.camera is not None
        ev_cfg = cfg.events
        self.summaries = TrackSummaries(metric, ev_cfg.hysteresis_m if metric else ev_cfg.hysteresis_bh,
                                        ev_cfg.speed_window_s)
        self._summary_path: Path | None = None
        self.forecaster: SelfScoringForecaster = build_forecaster(
            cfg.predictor, max_gap_s=max(1.0, 2.5 / fps), at_steps=True, device=self.detector.device)
        self._scores_file: ScoresFile | None = None
        if isinstance(self.detector, OpenVinoYolo):
            # torch then only runs the LSTM: a small batch every 0.4 s is fastest on one thread, and more threads
            # would spin against OpenVINO's inference threads (measured: 2.8 vs 6.8 ms for 10 tracks, 2 busy cores)
            import torch

            torch.set_num_threads(1)
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
        fc = self.forecaster.update(
            frame.time_s, tracks,
            lambda step_s, obs_len: self.history.windows(tracks.track_id, frame.time_s, step_s, obs_len, self.frame_size),
        )
        if self._scores_file is not None and self._scores_file.maybe_write(frame.time_s, self.forecaster.score_rows):
            self._write_tables()  # counts, conflicts and track summary kept current at the same cadence (10 s)
        since = frame.time_s - self.cfg.output.trail_s
        trails = {int(t): self.history.trail(int(t), since) for t in tracks.track_id}
        ev = self.events.update(frame.index, frame.time_s, tracks, fc) if self.events is not None else None
        if self._summary_path is not None:  # track_summary.csv is written: nothing else reads it
            self._summarise(frame.time_s, tracks, ev)
        made = fc if self.forecaster.fresh else Forecasts.empty(fc.t_future_s)
        return FrameResult(frame, tracks, made, trails, ev, shown=fc)

    def save_scores(self, path: Path, every_s: float = 10.0) -> None:
        """Keep `path` (forecast_scores.csv) up to date every `every_s` seconds of video time and at the end."""
        self._scores_file = ScoresFile(path, every_s)

    def _summarise(self, t: float, tracks: Tracks, ev: EventFrame | None) -> None:
        """Per-track aggregates: foot points in metres with a camera (and the ground speeds the events stage
        measured, the same way), else pixels in body heights."""
        speeds = None
        if ev is not None and ev.ground is not None:
            foot, unit, speeds = ev.ground[:, :2], np.ones(len(tracks)), ev.ground[:, 2]
        else:
            foot = foot_points(tracks.xyxy).astype(np.float64)
            unit = (tracks.xyxy[:, 3] - tracks.xyxy[:, 1]).astype(np.float64)
        names = self.detector.names
        classes = [names.get(int(c), str(int(c))) for c in tracks.class_id.tolist()]
        self.summaries.update(t, tracks.track_id, classes, foot, unit, ev.events if ev is not None else (), speeds)

    def _speed_notes(self, r: FrameResult) -> dict[int, str] | None:
        """`31 km/h` for each moving track (output.show_speed, with a camera); standing ones say nothing."""
        ev = r.events
        if not self.cfg.output.show_speed or ev is None or ev.ground is None:
            return None
        return {int(tid): f"{v * 3.6:.0f} km/h" for tid, v in zip(r.tracks.track_id.tolist(), ev.ground[:, 2])
                if np.isfinite(v) and v > 0}

    def save_track_summary(self, path: Path) -> None:
        """track_summary.csv, rewritten with counts.csv's cadence and at the end."""
        self._summary_path = path

    def save_counts(self, path: Path) -> None:
        """Keep counts.csv (lines and zones) and conflicts.csv beside it current during the run and write them
        whole at the end."""
        self._counts = path

    def _write_tables(self) -> None:
        """counts.csv, conflicts.csv (beside it) and track_summary.csv, where they are being saved."""
        if self._counts is not None and self.events is not None and self.events.traffic.has_geometry:
            self.events.write_counts(self._counts)
        if self._counts is not None and self.events is not None:
            self.events.write_conflicts(self._counts.with_name("conflicts.csv"))
        if self._summary_path is not None:
            self.summaries.write(self._summary_path)

    def finish_scores(self) -> list[str]:
        """Write the final scores (when saving) and return the summary line."""
        if self._scores_file is not None:
            self._scores_file.write(*self.forecaster.score_rows())
        if self.events is not None:
            self.events.finish()
        self._write_tables()
        lines = [self.forecaster.summary_line()]
        if self.events is not None:
            kind = self.cfg.predictor.kind
            lines += self.events.summary_lines(kind if kind != "auto" else f"auto, last serving {self.forecaster.served}")
            if self._event_scores is not None:
                self.events.write_scores(self._event_scores)
        return lines

    def save_event_scores(self, path: Path) -> None:
        """Write the alert scores (event_scores.csv) at the end of the run."""
        self._event_scores = path

    def results(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        """Results for a stream of frames (a file), with decoding and detection `speed.detect_ahead` frames ahead."""
        for frame, dets in detections_stream(self.detector, frames, self.cfg.speed.detect_ahead):
            yield self.update(frame, dets)

    def process(self, frame: Frame) -> FrameResult:
        """The result of one frame, detected now: live's newest frame, which must not wait for the next one
        (`results` keeps frames in flight to overlap detection with the rest)."""
        return self.update(frame, self.detector.detect(frame.image))

    def annotate(self, r: FrameResult) -> np.ndarray:
        """The frame with zones, tracks, forecasts and events; alerts go into their objects' labels."""
        ov = None if r.events is None else r.events.overlay
        image = r.frame.image if ov is None else shade_zones(r.frame.image, ov)
        return self.annotator.draw(image, r.tracks, r.trails, r.forecasts if r.shown is None else r.shown,
                                   self._speed_notes(r), ov)
