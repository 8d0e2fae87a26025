"""eval-events: a data set's trajectories replayed through track's forecast -> events code, alerts scored."""

from __future__ import annotations

import json

import numpy as np

from pipeline.core.config import EventsConfig, LineConfig, PredictorConfig
from pipeline.learning.loaders import load
from pipeline.learning.replay import PX_PER_M, recordings, replay
from tests.conftest import DATA, run_cli

ZARA = DATA / "ethucy" / "all_data" / "crowds_zara01.txt"


def test_a_recording_keeps_the_datas_metres_and_the_events_are_there():
    trajs = load("ethucy", ZARA, "all")
    (rec,) = recordings(trajs, minutes=1.0)
    assert rec.metric and len(rec.frames) > 100
    line = LineConfig("middle", [[7.5, 0.0], [7.5, 12.0]])  # across zara's walking direction, in the data's metres
    _, engine = replay(rec, PredictorConfig(kind="kalman"), EventsConfig(lines=[line]))
    assert engine.camera is not None  # events in metres, as with --camera
    # every real crossing: a trajectory that really went from one side of x = 7.5 m to the other around then
    real = engine.scorer.tallies[("line_cross_predicted", "*")].real
    sides = [np.sign(t.xywh[:, 0] - 7.5) for t in trajs if t.times[0] <= 60]
    assert 0 < real <= sum(int((np.diff(s[s != 0]) != 0).sum()) for s in sides)
    feet = engine.camera.to_ground(np.array([[rec.frames[0][1].xyxy[0, [0, 2]].mean(), rec.frames[0][1].xyxy[0, 3]]]))
    first = min(trajs, key=lambda t: t.times[0])
    assert np.allclose(feet[0], first.xywh[0, :2], atol=2 / PX_PER_M)


def test_eval_events_cli_scores_the_chosen_predictor_and_cv(tmp_path):
    zones = tmp_path / "zones.yaml"
    zones.write_text("lines:\n  - name: middle\n    points: [[7.5, 0.0], [7.5, 12.0]]\n")
    out = tmp_path / "scores.json"
    proc = run_cli("eval-events", "--data", str(ZARA), "--format", "ethucy", "--zones", str(zones),
                   "--predictor", "kalman", "--minutes", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert set(res) == {"kalman", "cv"}
    for pred in res.values():
        line = pred["line_cross_predicted"]
        assert line["alerts"] > 5 and 0 <= line["precision"] <= 1 and line["real"] > 5
        assert line["median_lead_s"] is None or line["median_lead_s"] >= 0
    assert "| kalman | line_cross_predicted |" in proc.stdout
    bad = run_cli("eval-events", "--data", str(ZARA), "--format", "ethucy", "--minutes", "-1")
    assert bad.returncode != 0 and "--minutes must be > 0" in bad.stderr and "Traceback" not in bad.stderr
