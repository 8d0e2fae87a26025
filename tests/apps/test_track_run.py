"""The real pipeline on real video, through the CLI as a user runs it."""

from __future__ import annotations

import csv
import os
import resource
import subprocess
import sys
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import cv2
import pytest

from pipeline.io.writers import PREDICTION_COLUMNS, TRACK_COLUMNS
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_every_track_with_enough_history_is_forecast(vtest_run):
    """A (frame, track) has enough history once the track has been followed for predictor.min_history_s (0.8 s):
    younger than the models' 2 s window it gets the young-track Kalman's forecast, on the same grid."""
    from pipeline.core.config import PredictorConfig
    from pipeline.forecast.predictors import LSTMPredictor

    out, _ = vtest_run
    lstm = LSTMPredictor(str(LSTM_CKPT), horizon_s=2.0)
    need_s = PredictorConfig().min_history_s
    assert need_s < (lstm.obs_len - 1) * lstm.step_s
    tracks = _rows(out / "tracks.csv", TRACK_COLUMNS)
    fps = 10.0  # vtest; times are frame / fps, exactly as the pipeline computes them
    start, last, expected = {}, {}, set()
    for r in tracks:  # rows are in time order
        tid, k = r["track_id"], int(r["frame"])
        # history.max_lost_s = 2: forgotten if, on a frame it was absent, it had been unseen for > 2 s
        if tid not in start or (k - 1) / fps - last[tid] / fps > 2.0:
            start[tid] = k
        last[tid] = k
        on_step = abs(k / fps / lstm.step_s - round(k / fps / lstm.step_s)) < 1e-6  # forecasts at the model's step
        if k / fps - start[tid] / fps >= need_s - 1e-6 and on_step:
            expected.add((r["frame"], tid))
    preds = _rows(out / "predictions.csv", PREDICTION_COLUMNS)
    steps = defaultdict(list)
    for r in preds:
        steps[(r["frame"], r["track_id"])].append(int(r["step"]))
    assert len(expected) > 250
    assert set(steps) == expected
    assert all(s == list(range(1, lstm.horizon + 1)) for s in steps.values())
    last_t = {float(r["t_future_s"]) for r in preds if r["step"] == str(lstm.horizon)}
    assert len(last_t) == 1 and abs(last_t.pop() - 2.0) < 1e-6
    # t_target_s is the forecast point's time on the video clock, so it joins tracks.csv's time_s directly
    assert all(abs(float(r["t_target_s"]) - float(r["time_s"]) - float(r["t_future_s"])) < 1e-3 for r in preds)


def _faulted(out: Path, *args: str, fsize: int | None = None, source: Path = VTEST,
             **faults: str) -> subprocess.CompletedProcess:
    """`track` in a subprocess through tests/faults.py, with FAULT_* variables and an optional file size limit.

    The limit (RLIMIT_FSIZE) makes a write past `fsize` bytes fail with EFBIG, as on a full disk; Python
    ignores SIGXFSZ, so the process is not killed by it. Works as a normal user and as root.
    """
    env = {**os.environ, "YOLO_OFFLINE": "1", **faults}
    cmd = [sys.executable, "-m", "tests.faults", "track", "--source", str(source), "--weights", str(DETECTOR),
           "--predictor", "kalman", "--out", str(out), "--quiet", *args]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
                          preexec_fn=limit if fsize is not None else None)


def _ends_whole(path: Path) -> None:
    data = path.read_bytes()
    assert data.endswith(b"\r\n"), f"{path.name} ends in the middle of a row"


@pytest.mark.slow
def test_sigint_leaves_playable_video_and_complete_csv(tmp_path):
    """SIGINT arrives while frame 60 is processed (injected, not timed): the run stops at that frame boundary."""
    out = tmp_path / "run"
    proc = _faulted(out, FAULT_SIGINT_AT="60")
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
    from pipeline.apps.cli import build_parser

    proc = run_cli("track", "--help")
    assert proc.returncode == 0
    parser = build_parser()
    track = parser._subparsers._group_actions[0].choices["track"]
    for action in track._actions:
        assert action.help, f"{action.option_strings} has no help"
        for opt in action.option_strings:
            assert opt in proc.stdout


@pytest.mark.slow
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


def test_second_sigint_during_shutdown_still_finishes_every_file(tmp_path):
    """Ctrl-C at frame 30, then again as each file starts closing (the writer's drain, the video, each CSV).

    The later signals must not abort the finalising: exit 130 (not 134), a playable video holding every
    processed frame, whole CSV rows, the forecast scores written, and a note on stderr instead of a traceback.
    """
    out = tmp_path / "run"
    proc = _faulted(out, FAULT_SIGINT_AT="30", FAULT_SIGINT_ON_CLOSE="1")
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "finishing the output files" in proc.stderr
    assert "interrupted after 31 frames" in proc.stdout
    assert _decoded_frames(out / "annotated.mp4")[0] == 31
    tracks = _rows(out / "tracks.csv", TRACK_COLUMNS)
    assert max(int(r["frame"]) for r in tracks) == 30
    _rows(out / "predictions.csv", PREDICTION_COLUMNS)
    for f in ("tracks.csv", "predictions.csv", "forecast_scores.csv"):
        _ends_whole(out / f)


