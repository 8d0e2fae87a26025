"""Conflicts: time to collision from forecasts, and the real minimum distance and post-encroachment time."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.events.conflicts import ConflictMonitor, PairRule


def _walk(start: tuple[float, float], vel: tuple[float, float], times: np.ndarray) -> np.ndarray:
    return np.asarray(start) + np.asarray(vel) * times[:, None]


def test_head_on_forecasts_give_time_to_collision():
    """Two walkers 6 m apart closing at 2.5 m/s: within 1 m after (6 - 1) / 2.5 = 2 s."""
    times = np.linspace(0, 3, 31)
    paths = np.stack([_walk((0, 0), (1.25, 0), times), _walk((6, 0.2), (-1.25, 0), times)])[:, None]
    mon = ConflictMonitor(1.0, pet_max_s=2.0, alert_probability=0.5)
    ev, marks = mon.predicted(0, 0.0, np.array([3, 8]), paths, np.ones(2), times, 3.0, np.zeros((2, 2)))
    assert [(e.event, e.track_id, e.other_id) for e in ev] == [("conflict_predicted", 3, 8)]
    assert ev[0].eta_s == pytest.approx(2.0, abs=0.02) and ev[0].distance == pytest.approx(0.2, abs=0.06)
    assert marks[0].ttc_s == ev[0].eta_s


def test_walkers_side_by_side_are_no_conflict():
    times = np.linspace(0, 3, 31)
    paths = np.stack([_walk((0, 0), (1.2, 0), times), _walk((0, 1.5), (1.2, -0.1), times)])[:, None]
    mon = ConflictMonitor(1.0, pet_max_s=2.0, alert_probability=0.5)
    assert mon.predicted(0, 0.0, np.array([1, 2]), paths, np.ones(2), times, 3.0, np.zeros((2, 2))) == ([], [])


def test_real_crossing_paths_report_post_encroachment_time():
    """A crosses the point (5, 0) at t=2 s going east; B crosses it at t=3.5 s going north, never closer than
    ~1.5 m at the same time: one conflict with PET about 1.5 s minus the time to cover the 1 m radius."""
    mon = ConflictMonitor(1.0, pet_max_s=2.0, alert_probability=0.5)
    events = []
    for k in range(80):
        t = k / 10
        a = (2.5 * (t - 2) + 5, 0.0)
        b = (5.0, 1.5 * (t - 3.5))
        ev, _ = mon.real(k, t, np.array([1, 2]), np.array([a, b]), np.ones(2))
        events += ev
    assert [(e.event, e.track_id, e.other_id) for e in events] == [("conflict", 1, 2)]
    pet, dist = events[0].eta_s, events[0].distance
    assert 0.6 < pet < 1.5 and 1.2 < dist < 3.0


DEFAULT_PAIRS = ["vehicle-person", "vehicle-cyclist", "vehicle-vehicle", "cyclist-person"]


def _crossing(mon: ConflictMonitor, classes: list[str]) -> list:
    """The crossing paths of the test above, as two road users of the given classes."""
    events = []
    for k in range(80):
        t = k / 10
        pos = np.array([(2.5 * (t - 2) + 5, 0.0), (5.0, 1.5 * (t - 3.5))])
        boxes = np.column_stack([pos - 0.3, pos + 0.3])
        events += mon.real(k, t, np.array([1, 2]), pos, np.ones(2), classes, boxes)[0]
    return events


def test_only_road_user_pairs_a_conflict_technique_counts_are_conflicts():
    rule = PairRule(DEFAULT_PAIRS)
    assert rule.allowed(["car", "bicycle", "car", "person", "bus"], ["person", "person", "truck", "person", "bicycle"]).tolist() \
        == [True, True, True, False, True]
    assert PairRule(["all"]).allowed(["person"], ["person"]).tolist() == [True]
    assert PairRule(["person-dog"]).allowed(["dog", "person"], ["person", "cat"]).tolist() == [True, False]
    walkers = _crossing(ConflictMonitor(1.0, 2.0, 0.5, rule=rule), ["person", "person"])
    car = _crossing(ConflictMonitor(1.0, 2.0, 0.5, rule=rule), ["car", "person"])
    assert walkers == [] and [(e.event, e.track_id, e.other_id) for e in car] == [("conflict", 1, 2)]


def test_two_ids_on_one_standing_object_are_no_conflict():
    """A parked car seen as two overlapping boxes with two ids (the street video's 17/75): never a conflict."""
    mon = ConflictMonitor(1.0, 2.0, 0.5, rule=PairRule(["all"]))
    rng = np.random.default_rng(0)
    events, starts = [], []
    for k in range(60):
        pos = np.array([[10.0, 5.0], [10.3, 5.1]]) + rng.normal(0, 0.03, (2, 2))
        boxes = np.array([[8.0, 4.0, 12.0, 6.0], [8.3, 4.1, 12.3, 6.1]])
        ev, st = mon.real(k, k / 10, np.array([17, 75]), pos, np.ones(2), ["car", "car"], boxes)
        events += ev
        starts += st
    assert events == [] and starts == []


def test_bad_conflict_pairs_are_refused_in_one_line():
    from pipeline.core.config import EventsConfig
    from pipeline.core.errors import UserError

    for bad in (["car"], ["-person"], []):
        with pytest.raises(UserError, match="events.conflict_pairs"):
            EventsConfig(conflict_pairs=bad)


def _encounter(a_path, b_path, classes=("car", "person"), steps: int = 60, fps: float = 10.0) -> list[list[str]]:
    """Replay two road users (position functions of t, metres) through real(); conflicts.csv's rows."""
    mon = ConflictMonitor(1.0, 2.0, 0.5, rule=PairRule(["all"]), metric=True)
    for k in range(steps):
        t = k / fps
        pos = np.array([a_path(t), b_path(t)], float)
        mon.real(k, t, np.array([1, 2]), pos, np.ones(2), list(classes), np.column_stack([pos - 0.2, pos + 0.2]))
    return list(mon.rows)


def test_conflicts_csv_indicators_on_encounters_with_known_answers():
    from pipeline.events.conflicts import CONFLICT_COLUMNS

    # crossing at right angles: a car at 10 m/s east passes (10, 0) at t=1 s, a person at 1.5 m/s north reaches
    # it at t=2 s: PET about 1 s minus the time to cover the 1 m radius, speeds 36 and 5.4 km/h, 90 degrees
    rows = _encounter(lambda t: (10 * t, 0.0), lambda t: (10.0, 1.5 * (t - 2.0)))
    assert len(rows) == 1
    r = dict(zip(CONFLICT_COLUMNS, rows[0]))
    assert (r["class_a"], r["class_b"], r["type"]) == ("car", "person", "crossing")
    assert float(r["speed_a"]) == pytest.approx(36.0, abs=1.0) and float(r["speed_b"]) == pytest.approx(5.4, abs=0.5)
    assert float(r["angle_deg"]) == pytest.approx(90, abs=5) and 0.2 < float(r["pet_s"]) < 1.0
    assert r["severity"] == "serious" and r["speed_unit"] == "km/h"
    # head-on: 2 m/s each towards each other, 0.3 m apart sideways: TTC to within 0.5 m falls below 1.5 s
    rows = _encounter(lambda t: (2 * t, 0.0), lambda t: (12 - 2 * t, 0.3), classes=("bicycle", "person"))
    r = dict(zip(CONFLICT_COLUMNS, rows[0]))
    assert r["type"] == "head-on" and float(r["min_ttc_s"]) < 0.5 and float(r["min_distance"]) < 0.35
    assert float(r["delta_v"]) == pytest.approx(14.4, abs=1.0)
    # side by side at the same speed, 0.8 m apart: no conflict at all
    assert _encounter(lambda t: (1.5 * t, 0.0), lambda t: (1.5 * t, 0.8)) == []


def test_each_conflict_says_where_it_happened():
    from pipeline.events.conflicts import CONFLICT_COLUMNS

    rows = _encounter(lambda t: (10 * t, 0.0), lambda t: (10.0, 1.5 * (t - 2.0)))
    r = dict(zip(CONFLICT_COLUMNS, rows[0]))
    assert 8.0 < float(r["x"]) < 12.0 and abs(float(r["y"])) < 1.5  # around the crossing point (10, 0)
