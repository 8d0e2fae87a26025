"""Trajectories replayed as a camera would deliver them, through exactly what `track` runs after the tracker.

A recording (one scene of a loader's trajectories) becomes frames of `Tracks`: metric points are boxes one body
height (1.7 m) tall standing on the point, drawn at PX_PER_M pixels per metre, and a scale camera maps the foot
points back to metres, so events are in metres as with `--camera`. Labels become COCO class names (DUT's `veh`
is a car, `ped` a person). Each frame then goes TrackHistory -> SelfScoringForecaster (at the model's step) ->
EventEngine: the same objects `track` builds, no copy of their logic. Used by `run.py eval-events` and the
calibration benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from pipeline.core.config import CameraConfig, EventsConfig, HistoryConfig, PredictorConfig
from pipeline.core.types import Forecasts, Tracks
from pipeline.events.engine import EventEngine
from pipeline.forecast.auto import SelfScoringForecaster, WindowFn, build_forecaster
from pipeline.forecast.features import Window
from pipeline.forecast.history import TrackHistory
from pipeline.learning.datasets import Trajectory

PX_PER_M = 50.0
BODY_M = 1.7
NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
LABELS = {"ped": 0, "pedestrian": 0, "person": 0, "skater": 0, "biker": 1, "bicycle": 1, "cyclist": 1, "veh": 2,
          "car": 2, "cart": 2, "vehicle": 2, "motorcycle": 3, "bus": 5, "truck": 7}


@dataclass
class Recording:
    """One scene as frames: (time from its start, Tracks in pixels), the frame size, and whether it is metric."""

    name: str
    frames: list[tuple[float, Tracks]]
    size: tuple[int, int]
    metric: bool
    offset_px: tuple[float, float] = (0.0, 0.0)  # pixel = metres * PX_PER_M - offset (metric data)


def recordings(trajs: Sequence[Trajectory], minutes: float | None = None) -> list[Recording]:
    """Each scene (key before ':') of `trajs`, its first `minutes` (all without), as frames."""
    scenes: dict[str, list[Trajectory]] = {}
    for tr in trajs:
        scenes.setdefault(tr.key.split(":")[0], []).append(tr)
    return [r for name, trs in scenes.items() if (r := _recording(name, trs, minutes)) is not None]


def _recording(name: str, trs: list[Trajectory], minutes: float | None) -> Recording | None:
    t0 = min(float(t.times[0]) for t in trs)
    rows = []
    metric = not trs[0].has_box
    for tid, tr in enumerate(trs, start=1):
        keep = np.ones(len(tr.times), bool) if minutes is None else tr.times <= t0 + 60 * minutes
        if not keep.any():
            continue
        xywh = tr.xywh[keep].astype(np.float64)
        if metric:  # a box standing on the point, 1.7 m tall
            xywh = np.column_stack([xywh[:, 0] * PX_PER_M, xywh[:, 1] * PX_PER_M - BODY_M * PX_PER_M / 2,
                                    np.full(len(xywh), 0.35 * BODY_M * PX_PER_M), np.full(len(xywh), BODY_M * PX_PER_M)])
        cls = LABELS.get(tr.label.lower(), 0)
        rows += [(round(float(t) - t0, 4), tid, cls, b) for t, b in zip(tr.times[keep], xywh)]
    if not rows:
        return None
    boxes = np.array([r[3] for r in rows])
    off = np.array([boxes[:, 0].min() - boxes[:, 2].max(), boxes[:, 1].min() - boxes[:, 3].max()]) - 20
    by_time: dict[float, list] = {}
    for t, tid, cls, b in rows:
        by_time.setdefault(t, []).append((tid, cls, b - [off[0], off[1], 0, 0]))
    frames = []
    for t in sorted(by_time):
        ids = np.array([r[0] for r in by_time[t]])
        classes = np.array([r[1] for r in by_time[t]])
        b = np.array([r[2] for r in by_time[t]])
        xyxy = np.column_stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2])
        frames.append((t, Tracks(xyxy, np.ones(len(ids)), classes, ids)))
    size = (int(boxes[:, 0].max() - off[0] + boxes[:, 2].max() + 20), int(boxes[:, 1].max() - off[1] + boxes[:, 3].max() + 20))
    return Recording(name, frames, size, metric, (float(off[0]), float(off[1])))


def fps_of(rec: Recording) -> float:
    dts = np.diff([t for t, _ in rec.frames])
    dts = dts[dts > 0]
    return 1.0 / float(np.median(dts)) if len(dts) else 10.0


def events_config(rec: Recording, events: EventsConfig) -> EventsConfig:
    """`events` with the recording's camera (metric data: pixels back to the data's own metres, so events,
    zones and lines are in them, as with --camera)."""
    if not rec.metric:
        return events
    w, h = rec.size
    px = [[0.0, 0.0], [float(w), 0.0], [float(w), float(h)], [0.0, float(h)]]
    world = [[(x + rec.offset_px[0]) / PX_PER_M, (y + rec.offset_px[1]) / PX_PER_M] for x, y in px]
    return replace(events, camera=CameraConfig(image_points=px, world_points=world))


class FrameForecaster(Protocol):
    """What a replay needs of a forecaster: this frame's forecasts from the tracks and their history windows."""

    def update(self, time_s: float, tracks: Tracks, windows: WindowFn) -> Forecasts: ...


def build_engine(rec: Recording, events: EventsConfig, history: HistoryConfig | None = None) -> EventEngine:
    """The events stage `track` would build for this recording (metric data: with its camera)."""
    return EventEngine(events_config(rec, events), rec.size, (history or HistoryConfig()).max_lost_s, NAMES)


def run_frames(rec: Recording, forecaster: FrameForecaster, engine: EventEngine,
               history: HistoryConfig | None = None) -> None:
    """Every frame of the recording through history, `forecaster` and `engine`, as `track` runs them."""
    hist = TrackHistory(history or HistoryConfig(), fps_of(rec))
    for k, (t, tracks) in enumerate(rec.frames):
        hist.update(tracks, t)

        def windows(step_s: float, obs_len: int, tr: Tracks = tracks, now: float = t) -> tuple[np.ndarray, Window]:
            return hist.windows(tr.track_id, now, step_s, obs_len, rec.size)

        engine.update(k, t, tracks, forecaster.update(t, tracks, windows))
    engine.scorer.finish()


def replay(rec: Recording, predictor: PredictorConfig, events: EventsConfig,
           history: HistoryConfig | None = None, min_lead_s: float = 0.0) -> tuple[SelfScoringForecaster, EventEngine]:
    """Every frame of the recording through history, forecaster and events; both, with their scores."""
    forecaster = build_forecaster(predictor, max_gap_s=max(1.0, 2.5 / fps_of(rec)), at_steps=True)
    engine = build_engine(rec, events, history)
    engine.scorer.min_lead_s = min_lead_s
    run_frames(rec, forecaster, engine, history)
    return forecaster, engine
