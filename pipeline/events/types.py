"""What the events stage hands to writers and the annotator: small frozen records, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EVENT_COLUMNS = ["frame", "time_s", "track_id", "other_id", "event", "name", "eta_s", "probability", "distance",
                 "direction", "dwell_s"]
PREDICTED = ("zone_enter_predicted", "line_cross_predicted", "conflict_predicted")
# the real event each predicted one is scored against
REAL_OF = {"zone_enter_predicted": "zone_enter", "line_cross_predicted": "line_cross", "conflict_predicted": "conflict"}


@dataclass(frozen=True)
class Event:
    """One row of events.csv.

    Predicted events: `time_s` is the frame's time and `eta_s` how long after it the event is expected.
    Real events: `time_s` is when it happened (interpolated between frames for crossings), `frame` the frame
    that revealed it. `distance` is metres with a camera, body heights without.
    """

    frame: int
    time_s: float
    track_id: int
    event: str
    name: str = ""
    other_id: int | None = None
    eta_s: float | None = None
    probability: float | None = None
    distance: float | None = None
    direction: str = ""
    probability_raw: float | None = None  # predicted events: the share of sample paths, before recalibration
    dwell_s: float | None = None  # zone_exit: seconds since the entry it closes (None: the track was first seen inside)

    def row(self) -> list[str]:
        def num(v: float | None, nd: int) -> str:
            return "" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"

        return [str(self.frame), f"{self.time_s:.4f}", str(self.track_id),
                "" if self.other_id is None else str(self.other_id), self.event, self.name, num(self.eta_s, 3),
                num(self.probability, 3), num(self.distance, 3), self.direction, num(self.dwell_s, 3)]

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready values (numbers as numbers, empty fields as null)."""
        out: dict[str, object] = {}
        for k, v in zip(EVENT_COLUMNS, self.row()):
            out[k] = None if v == "" else v if k in ("event", "name", "direction") else float(v) if "." in v else int(v)
        return out


@dataclass(frozen=True)
class Alert:
    """A track expected to enter a zone / cross a line soon, for the annotator."""

    track_id: int
    name: str
    eta_s: float
    probability: float


@dataclass(frozen=True)
class ConflictMark:
    """A pair forecast to come close, for the annotator (pixel foot points at now and at the closest time)."""

    a: int
    b: int
    ttc_s: float
    distance: float
    points: np.ndarray  # (2, 2) pixel foot points of a and b now


@dataclass(frozen=True)
class Overlay:
    """Everything the annotator draws for events, already in pixels."""

    zones: tuple[tuple[str, np.ndarray], ...] = ()  # (name, (V, 2) pixel polygon)
    lines: tuple[tuple[str, np.ndarray], ...] = ()  # (name, (2, 2) pixel points)
    alerts: tuple[Alert, ...] = ()
    conflicts: tuple[ConflictMark, ...] = ()
    unit: str = "m"
    arrows: tuple[tuple[str, np.ndarray, np.ndarray], ...] = ()  # (direction name, tail, head) pixels per line side


@dataclass(frozen=True)
class EventFrame:
    """One frame's events and ground-plane columns, aligned with that frame's Tracks and Forecasts."""

    events: tuple[Event, ...] = ()
    ground: np.ndarray | None = None  # (N, 3) x_m, y_m, speed_mps per track (None without a camera)
    pred_ground: np.ndarray | None = None  # (N, H, 2) x_m, y_m per forecast point (None without a camera)
    overlay: Overlay = field(default_factory=Overlay)
