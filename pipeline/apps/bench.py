"""`bench`: our pipeline against ultralytics' own loops on the same frames and weights, plus the predictor."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from pathlib import Path

import cv2
import numpy as np
import psutil

from pipeline.core import resources
from pipeline.core.atomic import write_atomic
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
    kw: dict[str, Any] = dict(conf=c.conf, iou=c.iou, imgsz=c.imgsz, classes=det.class_ids, device=det.device, half=det.half,
              verbose=False)

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


def _decode_loop(source: Path, frames: int) -> Callable[[], tuple[int, float]]:
    """Decoding alone (OpenCV), the floor under every loop."""

    def run() -> tuple[int, float]:
        cap, n = cv2.VideoCapture(str(source)), 0
        t0 = time.perf_counter()
        while n < frames and cap.read()[0]:
            n += 1
        cap.release()
        return n, time.perf_counter() - t0

    return run


def _bare_inference(source: Path, frames: int, cfg: TrackRunConfig) -> Callable[[], tuple[int, float]] | None:
    """The network alone on the input our pipeline feeds it (OpenVINO exports: letterboxed frames prepared first)."""
    from pipeline.perception.detector import OpenVinoYolo, build_detector

    det = build_detector(cfg.detector)
    if not isinstance(det, OpenVinoYolo):
        return None
    cap = cv2.VideoCapture(str(source))
    inputs: list[np.ndarray] = []
    while len(inputs) < min(frames, 30):
        ok, img = cap.read()
        if not ok:
            break
        inputs.append(det.network_input(img))
    cap.release()
    if not inputs:
        raise UserError(f"no frame of {source} could be decoded")

    def run() -> tuple[int, float]:
        t0 = time.perf_counter()
        for k in range(frames):
            det.infer_raw(inputs[k % len(inputs)])
        return frames, time.perf_counter() - t0

    return run


def _pipeline(source: Path, frames: int, cfg: TrackRunConfig) -> Callable[[], tuple[int, float]]:
    from pipeline.apps.track_run import run_track

    cfg = replace(cfg, output=replace(cfg.output, report=False))  # an end-of-run cost, outside the per-frame clock

    def run() -> tuple[int, float]:
        """Model loading is excluded (run_track warms the detector up before its clock starts)."""
        with tempfile.TemporaryDirectory() as d:
            s = run_track(source, Path(d) / "run", cfg, quiet=True, max_frames=frames)
            return s.frames, s.seconds

    return run


def predictor_rows(cfg: TrackRunConfig, repeats: int = 50) -> list[Row]:
    """(d): one batched predictor call for 1, 10 and 100 tracks (features included), on one torch thread.

    One thread, as inside the pipeline on the OpenVINO path (FrameProcessor): the LSTM's small batches every
    0.4 s gain little from more threads, which would spin against the detector's inference threads.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
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


@dataclass
class BenchResult:
    """One bench run: rows measured in the same process, their ratios, the machine and start-up time."""

    source: Path
    frames: int
    repeats: int
    rows: list[Row]
    machine: dict[str, Any]
    startup_s: float | None = None

    def ms(self, prefix: str) -> float | None:
        return next((r.ms for r in self.rows if r.name.startswith(prefix)), None)

    @property
    def ratios(self) -> dict[str, float]:
        """(b)/(c): speed-up over ultralytics' model.track loop; (c)/(n): our frame over bare inference."""
        out = {}
        b, c, n = self.ms("(b)"), self.ms("(c)"), self.ms("(n)")
        if b and c:
            out["speedup_over_model_track"] = b / c
        if c and n:
            out["per_frame_over_bare_inference"] = c / n
        return out

    def to_json(self) -> dict[str, object]:
        return {"source": str(self.source), "frames": self.frames, "repeats": self.repeats, "machine": self.machine,
                "startup_s": self.startup_s, "ratios": self.ratios,
                "rows": [{"name": r.name, "ms": r.ms, "fps": r.fps, "peak_rss_mb": r.peak_rss_mb} for r in self.rows]}


def machine_info() -> dict[str, object]:
    """CPU model, cores, the instruction sets that matter for INT8 inference, and the load when measured."""
    model, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.is_file() else []:  # Linux; elsewhere no flags
        key, _, val = line.partition(":")
        if key.strip() == "model name":
            model = val.strip()
        elif key.strip() == "flags":
            flags = set(val.split())
            break
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8") if f in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"cpu": model, "cores": os.cpu_count(), "isa": isa, "load_1min": round(load, 2),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}


