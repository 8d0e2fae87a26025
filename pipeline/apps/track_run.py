"""`track` on a video file: frames -> detector -> tracker -> history/features -> predictor -> outputs."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.core.config import TrackRunConfig
from pipeline.core.errors import PartialInputError, UserError
from pipeline.events.types import EVENT_COLUMNS
from pipeline.io.frames import VideoFileSource
from pipeline.core.threads import BackgroundWorker
from pipeline.io.run_dirs import RunDir
from pipeline.io.run_meta import InputFacts, figures, finish_run
from pipeline.apps.processing import FrameProcessor, FrameResult, StopFlag, check_display
from pipeline.apps.run_report import RunReport
from pipeline.perception.detector import Detector
from pipeline.core.types import Tracks
from pipeline.io.writers import EventsCsv, MotTxt, PredictionsCsv, TracksCsv, VideoSink, whole_frame


@dataclass
class RunSummary:
    """What a run did, for the closing printout and for tests."""

    frames: int = 0
    header_frames: int = 0
    track_frames: dict[int, int] = field(default_factory=dict)
    prediction_rows: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    ended_early: bool = False
    stopped_early: str = ""  # why the run ended before the video did (said in the summary, never silent)
    files: list[Path] = field(default_factory=list)
    score_lines: list[str] = field(default_factory=list)  # forecast self-scores (forecast_scores.csv)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        long = sum(1 for n in self.track_frames.values() if n >= 30)
        head = "interrupted after" if self.interrupted else "processed"
        return [
            f"{head} {self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} fps)",
            *([f"stopped early: {self.stopped_early}"] if self.stopped_early else []),
            f"tracks: {len(self.track_frames)} ({long} lasting 30+ frames), prediction rows: {self.prediction_rows}",
            *self.score_lines,
            *(f"wrote {p}" for p in self.files),
        ]


def _count(summary: RunSummary, tracks: Tracks) -> None:
    for tid in tracks.track_id.tolist():
        summary.track_frames[tid] = summary.track_frames.get(tid, 0) + 1


class _Outputs:
    """Draws and writes one FrameResult to every sink (runs in the writer thread when threaded_io is on)."""

    def __init__(self, proc: FrameProcessor, tracks_csv: TracksCsv, preds_csv: PredictionsCsv,
                 video: VideoSink | None, events_csv: EventsCsv | None = None, mot: MotTxt | None = None) -> None:
        self.proc, self.tracks_csv, self.preds_csv, self.video = proc, tracks_csv, preds_csv, video
        self.events_csv, self.mot = events_csv, mot

    def __call__(self, r: FrameResult) -> np.ndarray | None:
        """Returns the drawn frame when a video is written, so --show can reuse it.

        A failed write (a full disk) cuts both CSVs back to the previous frame, so they end where the video does.
        """
        with whole_frame(self.tracks_csv, self.preds_csv, self.events_csv, self.mot):
            ev = r.events
            self.tracks_csv.write(r.frame.index, r.frame.time_s, r.tracks, ev.ground if ev else None)
            if self.mot is not None:
                self.mot.write(r.frame.index, r.tracks)
            self.preds_csv.write(r.frame.index, r.frame.time_s, r.forecasts, ev.pred_ground if ev else None, r.tracks)
            if self.events_csv is not None and ev is not None:
                self.events_csv.write([e.row() for e in ev.events])
            if self.video is None:
                return None
            image = self.proc.annotate(r)
            self.video.write(image)
        return image


def run_track(
    source: str | Path, out: Path | RunDir, cfg: TrackRunConfig, show: bool = False, quiet: bool = False,
    max_frames: int | None = None, on_frame: Callable[[int], None] | None = None, detector: Detector | None = None,
) -> RunSummary:
    """Process a video file into a run folder (created and locked once inputs and models are known good).

    Files are complete up to the last processed frame on any stop (end, Ctrl-C, SIGTERM, q); a full disk
    raises DiskFullError once they are finalised, whole up to the last frame written. `on_frame(frames done)`
    follows progress from outside (batch's bar over all videos); `detector` is one already loaded (batch's workers).
    """
    started = time.time()  # run.json's start time (wall clock)
    run_dir = out if isinstance(out, RunDir) else RunDir(Path(out), inputs=[Path(source)])
    out_dir = run_dir.path
    check_display(show, "run without --show")
    src = VideoFileSource(source, cfg.input.vid_stride)
    frames = iter(src)
    first = next(frames, None)
    if first is None:
        raise UserError(f"no frame of {source} could be decoded: the file is empty or corrupt")
    info = src.info
    proc = FrameProcessor(cfg, info.fps, (info.width, info.height), detector)
    proc.warmup(first.image)  # model compilation is start-up, not per-frame time
    run_dir.open()
    proc.save_scores(run_dir.file("forecast_scores.csv"))
    proc.save_track_summary(run_dir.file("track_summary.csv"))
    if proc.events is not None:
        proc.save_event_scores(run_dir.file("event_scores.csv"))
        proc.save_counts(run_dir.file("counts.csv"))
    summary = RunSummary(header_frames=info.frame_count)
    report = RunReport((info.width, info.height)) if cfg.output.report else None
    total = min(info.frame_count or 0, max_frames or 10**12) or None
    threaded = cfg.speed.threaded_io and not show
    t0 = time.perf_counter()
    with ExitStack() as stack:
        stack.callback(run_dir.close)  # the folder's lock, released after every file is closed
        # Signals are caught before any file exists and until every file is closed: a second Ctrl-C while the
        # files are finalised must not abort half-way (an mp4 without its index never plays).
        stop = stack.enter_context(StopFlag().installed())
        ground = proc.events is not None and proc.events.camera is not None
        tracks_csv = stack.enter_context(TracksCsv(run_dir.file("tracks.csv"), proc.detector.names, ground))
        preds_csv = stack.enter_context(PredictionsCsv(run_dir.file("predictions.csv"), ground, proc.detector.names))
        events_csv = None
        if proc.events is not None:
            events_csv = stack.enter_context(EventsCsv(run_dir.file("events.csv"), EVENT_COLUMNS))
        video = None
        if cfg.output.video:
            size = (info.width, info.height)
            o = cfg.output
            video = stack.enter_context(VideoSink(run_dir.file("annotated.mp4"), info.fps, size, o.codec, o.crf, o.preset))
        mot = stack.enter_context(MotTxt(run_dir.file("tracks.txt"))) if cfg.output.save_txt else None
        write: Callable[[FrameResult], np.ndarray | None] = _Outputs(proc, tracks_csv, preds_csv, video, events_csv, mot)
        if threaded:
            write = stack.enter_context(BackgroundWorker(write, cfg.speed.queue_frames)).submit
        bar = stack.enter_context(tqdm(total=total, unit="frame", disable=quiet, dynamic_ncols=True))
        if show:
            stack.callback(cv2.destroyAllWindows)
        for r in proc.results(itertools.chain([first], frames)):
            drawn = write(r)  # None when threaded (--show turns threading off) or without video
            summary.frames += 1
            summary.prediction_rows += len(r.forecasts) * len(r.forecasts.t_future_s)
            _count(summary, r.tracks)
            if report is not None:
                report.add(r)
            bar.update(1)
            if on_frame is not None:
                on_frame(summary.frames)
            if show and _show(drawn if drawn is not None else proc.annotate(r)):
                stop.stop = True
            if stop.stop or (max_frames and summary.frames >= max_frames):
                summary.interrupted = stop.stop
                break
        summary.score_lines = proc.finish_scores()  # still under StopFlag: forecast_scores.csv is written whole
    summary.seconds = time.perf_counter() - t0
    summary.files = [out_dir / "annotated.mp4"] * bool(cfg.output.video) + [out_dir / "tracks.csv", out_dir / "predictions.csv"]
    summary.files += [out_dir / "forecast_scores.csv", out_dir / "track_summary.csv"]
    summary.files += [out_dir / "tracks.txt"] * cfg.output.save_txt
    if proc.events is not None:
        summary.files += [out_dir / "events.csv", out_dir / "event_scores.csv"]
        summary.files += [out_dir / "counts.csv"] * proc.events.traffic.has_geometry + [out_dir / "conflicts.csv"]
    summary.ended_early = not summary.interrupted and not max_frames and summary.frames < 0.9 * info.frame_count
    summary.stopped_early = _stop_reason(summary, max_frames)
    if report is not None:  # after the video is finalised: the report inlines it
        video_path = out_dir / "annotated.mp4" if cfg.output.video else None
        summary.files += report.write(run_dir, proc, source, summary.lines(), video_path)
    facts = InputFacts(str(source), info.width, info.height, info.fps, info.frame_count)
    summary.files = finish_run(run_dir, cfg, facts, started, figures(summary), summary.files)  # Parquet, run.json
    return summary


def _stop_reason(s: RunSummary, max_frames: int | None) -> str:
    """Why fewer frames than the video holds were processed ('' when the whole video was)."""
    of = f"{s.frames} of the {s.header_frames} frames" if s.header_frames else f"{s.frames} frames"
    if s.interrupted:
        return f"interrupted (Ctrl-C, SIGTERM or q) after {of}"
    if max_frames and s.frames >= max_frames and s.frames < s.header_frames:
        return f"--max-frames {max_frames} reached after {of}"
    if s.ended_early:
        return f"the video stopped decoding after {of} its header announces (truncated or corrupt)"
    return ""


def _show(image: np.ndarray) -> bool:
    """Show a frame; True when the user asked to quit (q or Esc)."""
    cv2.imshow("trajectory forecast", image)
    return cv2.waitKey(1) & 0xFF in (ord("q"), 27)


def partial_input_error(source: str | Path, summary: RunSummary, out_dir: Path) -> PartialInputError:
    """The error for a video that stopped decoding well before its header's frame count."""
    return PartialInputError(
        f"{source} ended after {summary.frames} of the {summary.header_frames} frames its header announces "
        f"(truncated or corrupt); outputs in {out_dir} cover the frames read"
    )
