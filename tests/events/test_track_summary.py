"""Per-track summaries and speeds that read 0 for what stands still, on constructed tracks and the street video."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pipeline.events.calibration import Path as FootPath
from pipeline.events.track_summary import TRACK_SUMMARY_COLUMNS, TrackSummaries
from pipeline.events.types import Event
from tests.conftest import DETECTOR, ROOT, VIDEOS, run_cli

FPS = 10.0


def test_a_breathing_box_stands_still_and_a_walker_walks():
    still, walker = FootPath(), FootPath()
    speeds = []
    for k in range(40):
        t = k / FPS
        still.add(t, np.array([5.0 + 0.03 * np.sin(2 * np.pi * t / 0.6), 2.0]), 0.5)  # 3 cm breathing
        walker.add(t, np.array([1.2 * t, 0.0]) + np.random.default_rng(k).normal(0, 0.02, 2), 0.5)
        speeds.append((still.speed(0.5, 0.3), walker.speed(0.5, 0.3)))
    s, w = np.array(speeds[25:]).T  # after 2.5 s
    assert (s == 0).all()
    assert np.abs(w - 1.2).max() < 0.15


def test_summary_rows_say_when_how_far_how_fast_and_where():
    ts = TrackSummaries(metric=True, step=0.15, window_s=0.5, forget_s=1.0)
    for k in range(31):
        t = k / FPS
        foot = np.array([[1.5 * t, 0.0], [3.0, 3.0]])
        ev = [Event(k, t, 1, "zone_enter", "shop", direction="in")] if k == 10 else []
        ev += [Event(k, t, 1, "line_cross", "gate", direction="north")] if k == 20 else []
        ts.update(t, np.array([1, 2]), ["person", "car"], foot, np.ones(2), ev)
    ts.update(5.0, np.array([2]), ["car"], np.array([[3.0, 3.0]]), np.ones(1))  # track 1 is finished by now
    rows = {r[0]: dict(zip(TRACK_SUMMARY_COLUMNS, r)) for r in ts.rows()}
    walker, parked = rows["1"], rows["2"]
    assert (walker["class_name"], walker["first_s"], walker["last_s"]) == ("person", "0.000", "3.000")
    assert float(walker["path_length"]) == pytest.approx(4.5, abs=0.3)  # 1.5 m/s for 3 s
    assert float(walker["median_speed"]) == pytest.approx(5.4, abs=0.2) and walker["speed_unit"] == "km/h"
    assert (walker["zones"], walker["lines"]) == ("shop", "gate:north")
    assert float(parked["path_length"]) == 0 and float(parked["max_speed"]) == 0


@pytest.fixture(scope="module")
def street_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("street") / "run"
    proc = run_cli("track", "--source", str(VIDEOS / "street_traffic_640x360.mp4"), "--weights", str(DETECTOR),
                   "--camera", str(ROOT / "configs" / "camera_street_traffic.yaml"), "--out", str(out),
                   "--quiet", "--no-video", "--max-frames", "200")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.slow
def test_parked_cars_on_the_street_read_0_kmh_and_passing_ones_do_not(street_run):
    with (street_run / "track_summary.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == TRACK_SUMMARY_COLUMNS
    long_cars = [r for r in rows if r["class_name"] in ("car", "truck") and float(r["duration_s"]) > 15]
    assert len(long_cars) >= 3  # the cars parked along the kerbs for the whole slice
    assert all(float(r["median_speed"]) == 0 and float(r["path_length"]) < 1.0 for r in long_cars)
    moving = [r for r in rows if r["median_speed"] and float(r["path_length"]) > 10]
    assert moving and all(10 < float(r["max_speed"]) < 60 and float(r["median_speed"]) > 3 for r in moving)  # km/h
