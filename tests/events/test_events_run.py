"""`track --camera --zones` and `live --events-jsonl` on a real crossing video, through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.events.counts import COUNT_COLUMNS
from pipeline.events.scoring import SCORE_COLUMNS
from pipeline.events.types import EVENT_COLUMNS
from pipeline.io.run_dirs import read_manifest
from pipeline.io.writers import PREDICTION_COLUMNS, PREDICTION_GROUND_COLUMNS, TRACK_COLUMNS, TRACK_GROUND_COLUMNS
from tests.conftest import DETECTOR, ROOT, VIDEOS, run_cli
from tests.apps.test_live import _finish, _live, stream  # noqa: F401 (the fixture)

# every test here waits for a tracked run of the crossing video (or streams one live): over 5 s each
pytestmark = pytest.mark.slow

CROSSWALK = VIDEOS / "yellow_crosswalk_640x360.mp4"
ZONES = ROOT / "configs" / "zones_yellow_crosswalk.yaml"
SCALE = 0.025  # metres per pixel assumed for this overhead view (only the arithmetic is under test)
NAMES = {"zone_enter_predicted", "zone_enter", "zone_exit", "line_cross_predicted", "line_cross",
         "conflict_predicted", "conflict"}


def _table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert all(len(r) == len(rows[0]) for r in rows)
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


@pytest.fixture(scope="module")
def crossing_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("events")
    camera = tmp / "camera.yaml"
    camera.write_text(f"metres_per_pixel: {SCALE}\n")
    zones = yaml.safe_load(ZONES.read_text())  # with --camera, zones are in metres: the same places
    for item in zones["zones"] + zones["lines"]:
        key = "polygon" if "polygon" in item else "points"
        item[key] = [[x * SCALE, y * SCALE] for x, y in item[key]]
    metric = tmp / "zones_m.yaml"
    metric.write_text(yaml.safe_dump(zones))
    out = tmp / "run"
    proc = run_cli("track", "--source", str(CROSSWALK), "--weights", str(DETECTOR), "--camera", str(camera),
                   "--zones", str(metric), "--out", str(out), "--quiet", "--max-frames", "150")
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def test_ground_columns_are_the_foot_point_in_metres(crossing_run):
    out, stdout = crossing_run
    head, tracks = _table(out / "tracks.csv")
    assert head == TRACK_COLUMNS + TRACK_GROUND_COLUMNS
    for r in tracks:
        assert float(r["x_m"]) == pytest.approx(float(r["cx"]) * SCALE, abs=0.002)
        assert float(r["y_m"]) == pytest.approx(float(r["y2"]) * SCALE, abs=0.002)
    speeds = [float(r["speed_mps"]) for r in tracks if r["speed_mps"]]
    assert len(speeds) > len(tracks) / 2 and min(speeds) >= 0
    head, preds = _table(out / "predictions.csv")
    assert head == PREDICTION_COLUMNS + PREDICTION_GROUND_COLUMNS and all(r["pred_x_m"] for r in preds)
    assert "ground speeds (foot points, smoothed over 0.5 s): median" in stdout and "km/h" in stdout


def test_events_csv_has_real_and_predicted_events_that_match_the_tracks(crossing_run):
    out, stdout = crossing_run
    head, events = _table(out / "events.csv")
    assert head == EVENT_COLUMNS
    kinds = {e["event"] for e in events}
    assert kinds <= NAMES and {"zone_enter", "line_cross", "line_cross_predicted"} <= kinds
    for e in events:
        if e["event"].endswith("_predicted"):
            assert 0 <= float(e["eta_s"]) <= 2.0 + 1e-6 and 0 < float(e["probability"]) <= 1
    # every real crossing of the line y = 192 px is where that track's foot point really went across it
    _, tracks = _table(out / "tracks.csv")
    feet: dict[str, list[tuple[float, float]]] = {}
    for r in tracks:
        feet.setdefault(r["track_id"], []).append((float(r["time_s"]), float(r["y2"])))
    crossed: dict[str, list[float]] = {}
    for e in (e for e in events if e["event"] == "line_cross"):  # counted when the foot is past the margin, at
        t = float(e["time_s"])  # the time it went across: the observations around that time straddle the line
        before = max((tt, y) for tt, y in feet[e["track_id"]] if tt <= t)
        after = min((tt, y) for tt, y in feet[e["track_id"]] if tt >= t)
        assert (before[1] - 192) * (after[1] - 192) <= 0
        assert e["direction"] == ("in" if before[1] < 192 else "out")
        crossed.setdefault(e["track_id"], []).append(t)
    assert crossed and all(b - a >= 1.0 for ts in crossed.values() for a, b in zip(ts, ts[1:]))  # counted once
    head, scores = _table(out / "event_scores.csv")
    assert head == SCORE_COLUMNS
    for r in (r for r in scores if int(r["alerts"])):  # the reliability table adds up to the alerts scored
        bins = ("0_50", "50_70", "70_90", "90_100")
        n = [int(r[f"alerts_{b}"]) for b in bins]
        true = sum(k * float(r[f"came_true_{b}"] or 0) for k, b in zip(n, bins))
        assert sum(n) == int(r["alerts"]) and round(true) == int(r["hits"])
        assert 0.5 <= float(r["mean_probability_raw"]) <= 1 and 0 <= float(r["brier"]) <= 1
        assert int(r["announced"]) >= int(r["detected"])
    assert {"events.csv", "event_scores.csv"} <= set(read_manifest(out))
    assert "alerts line_cross_predicted (from auto" in stdout and "precision" in stdout


def test_video_shades_the_zone(crossing_run):
    out, _ = crossing_run
    src, ann = cv2.VideoCapture(str(CROSSWALK)), cv2.VideoCapture(str(out / "annotated.mp4"))
    a, b = src.read()[1].astype(float), ann.read()[1].astype(float)
    lane = (b[150:236, 10:630, 0] - a[150:236, 10:630, 0]).mean()  # blue channel: zones are shaded (255, 160, 0)
    assert lane > 20


def test_live_streams_events_as_json_lines(stream, tmp_path):  # noqa: F811
    s = stream(CROSSWALK)
    out = tmp_path / "live"
    p = _live("--source", s.url, "--no-show", "--save", "--events-jsonl", "--zones", str(ZONES), "--out", str(out),
              "--max-seconds", "10")
    stdout, stderr = _finish(p, 120)
    assert p.returncode == 0, stderr
    assert "processed" in stderr  # the summary goes to stderr: stdout is for the consumer
    lines = [json.loads(ln) for ln in stdout.splitlines()]
    _, rows = _table(out / "events.csv")
    assert [list(d) for d in lines] == [EVENT_COLUMNS] * len(lines)
    assert [{k: ("" if v is None else str(v)) for k, v in d.items()} for d in lines] == [
        {k: (str(float(v)) if v and "." in v else v) for k, v in r.items()} for r in rows]
    assert all(isinstance(d["time_s"], float) and isinstance(d["track_id"], int) for d in lines)
    head, counts = _table(out / "counts.csv")  # live --save keeps the counts and the per-track table too
    assert head == COUNT_COLUMNS and any(r["period"] == "total" for r in counts)
    assert (out / "track_summary.csv").read_text().startswith("track_id,")
    print(f"\nlive: {len(lines)} events streamed ({np.unique([d['event'] for d in lines]).tolist()})")


def test_counts_csv_adds_up_the_events_that_counted_once(crossing_run):
    out, stdout = crossing_run
    head, counts = _table(out / "counts.csv")
    assert head == COUNT_COLUMNS
    _, events = _table(out / "events.csv")
    total = [r for r in counts if r["period"] == "total"]
    for kind, event, direction in (("line", "line_cross", "in"), ("line", "line_cross", "out"),
                                   ("zone", "zone_enter", "enter"), ("zone", "zone_exit", "exit")):
        want = sum(1 for e in events if e["event"] == event and (kind == "zone" or e["direction"] == direction))
        got = sum(int(r["count"]) for r in total if r["kind"] == kind and r["direction"] == direction)
        assert got == want, (kind, direction)
    exits = [e for e in events if e["event"] == "zone_exit"]
    dwells = [float(e["dwell_s"]) for e in exits if e["dwell_s"]]
    assert dwells and all(d > 0 for d in dwells)
    lane = next(r for r in total if r["name"] == "lane" and r["direction"] == "exit")
    assert float(lane["dwell_median_s"]) == pytest.approx(np.median(dwells), abs=1e-3)
    # an exit needs an entry: per track, exits never outnumber entries (plus one for a track first seen inside)
    for tid in {e["track_id"] for e in exits}:
        n_in = sum(1 for e in events if e["event"] == "zone_enter" and e["track_id"] == tid)
        n_out = sum(1 for e in exits if e["track_id"] == tid)
        assert n_out <= n_in + 1
    assert "counts line centre:" in stdout and "counts zone lane:" in stdout
