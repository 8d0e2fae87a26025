"""The library surface: forecasts and events for the tracks of your own loop (ultralytics `model.track`,
supervision's ByteTrack, or arrays), through the very objects `track` runs: TrackHistory -> the self-scoring
forecaster (auto selection and spread recalibration included) -> EventEngine -> the annotator.

    model = YOLO("yolo11n.pt")
    forecaster = Forecaster()
    for k, frame in enumerate(frames):
        result = model.track(frame, persist=True, verbose=False)[0]
        fc = forecaster.update(result, time_s=k / fps)   # fc.xy (N, H, 2) pixels at fc.t_s seconds ahead
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.config import (CameraConfig, EventsConfig, TrackRunConfig, ZonesFileConfig, from_dict,
                                  load_yaml)
from pipeline.core.types import Forecasts, Tracks
from pipeline.events.engine import EventEngine
from pipeline.events.types import Event, Overlay
from pipeline.forecast.auto import SelfScoringForecaster, build_forecaster
from pipeline.forecast.history import TrackHistory
from pipeline.outputs.render import Annotator, shade_zones
from pipeline.perception.adapters import as_tracks

COCO_NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 6: "train", 7: "truck"}


def _frame_size(given: tuple[int, int] | None, found: tuple[int, int] | None) -> tuple[int, int]:
    size = given or found
    if size is None:
        raise ValueError("frame_size=(width, height) is needed with supervision Detections or arrays (an "
                         "ultralytics Results carries it)")
    return int(size[0]), int(size[1])


class Forecaster:
    """Each tracked object's future positions, updated once per frame in time order.

    `predictor`: "auto" (the best of lstm, cv and kalman on this camera, by its own scored forecasts), "lstm",
    "cv" or "kalman"; `weights`: an LSTM checkpoint (default: the shipped universal model); `fps`: your source's
    frame rate (sizes the track histories); `config`: a full TrackRunConfig for everything else.
    """

    def __init__(self, predictor: str = "auto", weights: str | Path | None = None,
                 config: TrackRunConfig | None = None, fps: float = 30.0, device: str = "cpu") -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        cfg = config or TrackRunConfig()
        given: dict[str, Any] = {"weights": str(weights)} if weights is not None else {}
        pred = replace(cfg.predictor, kind=predictor, **given)
        self.config = replace(cfg, predictor=pred)
        self.history = TrackHistory(cfg.history, fps)
        self.forecaster: SelfScoringForecaster = build_forecaster(pred, max_gap_s=max(1.0, 2.5 / fps),
                                                                  at_steps=True, device=device)
        self._last_t = -np.inf
        self.tracks = Tracks.empty()  # the last update's tracks (ours: boxes, ids, classes)
        self.frame_size: tuple[int, int] | None = None

    def update(self, tracks: Any, time_s: float, frame_size: tuple[int, int] | None = None) -> Forecasts:
        """Forecasts of every track present with enough history: made at the models' 0.4 s steps and held
        (moved with the object, as drawn) in between. `fresh` says whether this call made new ones."""
        if not time_s > self._last_t:
            raise ValueError(f"time_s must increase from call to call: got {time_s} after {self._last_t}")
        tr, found = as_tracks(tracks)
        size = self.frame_size = _frame_size(frame_size or self.frame_size, found)
        self._last_t = time_s
        self.tracks = tr
        self.history.update(tr, time_s)
        fc = self.forecaster.update(time_s, tr, lambda step_s, obs_len: self.history.windows(
            tr.track_id, time_s, step_s, obs_len, size))
        return replace(fc, served=self.forecaster.served)

    @property
    def fresh(self) -> bool:
        """Whether the last update made new forecasts (a model step) rather than holding the last ones."""
        return bool(self.forecaster.fresh)

    def trails(self, since_s: float = 2.0) -> dict[int, np.ndarray]:
        """Each current track's recent centres (for drawing), over the last `since_s` seconds."""
        since = self._last_t - since_s
        return {int(t): self.history.trail(int(t), since) for t in self.tracks.track_id}

    def summary(self) -> str:
        """One line: how good the forecasts were on this camera so far (scored once their future arrived)."""
        return self.forecaster.summary_line()


def _side(value: Any, cls: type) -> Any:
    """A config dataclass from itself, a dict, or a YAML file path."""
    if value is None or isinstance(value, cls):
        return value
    return from_dict(cls, value if isinstance(value, dict) else load_yaml(value))


class Events:
    """Zone entries and exits, line crossings and conflicts, real and predicted, from forecasts and tracks.

    `zones`: a zones file (path, dict or ZonesFileConfig: zones and lines); `camera`: a calibration (path, dict
    or CameraConfig) for metres and km/h; `names`: class id -> name (default COCO's).
    """

    def __init__(self, zones: Any = None, camera: Any = None, config: EventsConfig | None = None,
                 names: dict[int, str] | None = None, forget_s: float = 2.0) -> None:
        cfg = config or EventsConfig()
        zf = _side(zones, ZonesFileConfig)
        cfg = replace(cfg, camera=_side(camera, CameraConfig) or cfg.camera,
                      **({"zones": zf.zones, "lines": zf.lines} if zf is not None else {}))
        self.config, self.names, self.forget_s = cfg, dict(names or COCO_NAMES), forget_s
        self.engine: EventEngine | None = None  # built at the first frame, when its size is known
        self._frame = -1
        self._overlay: Overlay | None = None
        self.last: tuple[Event, ...] = ()

    def update(self, forecasts: Forecasts, tracks: Any, time_s: float,
               frame_size: tuple[int, int] | None = None) -> list[Event]:
        """This frame's events (real ones when they happen, predicted ones with probability and ETA)."""
        tr, found = as_tracks(tracks)
        if self.engine is None:
            self.engine = EventEngine(self.config, _frame_size(frame_size, found), self.forget_s, self.names)
        self._frame += 1
        ev = self.engine.update(self._frame, time_s, tr, forecasts)
        self._overlay, self.last = ev.overlay, ev.events
        return list(ev.events)

    def draw(self, image: np.ndarray, tracks: Any, forecasts: Forecasts,
             trails: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """A copy of the frame drawn as `track` draws its video: zones, lines, boxes, forecast cones and this
        frame's alerts on their objects' labels."""
        tr, _ = as_tracks(tracks)
        out = image if self._overlay is None else shade_zones(image, self._overlay)
        return Annotator(self.names).draw(out if out is not image else image.copy(), tr, trails or {}, forecasts,
                                          None, self._overlay)
