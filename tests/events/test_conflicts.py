"""Conflicts: forecast footprints meeting (alerts), and real conflicts by SSAM's and DOCTOR's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.events.conflicts import CONFLICT_COLUMNS, ConflictMonitor, ConflictRules, PairRule

RULES = ConflictRules()  # SSAM: TTC <= 1.5 s and PET <= 5 s; serious below 1 s TTC or 1 s PET


def _walk(start: tuple[float, float], vel: tuple[float, float], times: np.ndarray) -> np.ndarray:
    return np.asarray(start) + np.asarray(vel) * times[:, None]


def test_head_on_forecasts_meet_when_their_footprints_touch():
    """Two walkers 6 m apart closing at 2.5 m/s, 0.2 m apart sideways: their 0.5 m squares touch after
    (6 - 0.5) / 2.5 = 2.2 s (on the 0.1 s forecast grid)."""
    times = np.linspace(0, 3, 31)
    paths = np.stack([_walk((0, 0), (1.25, 0), times), _walk((6, 0.2), (-1.25, 0), times)])[:, None]
    mon = ConflictMonitor(1.0, RULES, alert_probability=0.5, metric=True)
    ev, marks = mon.predicted(0, 0.0, np.array([3, 8]), paths, np.ones(2), times, 3.0, np.zeros((2, 2)),
                              ["person", "person"])
    assert [(e.event, e.track_id, e.other_id) for e in ev] == [("conflict_predicted", 3, 8)]
    # the alert is for the conflict's start, when the time to collision will have fallen to 1.5 s
    assert ev[0].eta_s == pytest.approx(0.7, abs=0.051) and ev[0].distance == pytest.approx(0.2, abs=0.06)
    assert marks[0].ttc_s == pytest.approx(2.2, abs=0.051)
    # 9 m apart: they meet after 3.4 s, past the 3 s forecast, but the conflict starts within it (at 1.9 s)
    far = np.stack([_walk((0, 0), (1.25, 0), times), _walk((9, 0.2), (-1.25, 0), times)])[:, None]
    ev, _ = ConflictMonitor(1.0, RULES, 0.5, metric=True).predicted(0, 0.0, np.array([3, 8]), far, np.ones(2), times,
                                                                     3.0, np.zeros((2, 2)), ["person", "person"])
    assert len(ev) == 1 and ev[0].eta_s == pytest.approx(1.9, abs=0.11)  # on the 0.1 s grid


def test_forecasts_side_by_side_or_passing_wide_are_no_conflict():
    times = np.linspace(0, 3, 31)
    mon = ConflictMonitor(1.0, RULES, alert_probability=0.5, metric=True)
    together = np.stack([_walk((0, 0), (1.2, 0), times), _walk((0, 1.5), (1.2, -0.1), times)])[:, None]
    assert mon.predicted(0, 0.0, np.array([1, 2]), together, np.ones(2), times, 3.0, np.zeros((2, 2))) == ([], [])
    # a car and a person passing head-on 1.5 m apart sideways: closer than 1 m centre to side, never touching
    wide = np.stack([_walk((0, 0), (8, 0), times), _walk((20, 1.5), (-1.2, 0), times)])[:, None]
    assert mon.predicted(0, 0.0, np.array([1, 2]), wide, np.ones(2), times, 3.0, np.zeros((2, 2)),
                         ["car", "person"]) == ([], [])


def _replay(a_path, b_path, classes=("car", "person"), seconds: float = 8.0, fps: float = 10.0,
            rules: ConflictRules = RULES, rule: PairRule | None = None) -> tuple[list, list, list[dict]]:
    """Two road users (position functions of t, metres) through real(): events, conflict starts and rows."""
    mon = ConflictMonitor(1.0, rules, 0.5, rule=rule or PairRule(["all"]), metric=True)
    events, starts = [], []
    for k in range(int(seconds * fps)):
        t = k / fps
        pos = np.array([a_path(t), b_path(t)], float)
        ev, st = mon.real(k, t, np.array([1, 2]), pos, np.ones(2), list(classes), np.column_stack([pos - 0.2, pos + 0.2]))
        events += ev
        starts += [(t, s) for s in st]
    mon.finish()  # the end of the run: what is still open is written
    return events, starts, [dict(zip(CONFLICT_COLUMNS, r)) for r in mon.rows]


def _car(t: float) -> tuple[float, float]:
    return (-40 + 10 * t, 0.0)  # east at 10 m/s (36 km/h), covering x = 0 from 3.75 to 4.25 s


def _walker_stopping_at_the_kerb(t: float) -> tuple[float, float]:
    return (0.0, -6 + 1.5 * min(t, 3.0))  # north at 1.5 m/s, stops 1.5 m from the car's centre line at 3 s


def test_a_collision_course_within_ssam_ttc_is_a_conflict_from_when_ttc_fell_to_the_threshold():
    """While walking, the person is in the car's lane from (6 - 1.15) / 1.5 = 3.23 s, before the car gets there
    at 3.75 s: TTC = 3.75 - t, which reaches 1.5 s at t = 2.25 s. The person stops at the kerb and the car
    passes 0.6 m from them (no PET: they never share a spot)."""
    events, starts, rows = _replay(_car, _walker_stopping_at_the_kerb, seconds=10)
    assert [s for _, s in starts] == [(1, 2)] and starts[0][0] == pytest.approx(2.3, abs=0.051)
    assert [(e.event, e.track_id, e.other_id) for e in events] == [("conflict", 1, 2)]
    r = rows[0]
    assert float(r["start_s"]) == pytest.approx(2.3, abs=0.051) and 0.0 < float(r["min_ttc_s"]) <= 0.8
    assert (r["class_a"], r["class_b"], r["type"], r["severity"]) == ("car", "person", "crossing", "serious")
    assert r["pet_s"] == "" and float(r["speed_a"]) == pytest.approx(36.0, abs=1.0)
    assert 0 < float(r["speed_b"]) <= 5.5 and float(r["angle_deg"]) == pytest.approx(90, abs=5)  # at the smallest TTC: stopping
    assert abs(float(r["x"])) < 3.0 and abs(float(r["y"])) < 2.0  # where they would have collided
    # the same walk 2 s later: the car is long past, never on course, no PET within 1 s: nothing
    assert _replay(_car, lambda t: _walker_stopping_at_the_kerb(t - 2.0))[2] == []


def test_paths_crossing_within_a_second_are_a_doctor_conflict_with_their_pet():
    """The car leaves x = 0 (its footprint plus the person's half size) at 4.25 s; the person, crossing y = 0 at
    5.05 s, reaches the car's swept band at 5.05 - 1.15 / 1.5 = 4.28 s: PET about 0.03-0.13 s, never on course."""
    events, starts, rows = _replay(_car, lambda t: (0.0, 1.5 * (t - 5.05)))
    assert len(rows) == 1 and rows[0]["min_ttc_s"] == "" and 0.0 <= float(rows[0]["pet_s"]) < 0.3
    assert rows[0]["severity"] == "serious" and [s for _, s in starts] == [(1, 2)]
    # 2 s later: PET about 2 s, a crossing but no conflict (no collision course, PET above DOCTOR's 1 s)
    assert _replay(_car, lambda t: (0.0, 1.5 * (t - 7.05)), seconds=10)[2] == []


def test_head_on_and_rear_end_types_and_speeds():
    """Head-on: a cyclist and a car closing at 15 m/s, offset 0.5 m, the cyclist swerving off at 1.2 s; rear-end: a
    car 25 m behind one 5 m/s slower, braking to its speed at 2.5 s (TTC (25 - 4.5 - 5 t) / 5 reaches 1.5 s at
    2.6 s: just after it braked, so no conflict), and at 3.5 s (a conflict, rear-end)."""
    def swerve(t):
        return (30 - 5 * t, 0.5 + (3.0 * (t - 1.2) if t > 1.2 else 0.0))
    _, _, rows = _replay(lambda t: (10 * t, 0.0), swerve, classes=("car", "bicycle"))
    assert [r["type"] for r in rows] == ["head-on"] and float(rows[0]["delta_v"]) == pytest.approx(54, abs=3)

    def follower(brake_s):
        return lambda t: (10 * min(t, brake_s) + 5 * max(t - brake_s, 0.0), 0.0)
    assert _replay(follower(2.5), lambda t: (25 + 5 * t, 0.0), classes=("car", "car"))[2] == []
    rows = _replay(follower(3.5), lambda t: (25 + 5 * t, 0.0), classes=("car", "car"))[2]
    assert [r["type"] for r in rows] == ["rear-end"] and float(rows[0]["min_ttc_s"]) <= 1.5


def test_walking_side_by_side_is_no_conflict():
    assert _replay(lambda t: (1.5 * t, 0.0), lambda t: (1.5 * t, 0.6), classes=("person", "person"))[2] == []


DEFAULT_PAIRS = ["vehicle-person", "vehicle-cyclist", "vehicle-vehicle", "cyclist-person"]


def test_only_road_user_pairs_a_conflict_technique_counts_are_conflicts():
    rule = PairRule(DEFAULT_PAIRS)
    assert rule.allowed(["car", "bicycle", "car", "person", "bus"], ["person", "person", "truck", "person", "bicycle"]).tolist() \
        == [True, True, True, False, True]
    assert PairRule(["all"]).allowed(["person"], ["person"]).tolist() == [True]
    assert PairRule(["person-dog"]).allowed(["dog", "person"], ["person", "cat"]).tolist() == [True, False]
    walkers = _replay(_car, _walker_stopping_at_the_kerb, classes=("person", "person"), rule=rule)[2]
    car = _replay(_car, _walker_stopping_at_the_kerb, classes=("car", "person"), rule=rule)[2]
    assert walkers == [] and len(car) == 1


def test_two_ids_on_one_standing_object_are_no_conflict():
    """A parked car seen as two overlapping boxes with two ids (the street video's 17/75): never a conflict."""
    mon = ConflictMonitor(1.0, RULES, 0.5, rule=PairRule(["all"]), metric=True)
    rng = np.random.default_rng(0)
    events, starts = [], []
    for k in range(60):
        pos = np.array([[10.0, 5.0], [10.3, 5.1]]) + rng.normal(0, 0.03, (2, 2))
        boxes = np.array([[8.0, 4.0, 12.0, 6.0], [8.3, 4.1, 12.3, 6.1]])
        ev, st = mon.real(k, k / 10, np.array([17, 75]), pos, np.ones(2), ["car", "car"], boxes)
        events += ev
        starts += st
    assert events == [] and starts == []


def test_bad_conflict_settings_are_refused_in_one_line():
    from pipeline.core.config import EventsConfig
    from pipeline.core.errors import UserError

    for bad in (["car"], ["-person"], []):
        with pytest.raises(UserError, match="events.conflict_pairs"):
            EventsConfig(conflict_pairs=bad)
    for kw, key in (({"conflict_ttc_s": 0}, "conflict_ttc_s"), ({"pet_max_s": -1}, "pet_max_s"),
                    ({"serious_ttc_s": 2.0}, "serious"), ({"footprints_m": {"car": [4.5]}}, "footprints_m"),
                    ({"footprints_m": {"car": [4.5, -1]}}, "footprints_m"), ({"conflict_alert": "touch"}, "conflict_alert")):
        with pytest.raises(UserError, match=key):
            EventsConfig(**kw)


def _alerts(a_path, b_path, rule: str, horizon: float = 5.0, classes=("car", "person"), b_samples=()) -> list:
    """Conflict alerts at t = 0 from forecasts that are the true future of a and b (sample 0; b's further samples
    from `b_samples`), by alert rule `rule`."""
    times = np.round(np.arange(0.0, horizon + 1e-9, 0.1), 10)
    a = np.array([a_path(t) for t in times], float)
    bs = [np.array([f(t) for t in times], float) for f in (b_path, *b_samples)]
    paths = np.stack([np.stack([a] * len(bs)), np.stack(bs)])  # (2, S, T, 2)
    mon = ConflictMonitor(1.0, RULES, 0.5, rule=PairRule(["all"]), metric=True, alert_rule=rule)
    return mon.predicted(0, 0.0, np.array([1, 2]), paths, np.ones(2), times, horizon, np.zeros((2, 2)),
                         list(classes))[0]


def test_a_perfect_forecast_announces_the_real_conflict_when_it_will_begin():
    """The near-miss of the SSAM test (the walker stops at the kerb 0.35 m from the car's side): along the true
    future, the time to collision falls to 1.5 s at 2.3 s, when the real conflict begins; the footprints never
    meet, so the `meet` rule says nothing."""
    (ev,) = _alerts(_car, _walker_stopping_at_the_kerb, "course")
    assert (ev.event, ev.track_id, ev.other_id, ev.probability_raw) == ("conflict_predicted", 1, 2, 1.0)
    assert ev.eta_s == pytest.approx(2.3, abs=0.051)
    assert _alerts(_car, _walker_stopping_at_the_kerb, "conflict")[0].eta_s == pytest.approx(2.3, abs=0.051)
    assert _alerts(_car, _walker_stopping_at_the_kerb, "meet") == []
    # the walk 2 s later (no real conflict): no alert by any rule
    for rule in ("course", "conflict", "meet"):
        assert _alerts(_car, lambda t: _walker_stopping_at_the_kerb(t - 2.0), rule) == []


def test_paths_crossing_within_a_second_are_announced_by_the_conflict_rule_alone():
    """The DOCTOR crossing of the PET test (never on a collision course): the `conflict` rule announces it for
    when the walker reaches the car's swept band, as the real conflict's start; `course` does not."""
    walker = lambda t: (0.0, 1.5 * (t - 5.05))  # noqa: E731
    _, starts, _ = _replay(_car, walker)
    (ev,) = _alerts(_car, walker, "conflict")
    assert ev.eta_s == pytest.approx(starts[0][0], abs=0.11) and ev.eta_s == pytest.approx(4.28, abs=0.11)
    assert _alerts(_car, walker, "course") == []
    assert _alerts(_car, lambda t: (0.0, 1.5 * (t - 7.05)), "conflict", horizon=7.0) == []  # PET about 2 s


def test_the_alert_probability_is_the_share_of_sample_paths_in_conflict():
    """Of four sample paths of the walker, three are the near-miss and one turns back: probability 0.75; the
    time is the mean path's (sample 0)."""
    back = lambda t: (0.0, -6 - 1.5 * t)  # noqa: E731
    (ev,) = _alerts(_car, _walker_stopping_at_the_kerb, "course",
                    b_samples=(_walker_stopping_at_the_kerb, _walker_stopping_at_the_kerb, back))
    assert ev.probability_raw == pytest.approx(0.75) and ev.eta_s == pytest.approx(2.3, abs=0.051)
    assert _alerts(_car, _walker_stopping_at_the_kerb, "course", b_samples=(back, back, back)) == []  # 0.25


def test_conflict_times_along_paths_head_on_rear_end_side_by_side():
    """Unit squares of half side 0.25 m on constant velocities, 0.1 s steps over 3 s. Head-on, closing at
    2.5 m/s from 9.1 m (0.2 m offset): they would touch at (9.1 - 0.5) / 2.5 = 3.44 s, so the time to collision
    is 1.5 s at 1.94 s (the 2.0 s step). Rear-end at 5 m/s closing from 8.25 m: touching at 1.55 s, on course
    from 0.05 s (the first step, 0.1 s). Crossing
    at right angles, both at the crossing at 2.05 s: on course from 0.45 s (the 0.5 s step). Side by side,
    standing still, or crossing 2 s apart: never."""
    from pipeline.events.conflicts import path_conflict_times

    times = np.round(np.arange(0.0, 3.0 + 1e-9, 0.1), 10)

    def first(a0, va, b0, vb, pet=1.0):
        pa, pb = _walk(a0, va, times)[None, None], _walk(b0, vb, times)[None, None]
        half, head = np.full((1, 2), 0.25), np.array([[1.0, 0.0]])
        return float(path_conflict_times(pa, pb, times, (head, head), (half, half), (np.zeros(1, bool),) * 2,
                                         1.5, pet)[0, 0])

    assert first((0, 0), (1.25, 0), (9.1, 0.2), (-1.25, 0)) == pytest.approx(2.0)
    assert first((0, 0), (10, 0), (8.25, 0), (5, 0)) == pytest.approx(0.1)
    assert first((-10.25, 0), (5, 0), (0, -5.125), (0, 2.5)) == pytest.approx(0.5)
    assert np.isnan(first((0, 0), (1.5, 0), (0, 0.6), (1.5, 0)))  # side by side
    assert np.isnan(first((0, 0), (0, 0), (0.7, 0), (0, 0)))  # both standing, 0.2 m apart
    assert np.isnan(first((-10.25, 0), (5, 0), (0, -10.125), (0, 2.5)))  # at the crossing 2 s after the other


def test_an_alert_that_must_persist_waits_for_it():
    """With conflict_persist_s 0.2 the alert comes at the third 0.1 s frame of the same forecast, not the first."""
    times = np.round(np.arange(0.0, 5.0 + 1e-9, 0.1), 10)
    paths = np.stack([np.array([_car(t) for t in times]), np.array([_walker_stopping_at_the_kerb(t) for t in times])])
    mon = ConflictMonitor(1.0, RULES, 0.5, rule=PairRule(["all"]), metric=True, alert_rule="course", persist_s=0.2)
    said = [len(mon.predicted(k, k / 10, np.array([1, 2]), paths[:, None], np.ones(2), times, 5.0, np.zeros((2, 2)),
                              ["car", "person"])[0]) for k in range(4)]
    assert said == [0, 0, 1, 0]