def startup_seconds(source: Path, cfg_args: list[str]) -> float:
    """Whole-process start-up: from starting a process to its first frame tracked, forecast and drawn.

    A fresh interpreter, so imports and model compilation (or the compiled-model cache) count as a user sees them.
    """
    code = (
        "import time, sys\n"
        "from pathlib import Path\n"
        "from pipeline.core.config import TrackRunConfig, from_dict, load_yaml, merge\n"
        "from pipeline.io.frames import VideoFileSource\n"
        "from pipeline.apps.processing import FrameProcessor\n"
        "cfg = from_dict(TrackRunConfig, merge(load_yaml(sys.argv[2]), {'detector': {'weights': sys.argv[3]}}))\n"
        "src = VideoFileSource(Path(sys.argv[1]))\n"
        "proc = FrameProcessor(cfg, src.info.fps, (src.info.width, src.info.height))\n"
        "r = next(iter(proc.results(iter(src))))\n"
        "proc.annotate(r)\n"
        "print(time.time())\n"
    )
    root = resources.source_root()  # the folder holding the pipeline package (the checkout, or site-packages)
    env = {**os.environ, "PYTHONPATH": str(root), "YOLO_OFFLINE": "1"}
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code, str(source), *cfg_args], capture_output=True, text=True,
                         env=env, cwd=root, timeout=300)
    if out.returncode != 0:
        raise UserError(f"start-up measurement failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return float(out.stdout.strip().splitlines()[-1]) - t0


def run_bench(source: Path, cfg: TrackRunConfig, frames: int, repeats: int,
              startup_args: list[str] | None = None) -> BenchResult:
    """All rows on the same video and weights, in one process, so their ratios share the machine's state."""
    if not source.is_file():
        raise UserError(f"video not found: {source}")
    simple = replace(cfg, speed=SpeedConfig(detect_ahead=0, threaded_io=False),
                     detector=replace(cfg.detector, infer_requests=1))
    csv_only = replace(cfg, output=replace(cfg.output, video=False))  # what drawing + encoding cost, by difference
    rows = [_timed("(i) decode only", _decode_loop(source, frames), repeats)]
    bare = _bare_inference(source, frames, cfg)
    if bare is not None:
        rows.append(_timed("(n) bare network inference", bare, repeats))
    rows += [
        _timed("(a) ultralytics predict loop", _ultralytics_loop(source, frames, cfg, track=False), repeats),
        _timed("(b) ultralytics model.track loop", _ultralytics_loop(source, frames, cfg, track=True), repeats),
        _timed("(c) our track pipeline, outputs on", _pipeline(source, frames, cfg), repeats),
        _timed("(c') same, simple path (speed off)", _pipeline(source, frames, simple), repeats),
        _timed("(e) our pipeline, CSVs only (no video)", _pipeline(source, frames, csv_only), repeats),
        *predictor_rows(cfg),
    ]
    startup = startup_seconds(source, startup_args) if startup_args else None
    return BenchResult(source, frames, repeats, rows, machine_info(), startup)


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


def format_result(res: BenchResult) -> str:
    """The table, the machine and the ratios, as printed by `run.py bench`."""
    m = res.machine
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GiB; ISA: {' '.join(m['isa']) or '-'}; "
             f"load average {m['load_1min']} (other processes share the cores: compare ratios, not ms)",
             f"{res.source.name}: {res.frames} frames x {res.repeats} repeats after warm-up; "
             "median ms/frame (per call for (d))",
             f"{'stage':<40}{'ms':>9}{'fps':>9}{'peak RSS MB':>13}"]
    lines += [f"{r.name:<40}{r.ms:>9.1f}{r.fps:>9.1f}{r.peak_rss_mb:>13.0f}" for r in res.rows]
    ratios = res.ratios
    if "speedup_over_model_track" in ratios:
        lines.append(f"speed-up of (c) over (b): {ratios['speedup_over_model_track']:.2f}x")
    if "per_frame_over_bare_inference" in ratios:
        lines.append(f"(c) per frame over bare inference (n): {ratios['per_frame_over_bare_inference']:.2f}x")
    if res.startup_s is not None:
        lines.append(f"start-up, process start to first frame drawn: {res.startup_s:.2f} s")
    return "\n".join(lines)


def write_json(res: BenchResult, path: Path) -> None:
    """The same numbers as the table, for scripts (written whole: a temporary file renamed)."""
    try:
        write_atomic(path, json.dumps(res.to_json(), indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
