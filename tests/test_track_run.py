"""The real pipeline on real video, through the CLI as a user runs it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import pytest

from pipeline.writers import PREDICTION_COLUMNS, TRACK_COLUMNS
from tests.conftest import DETECTOR, LSTM_CKPT, ROOT, VTEST, run_cli


def _rows(path: Path, header: list[str]) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == header
        rows = list(reader)
    assert all(len(r) == len(header) for r in rows), "a CSV row is incomplete"
    return [dict(zip(header, r)) for r in rows]


def _decoded_frames(path: Path) -> tuple[int, float, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    info = (n, cap.get(cv2.CAP_PROP_FPS), (int(cap.get(3)), int(cap.get(4))))
    cap.release()
    return info


@pytest.fixture(scope="module")
def vtest_run(tmp_path_factory):
    """The default pipeline (LSTM predictor) on the whole PETS 2009 video."""
    out = tmp_path_factory.mktemp("vtest") / "run"
    proc = run_cli("track", "--source", str(VTEST), "--weights", str(DETECTOR), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.mark.skipif(not LSTM_CKPT.exists(), reason="shipped pixel checkpoint missing")
def test_vtest_yields_long_tracks_and_a_playable_video(vtest_run):
    out, proc = vtest_run
    assert "processed 795 frames" in proc.stdout
    tracks = _rows(out / "tracks.csv", TRACK_COLUMNS)
    frames_per_track = defaultdict(int)
    for r in tracks:
        frames_per_track[r["track_id"]] += 1
        assert float(r["x1"]) < float(r["cx"]) < float(r["x2"])
        assert r["class_name"] in {"person", "bicycle", "car", "motorcycle", "bus", "truck"}
    assert sum(n >= 30 for n in frames_per_track.values()) >= 5
    n, fps, size = _decoded_frames(out / "annotated.mp4")
    n_in, fps_in, size_in = _decoded_frames(VTEST)
    assert (n, size) == (n_in, size_in) and fps == pytest.approx(fps_in)


@pytest.mark.skipif(not LSTM_CKPT.exists(), reason="shipped pixel checkpoint missing")
def test_every_track_with_enough_history_is_forecast(vtest_run):
    """A (frame, track) has enough history once the track has been followed for obs_len-1 model steps."""
    from pipeline.forecast.predictors import LSTMPredictor

    out, _ = vtest_run
    lstm = LSTMPredictor(str(LSTM_CKPT), horizon_s=2.0)
    need_s = (lstm.obs_len - 1) * lstm.step_s
    tracks = _rows(out / "tracks.csv", TRACK_COLUMNS)
    fps = 10.0  # vtest; times are frame / fps, exactly as the pipeline computes them
    start, last, expected = {}, {}, set()
    for r in tracks:  # rows are in time order
        tid, k = r["track_id"], int(r["frame"])
        # history.max_lost_s = 2: forgotten if, on a frame it was absent, it had been unseen for > 2 s
        if tid not in start or (k - 1) / fps - last[tid] / fps > 2.0:
            start[tid] = k
        last[tid] = k
        if k / fps - start[tid] / fps >= need_s - 1e-6:
            expected.add((r["frame"], tid))
    preds = _rows(out / "predictions.csv", PREDICTION_COLUMNS)
    steps = defaultdict(list)
    for r in preds:
        steps[(r["frame"], r["track_id"])].append(int(r["step"]))
    assert len(expected) > 1000
    assert set(steps) == expected
    assert all(s == list(range(1, lstm.horizon + 1)) for s in steps.values())
    last_t = {float(r["t_future_s"]) for r in preds if r["step"] == str(lstm.horizon)}
    assert len(last_t) == 1 and abs(last_t.pop() - 2.0) < 1e-6


def test_sigint_leaves_playable_video_and_complete_csv(tmp_path):
    """SIGINT arrives while frame 60 is processed (injected, not timed): the run stops at that frame boundary."""
    out = tmp_path / "run"
    env = {**os.environ, "YOLO_OFFLINE": "1", "FAULT_SIGINT_AT": "60"}
    cmd = [sys.executable, "-m", "tests.faults", "track", "--source", str(VTEST), "--weights", str(DETECTOR),
           "--predictor", "kalman", "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    stdout, stderr = proc.stdout, proc.stderr
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    processed = int(stdout.split("interrupted after ")[1].split()[0])
    assert processed == 61
    n, _, _ = _decoded_frames(out / "annotated.mp4")
    assert n == processed
    tracks = _rows(out / "tracks.csv", TRACK_COLUMNS)
    assert max(int(r["frame"]) for r in tracks) == processed - 1
    preds = _rows(out / "predictions.csv", PREDICTION_COLUMNS)
    per_key = defaultdict(int)
    for r in preds:
        per_key[(r["frame"], r["track_id"])] += 1
    assert set(per_key.values()) == {5}  # kalman: 2.0 s at 0.4 s steps, never a half-written frame


def test_help_documents_every_option():
    from run import build_parser

    proc = run_cli("track", "--help")
    assert proc.returncode == 0
    parser = build_parser()
    track = parser._subparsers._group_actions[0].choices["track"]
    for action in track._actions:
        assert action.help, f"{action.option_strings} has no help"
        for opt in action.option_strings:
            assert opt in proc.stdout


def test_fast_and_simple_paths_give_identical_outputs(tmp_path):
    """speed.detect_ahead / threaded_io change scheduling only: the CSVs must match byte for byte."""
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    cfg["speed"] = {"detect_ahead": 0, "threaded_io": False}
    simple_cfg = tmp_path / "simple.yaml"
    simple_cfg.write_text(yaml.safe_dump(cfg))
    outs = {}
    for name, extra in (("fast", []), ("simple", ["--config", str(simple_cfg)])):
        out = tmp_path / name
        proc = run_cli("track", "--source", str(VTEST), "--weights", str(DETECTOR), "--max-frames", "150",
                       "--out", str(out), "--quiet", *extra)
        assert proc.returncode == 0, proc.stderr
        outs[name] = out
    for f in ("tracks.csv", "predictions.csv"):
        assert (outs["fast"] / f).read_bytes() == (outs["simple"] / f).read_bytes(), f
    assert _decoded_frames(outs["fast"] / "annotated.mp4")[0] == 150
