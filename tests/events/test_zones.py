"""Zones and lines: segment tests between frames, forecast probabilities, and one-line errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest

import run
from pipeline.events.zones import Line, Zone, ZoneMonitor, inside, segment_cross
from tests.conftest import DETECTOR, VIDEOS

SQUARE = Zone("square", np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float))
LINE = Line("kerb", np.array([0.0, 20.0]), np.array([10.0, 20.0]))


def test_point_in_polygon_and_segment_crossing():
    pts = np.array([[5, 5], [11, 5], [-1, -1], [np.nan, 5]])
    assert inside(pts, SQUARE.polygon).tolist() == [True, False, False, False]
    hit, f = segment_cross(np.array([[5, 15], [5, 15]]), np.array([[5, 25], [25, 25]]), LINE.a, LINE.b)
    assert hit.tolist() == [True, False] and f[0] == pytest.approx(0.5)


def test_a_crossing_between_two_frames_counts_with_its_time_and_direction():
    """A cyclist seen at y=15 then y=26 (0.5 s apart) crossed y=20 at 0.227 s; the square it jumped over
    (entered and left between frames) is reported too."""
    mon = ZoneMonitor([SQUARE], [LINE], 0.5, forget_s=2.0)
    assert mon.real(0, 0.0, np.array([1]), np.array([[5.0, 15.0]])) == []
    ev = mon.real(1, 0.5, np.array([1]), np.array([[5.0, 26.0]]))
    assert [(e.event, e.name, e.direction) for e in ev] == [("line_cross", "kerb", "in")]
    assert ev[0].time_s == pytest.approx(5 / 11 * 0.5)
    back = mon.real(2, 1.0, np.array([1]), np.array([[5.0, -3.0]]))  # straight through the square, one frame
    assert [(e.event, e.direction) for e in back] == [("line_cross", "out"), ("zone_enter", "in"), ("zone_exit", "out")]
    assert back[1].time_s < back[2].time_s


def test_predicted_entry_has_eta_and_probability_from_the_spread():
    """Walking at 2 units/s toward the square 4 units away: ETA 2 s; a wide spread lowers the probability."""
    times = np.linspace(0, 3, 31)
    mean = np.stack([np.full_like(times, 5.0), 14.0 - 2.0 * times], axis=-1)  # (T, 2), enters y=10 at t=2
    rng = np.random.default_rng(0)
    probs = []
    for spread in (0.1, 8.0):
        z = rng.standard_normal((64, 1, 2))
        z[0] = 0
        paths = (mean[None] + z * spread * times[None, :, None] / 3)[None]  # (1, S, T, 2)
        mon = ZoneMonitor([SQUARE], [], 0.3, forget_s=2.0)
        ev, alerts = mon.predicted(0, 0.0, np.array([4]), paths, times, 3.0)
        probs.append(alerts[0].probability if alerts else 0.0)
        if spread == 0.1:
            assert [e.event for e in ev] == ["zone_enter_predicted"] and ev[0].eta_s == pytest.approx(2.0, abs=0.11)
            assert mon.predicted(1, 0.1, np.array([4]), paths, times, 3.0)[0] == []  # reported once, not every frame
    assert probs[0] == 1.0 and probs[1] < 0.8


BAD_ZONES = [
    ("zones:\n  - name: a\n    polygon: [[0, 0], [10, 0]]\n", "must list at least 3"),
    ("zones:\n  - name: a\n    polgon: [[0, 0], [10, 0], [5, 5]]\n", "unknown config key 'zones[0].polgon'"),
    ("zones:\n  - name: a\n    polygon: [[2000, 2000], [2100, 2000], [2100, 2100]]\n", "lies entirely outside the 640x360"),
    ("zones:\n  - name: a\n    polygon: [[0, 0], [10, 10], [20, 20]]\n", "has no area"),
    ("lines:\n  - name: a\n    points: [[5, 5], [5, 5]]\n", "two equal points"),
    ("zones:\n  - name: a\n    polygon: [[0, 0], [9, 0], [9, 9]]\nlines:\n  - name: a\n    points: [[1, 1], [5, 5]]\n", "'a' is used twice"),
    ("zones: []\n", "lists no zones and no lines"),
    ("zones: 3\n", "must be a list of mappings"),
]


@pytest.mark.parametrize("text, why", BAD_ZONES)
def test_bad_zone_files_get_one_line_errors(text, why, tmp_path, capsys):
    zones = tmp_path / "zones.yaml"
    zones.write_text(text)
    code = run.main(["track", "--source", str(VIDEOS / "yellow_crosswalk_640x360.mp4"), "--weights", str(DETECTOR),
                     "--zones", str(zones), "--out", str(tmp_path / "o"), "--quiet", "--max-frames", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and why in err[0] and err[0].startswith("error: "), err
    assert not (tmp_path / "o").exists()


def _walk(mon: ZoneMonitor, ys: list[float], x: float = 5.0, fps: float = 10.0) -> list:
    """One track's foot points at (x, y) frame by frame; every real event."""
    out = []
    for k, y in enumerate(ys):
        out += mon.real(k, k / fps, np.array([1]), np.array([[x, y]]), np.array([1.0]))
    return out


