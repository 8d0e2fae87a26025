"""Counts per interval, class and direction from events that counted once."""

from __future__ import annotations

import pytest

from pipeline.events.counts import COUNT_COLUMNS, TrafficCounts
from pipeline.events.types import Event


def test_counts_per_interval_class_and_direction_with_dwell_and_occupancy(tmp_path):
    c = TrafficCounts([("gate", ("north", "south"))], ["shop"], interval_s=60.0)
    classes = {1: "person", 2: "person", 3: "car"}
    c.update(10.0, [Event(0, 9.5, 1, "line_cross", "gate", direction="north"),
                    Event(0, 9.8, 3, "line_cross", "gate", direction="south")], classes, {"shop": []})
    c.update(20.0, [Event(1, 19.0, 1, "zone_enter", "shop", direction="in"),
                    Event(1, 19.5, 2, "zone_enter", "shop", direction="in")], classes, {"shop": [1, 2]})
    c.update(70.0, [Event(2, 69.0, 1, "zone_exit", "shop", direction="out", dwell_s=50.0),
                    Event(2, 69.5, 1, "line_cross", "gate", direction="north")], classes, {"shop": [2]})
    rows = [dict(zip(COUNT_COLUMNS, r)) for r in c.rows()]

    def get(period: str, name: str, cls: str, direction: str) -> dict[str, str]:
        return next(r for r in rows if (r["period"], r["name"], r["class_name"], r["direction"]) == (period, name, cls, direction))

    assert get("0", "gate", "person", "north")["count"] == "1" and get("1", "gate", "person", "north")["count"] == "1"
    assert get("total", "gate", "person", "north")["count"] == "2" and get("total", "gate", "car", "south")["count"] == "1"
    assert get("0", "shop", "person", "occupancy")["occupancy_max"] == "2"
    assert get("1", "shop", "person", "occupancy")["occupancy_max"] == "1"
    assert float(get("total", "shop", "person", "exit")["dwell_median_s"]) == pytest.approx(50.0)
    assert (get("1", "gate", "person", "north")["start_s"], get("1", "gate", "person", "north")["end_s"]) == ("60.000", "70.000")
    lines = c.summary_lines()
    assert lines[0] == "counts line gate: 2 north, 1 south (car 1, person 2)"
    assert lines[1].startswith("counts zone shop: 2 entries, 1 exits, at most 2 inside at once, dwell median 50.0 s")
    c.write(tmp_path / "counts.csv")
    assert (tmp_path / "counts.csv").read_text().splitlines()[0] == ",".join(COUNT_COLUMNS)
