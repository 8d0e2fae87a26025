"""run.json: what produced a run folder, so a result can be traced back to its program, settings, models and input.

Written at the end of every track / live run (and every batch video) beside the outputs. Everything in it passes
through `mask_credentials`: a stream URL's user:password never reaches the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from pipeline.core.version import __version__
from pipeline.core import resources
from pipeline.core.atomic import write_atomic
from pipeline.core.config import TrackRunConfig
from pipeline.core.redact import mask_credentials
from pipeline.io.run_dirs import RunDir

PROGRAM = "video-trajectory-prediction"
VERSION = __version__  # pipeline/core/version.py; the git commit (in a checkout) says which code ran
RUN_JSON = "run.json"


@dataclass(frozen=True)
class InputFacts:
    """The input as the run saw it (a file path or a stream URL, masked on writing)."""

    path: str
    width: int
    height: int
    fps: float
    frame_count: int  # the container header's claim (0 for a live stream)


class RunFigures(Protocol):
    """What a run's summary offers (track's RunSummary)."""

    frames: int
    seconds: float
    prediction_rows: int
    interrupted: bool
    stopped_early: str
    track_frames: dict[int, int]
    score_lines: list[str]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def weight_files(cfg: TrackRunConfig) -> list[dict[str, Any]]:
    """The model files this config loads, each with its size and sha256 (a model folder lists its files)."""
    from pipeline.forecast.predictors import resolve_checkpoint
    from pipeline.perception.detector import resolve_weights

    found: list[dict[str, Any]] = []
    paths = [("detector", Path(resolve_weights(cfg.detector.weights)))]
    if cfg.predictor.kind in ("auto", "lstm"):
        paths.append(("predictor", Path(resolve_checkpoint(cfg.predictor.weights))))
    for role, p in paths:
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p] if p.is_file() else []
        if not files:  # a name ultralytics resolved by itself: nothing local to hash
            found.append({"role": role, "path": str(p), "sha256": None, "bytes": None})
        found += [{"role": role, "path": str(f), "bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in files]
    return found


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (None for an installed copy, outside a git checkout or without git)."""
    root = root or resources.checkout_root()
    if root is None:  # installed: never the commit of a repository that happens to hold the environment
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine() -> dict[str, Any]:
    """CPU model, cores and memory of the machine that ran the video."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass  # not Linux: platform.processor() is what there is
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(), "python": platform.python_version(), "hostname": platform.node()}


def figures(s: RunFigures) -> dict[str, Any]:
    """The closing summary's numbers."""
    return {
        "frames_processed": s.frames, "seconds": round(s.seconds, 3),
        "fps": round(s.frames / s.seconds, 3) if s.seconds > 0 else 0.0,
        "tracks": len(s.track_frames), "tracks_30_frames": sum(1 for n in s.track_frames.values() if n >= 30),
        "prediction_rows": s.prediction_rows, "interrupted": s.interrupted, "stopped_early": s.stopped_early,
        "forecast_scores": list(s.score_lines),
    }


def live_figures(session: Any) -> dict[str, Any]:
    """A live session's closing numbers (LiveSession: its stats, reader and self-score lines)."""
    s, r = session.stats, session.reader
    return {
        "frames_processed": s.processed, "frames_captured": r.captured, "frames_dropped": r.dropped,
        "reconnects": r.reconnects, "latency_ms_median": round(s.latency_ms(50), 1),
        "latency_ms_p95": round(s.latency_ms(95), 1), "stopped": session.stopped_by or "stopped by the user",
        "forecast_scores": list(session.score_lines),
    }


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


def run_record(cfg: TrackRunConfig, source: InputFacts, started: float, ended: float,
               summary: Mapping[str, Any], files: list[str]) -> dict[str, Any]:
    """run.json's content (not yet masked)."""
    return {
        "program": {"name": PROGRAM, "version": VERSION, "git_commit": git_commit()},
        "input": dataclasses.asdict(source),
        "started": _iso(started), "ended": _iso(ended), "wall_seconds": round(ended - started, 3),
        "machine": machine(),
        "weights": weight_files(cfg),
        "config": dataclasses.asdict(cfg),
        "summary": dict(summary),
        "files": files,
    }


def write_run_json(run_dir: RunDir, record: dict[str, Any]) -> Path:
    """Write run.json whole (temporary name, then renamed), credentials masked."""
    return write_atomic(run_dir.file(RUN_JSON), mask_credentials(json.dumps(record, indent=1, default=str)) + "\n")


def finish_run(run_dir: RunDir, cfg: TrackRunConfig, source: InputFacts, started: float, summary: Mapping[str, Any],
               files: list[Path]) -> list[Path]:
    """End-of-run outputs (Parquet copies per output.format, then run.json); returns the run's file list.

    Held under the run folder's lock again, since the run itself has released it by now.
    """
    from pipeline.io.parquet import convert_folder  # pyarrow (the parquet extra) only when asked for

    with run_dir.relocked():
        converted = convert_folder(run_dir.path, cfg.output.format, metric=cfg.events.camera is not None)
        for c in converted:
            run_dir.file(c.parquet.name)
        gone = {c.csv for c in converted if not c.csv.exists()}
        files = [f for f in files if f not in gone] + [c.parquet for c in converted]
        names = [f.name for f in files] + [RUN_JSON]
        record = run_record(cfg, source, started, time.time(), summary, names)
        return files + [write_run_json(run_dir, record)]
