"""The library API: forecasts for tracks from one's own loop equal what `track` writes for the same tracks."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT, run_cli

VIDEO = ROOT.parent / "shared" / "data" / "videos" / "yellow_crosswalk_640x360.mp4"
DETECTOR = ROOT.parent / "shared" / "weights" / "yolo11n_int8_dynamic_openvino_model"
ZONES = "zones:\n  - name: lane\n    polygon: [[0, 150], [640, 150], [640, 240], [0, 240]]\n"


@pytest.fixture(scope="module")
def crossing_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`track` on the first 120 frames of the crossing, with its tracks and forecasts written."""
    out = tmp_path_factory.mktemp("api") / "run"
    zones = out.parent / "zones.yaml"
    zones.write_text(ZONES)
    proc = run_cli("track", "--source", str(VIDEO), "--weights", str(DETECTOR), "--max-frames", "120", "--no-video",
                   "--zones", str(zones), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_forecaster_on_tracks_from_ones_own_loop_equals_what_track_writes(crossing_run: Path):
    from pipeline import Forecaster, Events

    frames: dict[int, list[dict[str, str]]] = defaultdict(list)
    times: dict[int, float] = {}
    for r in _rows(crossing_run / "tracks.csv"):
        frames[int(r["frame"])].append(r)
        times[int(r["frame"])] = float(r["time_s"])
    written: dict[int, dict[tuple[int, int], tuple[float, float]]] = defaultdict(dict)
    for r in _rows(crossing_run / "predictions.csv"):
        written[int(r["frame"])][(int(r["track_id"]), int(r["step"]))] = (float(r["pred_cx"]), float(r["pred_cy"]))
    fps = cv2.VideoCapture(str(VIDEO)).get(cv2.CAP_PROP_FPS)
    forecaster = Forecaster(fps=fps)  # the default predictor, auto, as track's default
    events = Events(zones=str(crossing_run.parent / "zones.yaml"))
    compared = 0
    for k in sorted(times):  # every frame in order, also those with no track (tracks.csv lists none there)
        rows = frames[k]
        tracks = {"xyxy": np.array([[float(r[c]) for c in ("x1", "y1", "x2", "y2")] for r in rows]).reshape(-1, 4),
                  "track_id": np.array([int(r["track_id"]) for r in rows]), "class_id": np.zeros(len(rows), int)}
        fc = forecaster.update(tracks, times[k], frame_size=(640, 360))
        events.update(fc, tracks, times[k], frame_size=(640, 360))
        if not forecaster.fresh:
            assert k not in written  # track writes forecasts on the model's steps only
            continue
        got = {(int(t), s + 1): tuple(fc.xy[i, s]) for i, t in enumerate(fc.track_id) for s in range(len(fc.t_s))}
        assert set(got) == set(written[k])
        for key, xy in got.items():  # tracks.csv keeps boxes to 0.01 px: the same forecasts within a few hundredths
            assert xy == pytest.approx(written[k][key], abs=0.05)
            compared += 1
    assert compared > 100 and fc.served in ("lstm", "cv", "kalman")
    df_cols = fc.to_columns(times[k], k)
    assert list(df_cols)[:8] == ["frame", "time_s", "track_id", "step", "t_future_s", "t_target_s", "pred_cx", "pred_cy"]
    assert len(df_cols["pred_cx"]) == len(fc) * len(fc.t_s)


def _frames(n: int):
    cap = cv2.VideoCapture(str(VIDEO))
    fps = cap.get(cv2.CAP_PROP_FPS)
    for k in range(n):
        ok, frame = cap.read()
        assert ok
        yield k / fps, frame


def test_an_ultralytics_model_track_loop():
    """The README's loop: ultralytics' own tracker on real frames, its Results passed as they come."""
    from ultralytics import YOLO

    from pipeline import Forecaster

    model = YOLO(str(DETECTOR), task="detect")
    forecaster = Forecaster(predictor="cv", fps=cv2.VideoCapture(str(VIDEO)).get(cv2.CAP_PROP_FPS))
    seen = set()
    for t, frame in _frames(90):
        result = model.track(frame, persist=True, verbose=False, classes=[0])[0]
        fc = forecaster.update(result, time_s=t)
        seen |= set(fc.track_id.tolist())
        assert np.isfinite(fc.xy).all() and fc.xy.shape == (len(fc), len(fc.t_s), 2) and fc.served == "cv"
    assert len(seen) >= 3 and forecaster.frame_size == (640, 360)  # the crossing has many people walking


def test_a_supervision_bytetrack_loop():
    sv = pytest.importorskip("supervision")
    from ultralytics import YOLO

    from pipeline import Forecaster

    model = YOLO(str(DETECTOR), task="detect")
    fps = cv2.VideoCapture(str(VIDEO)).get(cv2.CAP_PROP_FPS)
    tracker, forecaster = sv.ByteTrack(frame_rate=int(round(fps))), Forecaster(predictor="cv", fps=fps)
    seen = set()
    for t, frame in _frames(90):
        dets = tracker.update_with_detections(sv.Detections.from_ultralytics(model(frame, verbose=False)[0]))
        fc = forecaster.update(dets, time_s=t, frame_size=(frame.shape[1], frame.shape[0]))
        seen |= set(fc.track_id.tolist())
        assert set(fc.track_id.tolist()) <= set(dets.tracker_id.tolist())
    assert len(seen) >= 3


def test_bad_input_says_how_to_fix_it():
    from pipeline import Forecaster

    f = Forecaster(predictor="cv")
    with pytest.raises(ValueError, match="frame_size"):
        f.update({"xyxy": np.zeros((1, 4)), "track_id": [1]}, 0.0)
    with pytest.raises(ValueError, match="one id per box"):
        f.update({"xyxy": np.zeros((2, 4)), "track_id": [1]}, 0.1, frame_size=(640, 360))
    with pytest.raises(TypeError, match="model.track"):
        f.update("boxes", 0.2, frame_size=(640, 360))
    f.update({"xyxy": np.zeros((0, 4)), "track_id": []}, 0.3, frame_size=(640, 360))
    with pytest.raises(ValueError, match="increase"):
        f.update({"xyxy": np.zeros((0, 4)), "track_id": []}, 0.3, frame_size=(640, 360))