@pytest.mark.slow
def test_full_disk_at_the_video_stops_with_a_playable_video_and_whole_rows(tmp_path):
    """A file size limit of 800 kB: the video is the biggest file and reaches it first.

    OpenCV's writer fails silently and an mp4 without room for its index never plays, so the run stops while
    there is still room for the next frame and the index: exit 5, one line naming the video, the video plays
    every frame it got, and both CSVs end on the video's last frame.
    """
    out, limit = tmp_path / "run", 800_000
    proc = _faulted(out, fsize=limit)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 5, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert "annotated.mp4" in lines[0] and "disk is full" in lines[0]
    n = _decoded_frames(out / "annotated.mp4")[0]
    assert n >= 1 and f"with {n} frames" in lines[0]
    tracks = _rows(out / "tracks.csv", TRACK_COLUMNS)
    preds = _rows(out / "predictions.csv", PREDICTION_COLUMNS)
    assert max(int(r["frame"]) for r in tracks) == n - 1
    assert max(int(r["frame"]) for r in preds) <= n - 1
    for f in ("tracks.csv", "predictions.csv"):
        _ends_whole(out / f)
    assert all(p.stat().st_size <= limit for p in out.iterdir())


def test_full_disk_at_a_csv_cuts_both_csvs_back_to_the_last_whole_frame(tmp_path):
    """Without video, predictions.csv reaches a 20 kB limit part-way through a frame (a short write, then EFBIG).

    The half-written frame is cut away in both CSVs, so both end on the same, whole frame; exit 5, one line.
    """
    out, limit = tmp_path / "run", 20_000
    proc = _faulted(out, "--no-video", fsize=limit)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 5, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert ("predictions.csv" in lines[0] or "tracks.csv" in lines[0]) and "disk is full" in lines[0]
    tracks = _rows(out / "tracks.csv", TRACK_COLUMNS)
    preds = _rows(out / "predictions.csv", PREDICTION_COLUMNS)
    last = max(int(r["frame"]) for r in tracks)
    last_pred = max(int(r["frame"]) for r in preds)  # forecasts are written every 0.4 s: every 4th vtest frame
    assert last_pred <= last < last_pred + 4 and last >= 5
    per_key = defaultdict(int)
    for r in preds:
        per_key[(r["frame"], r["track_id"])] += 1
    assert set(per_key.values()) == {5}  # no frame's forecasts are cut short
    for f in ("tracks.csv", "predictions.csv"):
        _ends_whole(out / f)
        assert (out / f).stat().st_size <= limit


def _make_vfr_video(path: Path, gaps_ms: list[int], frames: int) -> list[float]:
    """The first frames of vtest re-encoded (mpeg4 in mp4, PyAV) with irregular timestamps; returns them in s."""
    av = pytest.importorskip("av")
    cap = cv2.VideoCapture(str(VTEST))
    pts, times = 0, []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)  # the nominal rate: 10 fps on average
        stream.width, stream.height, stream.pix_fmt = 480, 360, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(frames):
            ok, image = cap.read()
            assert ok
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
            times.append(pts / 1000)
            pts += gaps_ms[i % len(gaps_ms)]
        container.mux(stream.encode())
    cap.release()
    with av.open(str(path)) as check:  # the container really holds these timestamps
        s = check.streams.video[0]
        assert [float(f.pts * s.time_base) for f in check.decode(video=0)] == pytest.approx(times)
    return times


def test_variable_frame_rate_time_s_follows_the_container_timestamps(tmp_path):
    """Frames 40, 160, 100, 60, 140, 100 ms apart (10 fps on average): time_s is each frame's timestamp."""
    video = tmp_path / "vfr.mp4"
    times = _make_vfr_video(video, [40, 160, 100, 60, 140, 100], 40)
    out = tmp_path / "run"
    proc = run_cli("track", "--source", str(video), "--weights", str(DETECTOR), "--predictor", "kalman",
                   "--no-video", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = _rows(out / "tracks.csv", TRACK_COLUMNS) + _rows(out / "predictions.csv", PREDICTION_COLUMNS)
    frames = {int(r["frame"]) for r in rows}
    assert len(frames) >= 30
    for r in rows:
        assert r["time_s"] == f"{times[int(r['frame'])]:.4f}", r
    assert sum(abs(times[k] - k / 10) > 0.02 for k in frames) >= 10  # index / fps would be wrong here


def test_container_clock_keeps_constant_rates_exact_and_survives_missing_timestamps():
    """Constant-rate timestamps give exactly index / fps; missing or backwards ones advance by 1 / fps."""
    from pipeline.io.frames import ContainerClock

    clock = ContainerClock(29.97)
    assert [clock.time_of(200.0 + k * 1000 / 29.97 + 1e-9, k) for k in range(4)] == [k / 29.97 for k in range(4)]
    clock = ContainerClock(10.0)
    got = [clock.time_of(ms, k) for k, ms in enumerate([200.0, 300.0, 450.0, 0.0, 0.0, 700.0])]
    assert got == [0.0, 0.1, 0.25, 0.35, 0.45, 0.5]
