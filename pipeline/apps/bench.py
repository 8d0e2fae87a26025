"""`bench`: our pipeline against ultralytics' own loops on the same frames and weights, plus the predictor."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import psutil

from pipeline.core.config import PredictorConfig, SpeedConfig, TrackRunConfig
from pipeline.perception.detector import YoloDetector
from pipeline.core.errors import UserError
from pipeline.forecast.auto import MEMBERS
from pipeline.forecast.features import Window
from pipeline.forecast.predictors import build_predictor


@dataclass
class Row:
    name: str
    ms: float  # median over repeats of the mean ms per frame (or per call)
    peak_rss_mb: float

    @property
    def fps(self) -> float:
        return 1000.0 / self.ms if self.ms > 0 else 0.0


class RssSampler:
    """Peak resident memory of this process while a block runs (sampled every 20 ms)."""

    def __enter__(self) -> RssSampler:
        self.peak, self._stop = 0, threading.Event()
        self._proc = psutil.Process()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _timed(name: str, run_once: Callable[[], tuple[int, float]], repeats: int) -> Row:
    """run_once processes the frames and returns (frames, seconds of frame processing); first call is warm-up."""
    run_once()
    per = []
    with RssSampler() as rss:
        for _ in range(repeats):
            n, seconds = run_once()
            per.append(seconds * 1000 / max(n, 1))
    return Row(name, statistics.median(per), rss.peak / 2**20)


def _ultralytics_loop(source: Path, frames: int, cfg: TrackRunConfig, track: bool) -> Callable[[], tuple[int, float]]:
    """ultralytics' own loop on a fresh model, loaded and class-filtered exactly as our detector does."""
    det = YoloDetector(cfg.detector)
    model = det.model
    c = cfg.detector
    kw = dict(conf=c.conf, iou=c.iou, imgsz=c.imgsz, classes=det.class_ids, verbose=False)

    def run() -> tuple[int, float]:
        cap, n = cv2.VideoCapture(str(source)), 0
        first = True
        t0 = time.perf_counter()
        while n < frames:
            ok, img = cap.read()
            if not ok:
                break
            if track:
                model.track(img, persist=not first, **kw)  # a fresh tracker each repeat
            else:
                model.predict(img, **kw)
            first, n = False, n + 1
        cap.release()
        return n, time.perf_counter() - t0

    return run


def _pipeline(source: Path, frames: int, cfg: TrackRunConfig) -> Callable[[], tuple[int, float]]:
    from pipeline.apps.track_run import run_track

    def run() -> tuple[int, float]:
        """Model loading is excluded (run_track warms the detector up before its clock starts)."""
        with tempfile.TemporaryDirectory() as d:
            s = run_track(source, Path(d) / "run", cfg, quiet=True, max_frames=frames)
            return s.frames, s.seconds

    return run


def predictor_rows(cfg: TrackRunConfig, repeats: int = 50) -> list[Row]:
    """(d): one batched predictor call for 1, 10 and 100 tracks (features included), on all cores.

    ultralytics sets torch to cpu_count - 1 threads when it picks the device; the predictor alone gets
    every core here (inside the pipeline it shares the machine with the detector thread).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        return _predictor_rows(cfg, repeats)
    finally:
        torch.set_num_threads(threads)


def _predictor_rows(cfg: TrackRunConfig, repeats: int) -> list[Row]:
    kinds = MEMBERS if cfg.predictor.kind == "auto" else (cfg.predictor.kind,)  # auto runs every member
    return [row for kind in kinds for row in _one_predictor_rows(replace(cfg.predictor, kind=kind), repeats)]


def _one_predictor_rows(pcfg: PredictorConfig, repeats: int) -> list[Row]:
    p = build_predictor(pcfg)
    rows = []
    rng = np.random.default_rng(0)
    for n in (1, 10, 100):
        xy = np.cumsum(rng.normal(0, 2, (n, p.obs_len, 2)), axis=1) + 300
        wh = np.broadcast_to([30.0, 80.0], (n, p.obs_len, 2))
        win = Window(np.concatenate([xy, wh], 2), np.zeros((n, p.obs_len)), np.ones(n, bool), np.tile([640.0, 480.0], (n, 1)))
        for _ in range(5):
            p.predict(win)
        ts = []
        with RssSampler() as rss:
            for _ in range(repeats):
                t = time.perf_counter()
                p.predict(win)
                ts.append((time.perf_counter() - t) * 1000)
        rows.append(Row(f"(d) predictor {pcfg.kind}, {n} tracks", statistics.median(ts), rss.peak / 2**20))
    return rows


def run_bench(source: Path, cfg: TrackRunConfig, frames: int, repeats: int) -> tuple[list[Row], float]:
    """All rows and the speed-up of our full pipeline over the model.track loop."""
    if not source.is_file():
        raise UserError(f"video not found: {source}")
    simple = replace(cfg, speed=SpeedConfig(detect_ahead=0, threaded_io=False))
    rows = [
        _timed("(a) ultralytics predict loop", _ultralytics_loop(source, frames, cfg, track=False), repeats),
        _timed("(b) ultralytics model.track loop", _ultralytics_loop(source, frames, cfg, track=True), repeats),
        _timed("(c) our track pipeline, outputs on", _pipeline(source, frames, cfg), repeats),
        _timed("(c') same, simple path (speed off)", _pipeline(source, frames, simple), repeats),
        *predictor_rows(cfg),
    ]
    return rows, rows[1].ms / rows[2].ms


def soak(source: Path, cfg: TrackRunConfig, loops: int, frames: int) -> list[tuple[int, float]]:
    """RSS (MB) every 200 frames while the pipeline runs over the video `loops` times in a row."""
    from pipeline.io.frames import VideoFileSource
    from pipeline.apps.processing import FrameProcessor
    from pipeline.core.types import Frame

    src = VideoFileSource(source)
    proc = FrameProcessor(cfg, src.info.fps, (src.info.width, src.info.height))
    src.close()

    def looped():
        k = 0
        for _ in range(loops):
            for f, _ in zip(VideoFileSource(source), range(frames)):
                yield Frame(k, k / src.info.fps, f.image)
                k += 1

    samples = []
    me = psutil.Process()
    for r in proc.results(looped()):
        proc.annotate(r)
        if r.frame.index % 200 == 0:
            samples.append((r.frame.index, me.memory_info().rss / 2**20))
    return samples


def format_rows(rows: list[Row], speedup: float, source: Path, frames: int, repeats: int) -> str:
    lines = [f"{source.name}: {frames} frames x {repeats} repeats after warm-up; median ms/frame (per call for (d))",
             f"{'stage':<40}{'ms':>9}{'fps':>9}{'peak RSS MB':>13}"]
    lines += [f"{r.name:<40}{r.ms:>9.1f}{r.fps:>9.1f}{r.peak_rss_mb:>13.0f}" for r in rows]
    lines.append(f"speed-up of (c) over (b): {speedup:.2f}x")
    return "\n".join(lines)
