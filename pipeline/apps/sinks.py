"""RunSinks: every file one run writes, in one place for `track`, `live` and each `batch` video.

The three verbs used to wire their own CSVs, video and end-of-run files; now they differ only in what they ask
for (`SinkOptions`) and in how their video is paced (`AnnotatedVideo`: a file gets one video frame per processed
frame, live a video paced by the capture clock that `r` starts and stops). So the same frames give the same
bytes whichever verb ran them (tests/apps/test_same_outputs.py).

A run's files, in the order they are made:
- `start()`, once inputs and models are known good: the run folder is opened and the processor told where to
  keep its tables current (forecast_scores, track_summary; with events also counts, conflicts, event_scores);
- `with sinks:` opens tracks.csv, predictions.csv, events.csv, tracks.txt and the video; `write()` puts one
  frame into all of them whole (a full disk cuts every CSV back to the frame before, so they end where the
  video does); leaving closes them;
- after that, `write_report()` (pictures and report.html: it inlines the finished video and tables) and
  `write_meta()` (the Parquet copies, then run.json).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.apps.processing import FrameProcessor, FrameResult
from pipeline.apps.run_report import RunReport
from pipeline.core.config import OutputConfig
from pipeline.events.types import EVENT_COLUMNS
from pipeline.io.run_dirs import RunDir
from pipeline.io.run_meta import InputFacts, finish_run
from pipeline.io.writers import EventsCsv, MotTxt, PredictionsCsv, TracksCsv, VideoSink, whole_frame

Draw = Callable[[FrameResult], np.ndarray]  # a frame's annotated picture


@dataclass(frozen=True)
class SinkOptions:
    """What a run writes besides run.json (and the Parquet copies of what it wrote)."""

    tables: bool = True  # tracks/predictions/events CSVs and the tables kept current (live: only with --save)
    video: bool = True  # record the annotated video from the first frame (live can still start one with r)
    mot: bool = False  # tracks.txt (--save-txt)
    report: bool = False  # trajectories.png, heatmap.png and report.html at the end


class AnnotatedVideo:
    """The annotated video: annotated.mp4, then annotated_2.mp4, ... for each further start (live's r key).

    `paced`: live's frames come when the camera and the processing allow, so the video is paced by the capture
    clock (the newest frame repeated over dropped ones) and plays at real speed; a file's are written one each.
    """

    def __init__(self, run_dir: RunDir, fps: float, size: tuple[int, int], output: OutputConfig, paced: bool) -> None:
        self.run_dir, self.fps, self.size, self.output, self.paced = run_dir, fps, size, output, paced
        self.files: list[Path] = []
        self._sink: VideoSink | None = None
        self._t0 = 0.0

    @property
    def active(self) -> bool:
        return self._sink is not None

    def start(self, t: float) -> None:
        """Open the next video file; `t` is the time its first frame stands for (pacing counts from it)."""
        name = "annotated.mp4" if not self.files else f"annotated_{len(self.files) + 1}.mp4"
        o = self.output
        self._sink = VideoSink(self.run_dir.file(name), self.fps, self.size, o.codec, o.crf, o.preset).__enter__()
        self.files.append(self.run_dir.path / name)
        self._t0 = t

    def write(self, image: np.ndarray, t: float) -> None:
        if self._sink is None:
            return
        if not self.paced:
            self._sink.write(image)
            return
        due = int((t - self._t0) * self.fps) + 1  # frames the video should hold by now
        while self._sink.frames_written < due:  # repeat the newest frame over dropped ones
            self._sink.write(image)

    def stop(self) -> None:
        """Finalise the open video file (an mp4 plays only once its index is written)."""
        if self._sink is not None:
            self._sink.__exit__(None, None, None)
            self._sink = None


class RunSinks:
    """Every file of one run (see the module's docstring); a context manager for the per-frame files."""

    def __init__(self, run_dir: RunDir, proc: FrameProcessor, opts: SinkOptions, video: AnnotatedVideo | None) -> None:
        self.run_dir, self.proc, self.opts, self.video = run_dir, proc, opts, video
        self.report = RunReport(proc.frame_size) if opts.report else None
        self._stack = ExitStack()
        self._tracks: TracksCsv | None = None
        self._predictions: PredictionsCsv | None = None
        self._events: EventsCsv | None = None
        self._mot: MotTxt | None = None

    def start(self) -> None:
        """Open the run folder (locked from now on) and have the processor keep its tables current in it."""
        self.run_dir.open()
        if not self.opts.tables:
            return
        proc, file = self.proc, self.run_dir.file
        proc.save_scores(file("forecast_scores.csv"))
        proc.save_track_summary(file("track_summary.csv"))
        if proc.events is not None:
            proc.save_event_scores(file("event_scores.csv"))
            proc.save_counts(file("counts.csv"))

    def __enter__(self) -> RunSinks:
        with ExitStack() as stack:  # a file that cannot be opened closes the ones opened before it
            self._open(stack)
            self._stack = stack.pop_all()
        return self

    def _open(self, stack: ExitStack) -> None:
        proc, file = self.proc, self.run_dir.file
        if self.opts.tables:
            ground = proc.events is not None and proc.events.camera is not None
            names = proc.detector.names
            self._tracks = stack.enter_context(TracksCsv(file("tracks.csv"), names, ground))
            self._predictions = stack.enter_context(PredictionsCsv(file("predictions.csv"), ground, names))
            if proc.events is not None:
                self._events = stack.enter_context(EventsCsv(file("events.csv"), EVENT_COLUMNS))
        if self.video is not None:
            stack.callback(self.video.stop)
            if self.opts.video:
                self.video.start(0.0)
        if self.opts.mot:
            self._mot = stack.enter_context(MotTxt(file("tracks.txt")))

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def write(self, r: FrameResult, draw: Draw | None = None) -> np.ndarray | None:
        """One frame into every file; returns its picture (`draw(r)`, recorded when a video is open), or None.

        A failed write (a full disk) cuts every CSV back to the previous frame, so they end where the video does.
        """
        if self.report is not None:
            self.report.add(r)
        with whole_frame(self._tracks, self._predictions, self._events, self._mot):
            ev, f = r.events, r.frame
            if self._tracks is not None:
                self._tracks.write(f.index, f.time_s, r.tracks, ev.ground if ev else None)
            if self._mot is not None:
                self._mot.write(f.index, r.tracks)
            if self._predictions is not None:
                self._predictions.write(f.index, f.time_s, r.forecasts, ev.pred_ground if ev else None, r.tracks)
            if self._events is not None and ev is not None:
                self._events.write([e.row() for e in ev.events])
            image = draw(r) if draw is not None else None
            if image is not None and self.video is not None:
                self.video.write(image, f.time_s)
        return image

    def table_files(self) -> list[Path]:
        """The per-run tables this run writes, in the order the summary names them (none without tables)."""
        if not self.opts.tables:
            return []
        out = self.run_dir.path
        files = [out / "tracks.csv", out / "predictions.csv", out / "forecast_scores.csv", out / "track_summary.csv"]
        files += [out / "tracks.txt"] * self.opts.mot
        events = self.proc.events
        if events is not None:
            files += [out / "events.csv", out / "event_scores.csv"]
            files += [out / "counts.csv"] * events.traffic.has_geometry + [out / "conflicts.csv"]
        return files

    def write_report(self, source: str, summary_lines: list[str]) -> list[Path]:
        """The pictures and report.html (with --report: output.report), once every other file is closed."""
        if self.report is None:
            return []
        video = next((f for f in self.video.files if f.exists()), None) if self.video is not None else None
        return self.report.write(self.run_dir, self.proc, source, summary_lines, video)

    def write_meta(self, facts: InputFacts, started: float, figures: Mapping[str, Any], files: list[Path]) -> list[Path]:
        """The Parquet copies (output.format) and run.json, last; returns `files` less the CSVs Parquet
        replaced, plus the Parquet files and run.json."""
        return finish_run(self.run_dir, self.proc.cfg, facts, started, figures, files)
