"""`track` on a video file: frames -> detector -> tracker -> history/features -> predictor -> outputs."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.core.config import TrackRunConfig
from pipeline.core.errors import PartialInputError, UserError
from pipeline.io.frames import VideoFileSource
from pipeline.core.threads import BackgroundWorker
from pipeline.io.run_dirs import RunDir
from pipeline.io.run_meta import InputFacts, figures
from pipeline.apps.processing import FrameProcessor, FrameResult, StopFlag, check_display
from pipeline.apps.sinks import AnnotatedVideo, RunSinks, SinkOptions
from pipeline.perception.detector import Detector
from pipeline.core.types import Frame, Tracks


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
    check_display(show, "run without --show")
    src = VideoFileSource(source, cfg.input.vid_stride)
    frames = iter(src)
    first = next(frames, None)
    if first is None:
        raise UserError(f"no frame of {source} could be decoded: the file is empty or corrupt")
    info = src.info
    proc = FrameProcessor(cfg, info.fps, (info.width, info.height), detector)
    proc.warmup(first.image)  # model compilation is start-up, not per-frame time
    o = cfg.output
    video = AnnotatedVideo(run_dir, info.fps, (info.width, info.height), o, paced=False) if o.video else None
    sinks = RunSinks(run_dir, proc, SinkOptions(video=o.video, mot=o.save_txt, report=o.report), video)
    sinks.start()
    summary = RunSummary(header_frames=info.frame_count)
    loop = _Loop(proc, show, max_frames, summary)
    t0 = time.perf_counter()
    with ExitStack() as stack:
        stack.callback(run_dir.close)  # the folder's lock, released after every file is closed
        # Signals are caught before any file exists and until every file is closed: a second Ctrl-C while the
        # files are finalised must not abort half-way (an mp4 without its index never plays).
        stop = stack.enter_context(StopFlag().installed())
        stack.enter_context(sinks)
        write: Callable[[FrameResult], np.ndarray | None] = partial(sinks.write, draw=proc.annotate if video else None)
        if cfg.speed.threaded_io and not show:
            write = stack.enter_context(BackgroundWorker(write, cfg.speed.queue_frames)).submit
        total = min(info.frame_count or 0, max_frames or 10**12) or None
        bar = stack.enter_context(tqdm(total=total, unit="frame", disable=quiet, dynamic_ncols=True))
        if show:
            stack.callback(cv2.destroyAllWindows)

        def progress(done: int) -> None:
            bar.update(1)
            if on_frame is not None:
                on_frame(done)

        loop.run(itertools.chain([first], frames), write, stop, progress)
        summary.score_lines = proc.finish_scores()  # still under StopFlag: forecast_scores.csv is written whole
    summary.seconds = time.perf_counter() - t0
    summary.files = (video.files if video is not None else []) + sinks.table_files()
    summary.ended_early = not summary.interrupted and not max_frames and summary.frames < 0.9 * info.frame_count
    summary.stopped_early = _stop_reason(summary, max_frames)
    summary.files += sinks.write_report(str(source), summary.lines())  # after the video is finalised: it is inlined
    facts = InputFacts(str(source), info.width, info.height, info.fps, info.frame_count)
    summary.files = sinks.write_meta(facts, started, figures(summary), summary.files)  # Parquet, run.json
    return summary


@dataclass
class _Loop:
    """The frame loop of a file run: results in order, written, counted, shown; stops on q, a signal or --max-frames."""

    proc: FrameProcessor
    show: bool
    max_frames: int | None
    summary: RunSummary

    def run(self, frames: Iterable[Frame], write: Callable[[FrameResult], np.ndarray | None], stop: StopFlag,
            progress: Callable[[int], None]) -> None:
        s = self.summary
        for r in self.proc.results(frames):
            drawn = write(r)  # None when threaded (--show turns threading off) or without video
            s.frames += 1
            s.prediction_rows += len(r.forecasts) * len(r.forecasts.t_future_s)
            _count(s, r.tracks)
            progress(s.frames)
            if self.show and _show(drawn if drawn is not None else self.proc.annotate(r)):
                stop.stop = True
            if stop.stop or (self.max_frames and s.frames >= self.max_frames):
                s.interrupted = stop.stop
                break


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
