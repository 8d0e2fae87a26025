"""Two-dimensional time to collision of footprints, on encounters with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.config import FOOTPRINT_M
from pipeline.events.ttc import half_sizes, overlap, ttc_2d

EAST, NORTH = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
CAR, PERSON = np.array([[2.25, 0.9]]), np.array([[0.25, 0.25]])


def _ttc(rel, vel, ha, sa, hb, sb, t_max=5.0) -> float:
    return float(ttc_2d(np.array([rel], float), np.array([vel], float), ha, sa, hb, sb, t_max)[0])


def test_head_on_cars_collide_when_their_fronts_meet():
    """40 m apart, 0.5 m offset sideways, closing at 20 m/s: fronts meet at (40 - 4.5) / 20 = 1.775 s."""
    assert _ttc((40, 0.5), (-20, 0), EAST, CAR, -EAST, CAR) == pytest.approx(1.775, abs=0.002)
    # 2 m offset: wider than the 1.8 m cars, they pass (a point-distance rule would call this a near-miss)
    assert _ttc((40, 2.0), (-20, 0), EAST, CAR, -EAST, CAR) == np.inf


def test_crossing_at_right_angles_depends_on_who_is_where_when():
    """Car at (-20, 0) east at 10 m/s covers x = 0 from 1.75 to 2.25 s. A person 3.5 m south walking north at
    1.5 m/s is in the car's lane from 1.57 s: they meet at 1.75 s. From 5 m south the person comes too late."""
    rel = (20.0, -3.5)
    assert _ttc(rel, (-10, 1.5), EAST, CAR, NORTH, PERSON) == pytest.approx(1.75, abs=0.002)
    assert _ttc((20.0, -5.0), (-10, 1.5), EAST, CAR, NORTH, PERSON) == np.inf


def test_rear_end_and_side_by_side():
    """A car 20 m behind one going 5 m/s slower hits it after (20 - 4.5) / 5 = 3.1 s; side by side at the same
    speed there is no collision however close they are; overlapping now is 0."""
    assert _ttc((20, 0), (-5, 0), EAST, CAR, EAST, CAR) == pytest.approx(3.1, abs=0.002)
    assert _ttc((0, 2.0), (0, 0), EAST, CAR, EAST, CAR) == np.inf
    assert _ttc((1, 0.5), (0, 0), EAST, CAR, EAST, CAR) == 0.0
    assert _ttc((20, 0), (-5, 0), EAST, CAR, EAST, CAR, t_max=3.0) == np.inf  # beyond the horizon asked for


def test_rotated_footprints_overlap_by_their_corners_only():
    """A car turned 45 degrees has its corner at x = (2.25 + 0.9) / sqrt 2 = 2.23 m, y = 0.95 m: a person square
    touches it there within its own half size, and is clear of it beside the corner at y = 0."""
    diag = np.array([[np.sqrt(0.5), np.sqrt(0.5)]])
    corner = np.array([(2.25 + 0.9) * np.sqrt(0.5), (2.25 - 0.9) * np.sqrt(0.5)])
    assert overlap(np.array([corner + [0.24, 0.0]]), diag, CAR, EAST, PERSON)[0]
    assert not overlap(np.array([corner + [0.26, 0.0]]), diag, CAR, EAST, PERSON)[0]
    assert not overlap(np.array([[corner[0], 0.0]]), diag, CAR, EAST, PERSON)[0]


def test_footprints_come_from_the_class_sizes_in_metres_else_one_square():
    h = half_sizes(["car", "person", "dog"], 3, FOOTPRINT_M, 0.125)
    assert h.tolist() == [[2.25, 0.9], [0.25, 0.25], [0.125, 0.125]]
    assert half_sizes(["car"], 1, None, 0.125).tolist() == [[0.125, 0.125]]