def test_jitter_around_a_line_counts_nothing_and_a_real_passage_counts_once():
    mon = ZoneMonitor([], [LINE], 0.5, forget_s=2.0, hysteresis=0.5)
    jitter = [19.0, 19.8, 20.3, 19.7, 20.4, 19.6, 20.2, 19.9]  # never 0.5 past y = 20 on the far side
    assert _walk(mon, jitter) == []
    ev = _walk(ZoneMonitor([], [LINE], 0.5, forget_s=2.0, hysteresis=0.5), jitter + [20.6, 21.5, 23.0])
    assert [(e.event, e.direction) for e in ev] == [("line_cross", "in")]
    assert ev[0].time_s == pytest.approx(0.1 + 0.2 / 0.5 * 0.1)  # when it first went across, not when counted
    unfiltered = _walk(ZoneMonitor([], [LINE], 0.5, forget_s=2.0, hysteresis=0.0), jitter)
    assert len(unfiltered) == 6  # what the jitter counted before


def test_a_real_entry_exit_entry_counts_each_time_with_dwell():
    mon = ZoneMonitor([SQUARE], [], 0.5, forget_s=2.0, hysteresis=0.5)
    ev = _walk(mon, [15, 12, 8, 5, 3, 5, 9, 12, 14, 11, 7, 4])
    assert [e.event for e in ev] == ["zone_enter", "zone_exit", "zone_enter"]
    assert ev[1].dwell_s == pytest.approx(ev[1].time_s - ev[0].time_s) and ev[1].dwell_s > 0.4


def test_a_track_first_seen_inside_may_exit_and_an_exit_never_comes_without_it():
    mon = ZoneMonitor([SQUARE], [], 0.5, forget_s=2.0, hysteresis=0.5)
    ev = _walk(mon, [5, 7, 9, 11, 13])
    assert [(e.event, e.dwell_s) for e in ev] == [("zone_exit", None)]  # born inside: exit counted, stay unknown
    edge = _walk(ZoneMonitor([SQUARE], [], 0.5, forget_s=2.0, hysteresis=0.5), [10.3, 9.8, 10.2, 9.9, 10.4, 11.0])
    assert edge == []  # along the edge, never 0.5 inside: neither an entry nor an exit
    assert mon.inside_now(0.0) == {"square": []}
    inside = ZoneMonitor([SQUARE], [], 0.5, forget_s=2.0, hysteresis=0.5)
    _walk(inside, [15, 12, 8, 5])
    assert inside.inside_now(0.3) == {"square": [1]} and inside.inside_now(0.4) == {"square": []}


def test_line_directions_take_the_users_names():
    line = Line("gate", np.array([0.0, 20.0]), np.array([10.0, 20.0]), directions=("southbound", "northbound"))
    ev = _walk(ZoneMonitor([], [line], 0.5, forget_s=2.0, hysteresis=0.5), [15, 18, 22, 25, 22, 18, 15])
    assert [e.direction for e in ev] == ["southbound", "northbound"]
