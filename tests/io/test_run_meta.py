"""run.json: every field present, the model files' sha256 right, a stream URL's credentials masked."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

from pipeline.core.config import DetectorConfig, OutputConfig, TrackRunConfig
from pipeline.io.run_dirs import RunDir, read_manifest
from pipeline.io.run_meta import InputFacts, figures, finish_run, live_figures
from tests.conftest import DETECTOR, LSTM_CKPT, ROOT

URL = "rtsp://admin:hunter2@10.0.0.5:554/stream1?token=s3cret&channel=1"


def _summary() -> SimpleNamespace:
    return SimpleNamespace(frames=30, seconds=2.5, prediction_rows=175, interrupted=False, stopped_early="",
                           track_frames={1: 30, 2: 12}, score_lines=["forecast self-score @2 s: ..."])


def _run(tmp_path: Path, url: str = URL, fmt: str = "csv") -> tuple[dict, str, list[Path]]:
    cfg = TrackRunConfig(detector=DetectorConfig(weights=str(DETECTOR)), output=OutputConfig(format=fmt))
    run_dir = RunDir(tmp_path / "run").open()
    (tmp_path / "run" / "tracks.csv").write_text("frame,time_s,track_id\n0,0.0000,1\n1,0.1000,1\n")
    run_dir.file("tracks.csv")
    run_dir.close()
    files = finish_run(run_dir, cfg, InputFacts(url, 640, 360, 25.0, 250), 1_700_000_000.0, figures(_summary()),
                       [tmp_path / "run" / "tracks.csv"])
    text = (tmp_path / "run" / "run.json").read_text()
    return json.loads(text), text, files


def test_fields_present(tmp_path: Path) -> None:
    meta, _, files = _run(tmp_path)
    assert files[-1] == tmp_path / "run" / "run.json" and "run.json" in read_manifest(tmp_path / "run")
    assert set(meta) >= {"program", "input", "started", "ended", "wall_seconds", "machine", "weights", "config",
                         "summary", "files"}
    assert meta["program"]["version"]
    if (ROOT / ".git").exists():  # a checkout (CI clones); an exported tree has no commit to name
        assert re.fullmatch(r"[0-9a-f]{40}", meta["program"]["git_commit"])
    assert meta["input"] | {"path": ""} == {"path": "", "width": 640, "height": 360, "fps": 25.0, "frame_count": 250}
    assert meta["started"] == "2023-11-14T22:13:20+00:00" and meta["ended"] > meta["started"]
    assert meta["machine"]["cores"] == os.cpu_count() and meta["machine"]["cpu"]
    assert meta["config"] == json.loads(json.dumps(dataclasses.asdict(
        TrackRunConfig(detector=DetectorConfig(weights=str(DETECTOR))))))  # the full resolved config
    s = meta["summary"]
    assert (s["frames_processed"], s["tracks"], s["tracks_30_frames"], s["fps"]) == (30, 2, 1, 12.0)
    assert meta["files"] == ["tracks.csv", "run.json"]


def test_weight_files_sha256(tmp_path: Path) -> None:
    meta, _, _ = _run(tmp_path)
    by_path = {w["path"]: w for w in meta["weights"]}
    detector_files = sorted(p for p in DETECTOR.rglob("*") if p.is_file())
    assert detector_files and all(str(p) in by_path for p in detector_files)
    for p in [*detector_files, LSTM_CKPT]:
        w = by_path[str(p)] if str(p) in by_path else next(w for w in meta["weights"] if Path(w["path"]).resolve() == p)
        assert w["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest() and w["bytes"] == p.stat().st_size
    assert {w["role"] for w in meta["weights"]} == {"detector", "predictor"}


def test_stream_credentials_masked(tmp_path: Path) -> None:
    meta, text, _ = _run(tmp_path)
    assert "hunter2" not in text and "admin" not in text and "s3cret" not in text
    assert meta["input"]["path"] == "rtsp://***@10.0.0.5:554/stream1?token=***&channel=1"


def test_parquet_format_is_listed_instead_of_the_csv(tmp_path: Path) -> None:
    meta, _, files = _run(tmp_path, "street.mp4", fmt="parquet")
    assert [f.name for f in files] == ["tracks.parquet", "run.json"]
    assert not (tmp_path / "run" / "tracks.csv").exists() and meta["files"] == ["tracks.parquet", "run.json"]


def test_live_figures() -> None:
    stats = SimpleNamespace(processed=90, latency_ms=lambda q: 40.0 if q == 50 else 80.0)
    reader = SimpleNamespace(captured=100, dropped=10, reconnects=1)
    f = live_figures(SimpleNamespace(stats=stats, reader=reader, stopped_by="", score_lines=["x"]))
    assert f == {"frames_processed": 90, "frames_captured": 100, "frames_dropped": 10, "reconnects": 1,
                 "latency_ms_median": 40.0, "latency_ms_p95": 80.0, "stopped": "stopped by the user",
                 "forecast_scores": ["x"]}
