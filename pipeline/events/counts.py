"""Counts a traffic or footfall study asks for: per line, class and direction; per zone entries, exits, peak
occupancy and dwell time; per interval of video time and in total (counts.csv).

Built only from the events the zone monitor already counted once per passage (hysteresis), so a count here is
one person or vehicle passing once. Memory: one small tally per (interval, line or zone, class, direction);
dwell times are a bounded reservoir per tally, so an endless stream stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.tables import write_csv_atomic
from pipeline.events.types import Event

COUNT_COLUMNS = ["period", "start_s", "end_s", "kind", "name", "class_name", "direction", "count",
                 "occupancy_max", "dwell_median_s", "dwell_p90_s"]
DWELL_KEEP = 4096  # dwell times kept per tally (a reservoir sample beyond that)
MAX_PERIODS = 10_000  # intervals kept for counts.csv (about 100 days at 15 min); the oldest go first


@dataclass
class _Tally:
    count: int = 0
    occupancy_max: int = 0
    dwell: list[float] = field(default_factory=list)
    dwell_seen: int = 0

    def add_dwell(self, d: float, rng: np.random.Generator) -> None:
        self.dwell_seen += 1
        if len(self.dwell) < DWELL_KEEP:
            self.dwell.append(d)
        else:  # reservoir sampling: every dwell kept with the same chance
            k = int(rng.integers(0, self.dwell_seen))
            if k < DWELL_KEEP:
                self.dwell[k] = d


Key = tuple[str, str, str, str]  # (kind, name, class, direction)


class TrafficCounts:
    """Tallies line crossings and zone entries / exits / occupancy per class, per `interval_s` and in total."""

    def __init__(self, lines: Sequence[tuple[str, tuple[str, str]]], zones: Sequence[str], interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.lines, self.zones, self.interval_s = list(lines), list(zones), interval_s
        self.periods: dict[int, dict[Key, _Tally]] = {}
        self.total: dict[Key, _Tally] = {}
        self._rng = np.random.default_rng(0)
        self.last_s = 0.0

    @property
    def has_geometry(self) -> bool:
        """Whether there is anything to count (a line or a zone)."""
        return bool(self.lines or self.zones)

    def update(self, t: float, events: Iterable[Event], classes: Mapping[int, str],
               inside: Mapping[str, Sequence[int]]) -> None:
        """One frame: its real line / zone events and who each zone holds now (for the peak occupancy)."""
        self.last_s = max(self.last_s, t)
        for e in events:
            cls = classes.get(e.track_id, "")
            if e.event == "line_cross":
                self._add(e.time_s, ("line", e.name, cls, e.direction))
            elif e.event in ("zone_enter", "zone_exit"):
                tallies = self._add(e.time_s, ("zone", e.name, cls, "enter" if e.event == "zone_enter" else "exit"))
                if e.dwell_s is not None:
                    for tl in tallies:
                        tl.add_dwell(float(e.dwell_s), self._rng)
        for name, ids in inside.items():
            by_class: dict[str, int] = {}
            for tid in ids:
                by_class[classes.get(tid, "")] = by_class.get(classes.get(tid, ""), 0) + 1
            for cls, n in by_class.items():
                for tl in self._tallies(t, ("zone", name, cls, "occupancy")):
                    tl.occupancy_max = max(tl.occupancy_max, n)

    def _tallies(self, t: float, key: Key) -> list[_Tally]:
        period = int(math.floor(max(t, 0.0) / self.interval_s))
        tallies = self.periods.setdefault(period, {})
        while len(self.periods) > MAX_PERIODS:
            del self.periods[min(self.periods)]
        return [tallies.setdefault(key, _Tally()), self.total.setdefault(key, _Tally())]

    def _add(self, t: float, key: Key) -> list[_Tally]:
        tallies = self._tallies(t, key)
        for tl in tallies:
            tl.count += 1
        return tallies

    def rows(self) -> list[list[str]]:
        """counts.csv's rows: every interval so far (the last one partial), then the totals."""
        out = []
        for p in sorted(self.periods):
            start = p * self.interval_s
            out += self._rows(str(p), start, min(start + self.interval_s, self.last_s), self.periods[p])
        return out + self._rows("total", 0.0, self.last_s, self.total)

    @staticmethod
    def _rows(period: str, start: float, end: float, tallies: Mapping[Key, _Tally]) -> list[list[str]]:
        rows = []
        for (kind, name, cls, direction), tl in sorted(tallies.items()):
            occupancy = direction == "occupancy"
            dwell = np.asarray(tl.dwell) if tl.dwell else None
            rows.append([period, f"{start:.3f}", f"{end:.3f}", kind, name, cls, direction,
                         "" if occupancy else str(tl.count), str(tl.occupancy_max) if occupancy else "",
                         "" if dwell is None else f"{np.median(dwell):.3f}",
                         "" if dwell is None else f"{np.percentile(dwell, 90):.3f}"])
        return rows

    def write(self, path: Path) -> None:
        write_csv_atomic(path, COUNT_COLUMNS, self.rows())

    def summary_lines(self) -> list[str]:
        """Totals in words: one line per line and per zone, every class and direction."""
        out = []
        for name, (first, second) in self.lines:
            per = {d: sum(tl.count for (k, n, _, dd), tl in self.total.items() if k == "line" and n == name and dd == d)
                   for d in (first, second)}
            by_class = self._by_class("line", name)
            out.append(f"counts line {name}: {per[first]} {first}, {per[second]} {second}" + by_class)
        for name in self.zones:
            ent = [tl for (k, n, _, d), tl in self.total.items() if k == "zone" and n == name and d == "enter"]
            ext = [tl for (k, n, _, d), tl in self.total.items() if k == "zone" and n == name and d == "exit"]
            dwell = [x for tl in ext for x in tl.dwell]
            occ = max((tl.occupancy_max for (k, n, _, d), tl in self.total.items()
                       if k == "zone" and n == name and d == "occupancy"), default=0)
            stay = f", dwell median {np.median(dwell):.1f} s (p90 {np.percentile(dwell, 90):.1f} s)" if dwell else ""
            out.append(f"counts zone {name}: {sum(t.count for t in ent)} entries, {sum(t.count for t in ext)} exits, "
                       f"at most {occ} inside at once{stay}" + self._by_class("zone", name))
        return out

    def _by_class(self, kind: str, name: str) -> str:
        per: dict[str, int] = {}
        for (k, n, cls, d), tl in self.total.items():
            if k == kind and n == name and d not in ("occupancy", "exit"):
                per[cls or "?"] = per.get(cls or "?", 0) + tl.count
        return " (" + ", ".join(f"{c} {v}" for c, v in sorted(per.items())) + ")" if per else ""
