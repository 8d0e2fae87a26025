"""The events stage of one run: foot points onto the ground, zones, lines, conflicts and alert scoring.

It sits after forecasting (frame -> tracks -> forecasts -> events) and turns each frame's tracks and
forecasts into an `EventFrame`: rows for events.csv, ground columns for the CSVs, and what the video shows.
Forecast uncertainty enters as sample paths drawn from the published spread (the bivariate t of std and std2,
recalibrated on the camera by default): one radius quantile and one direction per sample, the same along the
whole path (errors of a forecast grow together, they do not jitter step to step).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pipeline.core.config import EventsConfig
from pipeline.events.calibration import Camera, CalibrationReport, GroundMotion, camera_from_config
from pipeline.core.tables import write_csv_atomic
from pipeline.events.conflicts import CONFLICT_COLUMNS, ConflictMonitor, ConflictRules, PairRule
from pipeline.events.counts import TrafficCounts
from pipeline.events.reliability import ProbabilityCalibrator, ReliabilitySettings
from pipeline.events.scoring import AlertScorer, key_of
from pipeline.events.types import PREDICTED, Event, EventFrame, Overlay
from pipeline.events.zones import ZoneMonitor, build_geometry, direction_arrows, to_pixels
from pipeline.forecast.calibration import sample_offsets
from pipeline.core.types import Forecasts, Tracks

STATE_FORGET_S = 30.0  # a track's side of each line / zone is kept this long unseen: a re-found id does not count twice
DENSE_STEP_S = 0.1  # forecasts are tested on this time grid (crossings between forecast steps count too)


def foot_points(xyxy: np.ndarray) -> np.ndarray:
    """(N, 2) bottom centre of each box: where the object stands on the ground."""
    return np.stack([(xyxy[..., 0] + xyxy[..., 2]) / 2, xyxy[..., 3]], axis=-1)


class EventEngine:
    """Per-run events state; `update` once per frame, in frame order."""

    def __init__(self, cfg: EventsConfig, frame_size: tuple[int, int], forget_s: float,
                 names: Mapping[int, str] | None = None) -> None:
        self.cfg = cfg
        self.names = dict(names or {})  # class id -> name, for the counts
        self.camera: Camera | None = None
        self.report: CalibrationReport | None = None
        if cfg.camera is not None:
            self.camera, self.report = camera_from_config(cfg.camera)
        zones, lines = build_geometry(cfg, self.camera, frame_size)
        # alert probabilities recalibrated from this run's own scored alerts (None: the raw share of sample paths)
        self.reliability = ProbabilityCalibrator(ReliabilitySettings(cfg.recalibrate_window, cfg.recalibrate_warmup)) \
            if cfg.recalibrate else None
        said = self.reliability if self.reliability is not None else (lambda kind, p: p)
        hyst = cfg.hysteresis_m if self.camera else cfg.hysteresis_bh
        self.zones = ZoneMonitor(zones, lines, cfg.alert_probability, max(forget_s, STATE_FORGET_S), said, hyst)
        thr = cfg.conflict_distance_m if self.camera else cfg.conflict_distance_bh
        rules = ConflictRules(cfg.conflict_ttc_s, cfg.pet_max_s, cfg.serious_ttc_s, cfg.serious_pet_s,
                              {k: (float(v[0]), float(v[1])) for k, v in cfg.footprints_m.items()})
        self.conflicts = ConflictMonitor(thr, rules, cfg.alert_probability, said, PairRule(cfg.conflict_pairs),
                                         self.camera is not None, cfg.conflict_alert,
                                         cfg.conflict_persist_s)
        self.motion = GroundMotion(cfg.speed_window_s, forget_s, 2 * cfg.hysteresis_m) if self.camera else None
        self.scorer = AlertScorer(cfg.score_tolerance_s, self.reliability)
        self.static = Overlay(tuple((z.name, to_pixels(z.polygon, self.camera, z.name)) for z in zones),
                              tuple((ln.name, to_pixels(np.stack([ln.a, ln.b]), self.camera, ln.name)) for ln in lines),
                              unit="m" if self.camera else "bh",
                              arrows=tuple(a for ln in lines for a in direction_arrows(ln, self.camera)))
        self.counts: Counter[str] = Counter()
        self.traffic = TrafficCounts([(ln.name, ln.directions) for ln in lines], [z.name for z in zones],
                                     cfg.count_interval_s)
        self._classes: dict[int, tuple[str, float]] = {}  # track -> (class name, last seen)
        self._rng = np.random.default_rng(0)  # per run: the same video gives the same events
        self._forecast_since: dict[int, list[float]] = {}  # track -> [first, last] forecast time
        self._forget_s = forget_s
        self.conflict_starts: list[tuple[int, int]] = []  # pairs whose real conflict began at the last update (mqtt)

    def update(self, frame: int, t: float, tracks: Tracks, fc: Forecasts) -> EventFrame:
        foot = foot_points(tracks.xyxy)
        ground = self.camera.to_ground(foot) if self.camera else foot
        unit = np.ones(len(tracks)) if self.camera else (tracks.xyxy[:, 3] - tracks.xyxy[:, 1]).astype(np.float64)
        self._note_forecasts(t, fc)
        events = self._real(frame, t, tracks, ground, unit)
        pred_px = self._forecast_feet(tracks, fc)
        overlay = self.static
        if len(fc) and len(fc.t_future_s):
            new, overlay = self._predicted(frame, t, tracks, fc, pred_px)
            events += new
        self.scorer.update(t)
        self.counts.update(e.event for e in events)
        self._note_classes(t, tracks)
        self.traffic.update(t, events, {k: v[0] for k, v in self._classes.items()},
                            self.zones.inside_now(t - self._forget_s))
        cols = None
        if self.motion is not None:
            cols = np.column_stack([ground, self.motion.update(t, tracks.track_id, ground)])
        pred_ground = self.camera.to_ground(pred_px) if self.camera is not None else None
        return EventFrame(tuple(events), cols, pred_ground, overlay)

    def _note_classes(self, t: float, tracks: Tracks) -> None:
        """Each track's class name, kept while its passages may still be counted (bounded)."""
        for tid, name in zip(tracks.track_id.tolist(), self._class_names(tracks.class_id)):
            self._classes[tid] = (name, t)
        for tid in [k for k, (_, last) in self._classes.items() if t - last > STATE_FORGET_S]:
            del self._classes[tid]

    def _note_forecasts(self, t: float, fc: Forecasts) -> None:
        """When each track was first forecast (a real event before that could not have been announced);
        tracks not forecast for `forget_s` are dropped, so the map stays bounded on endless streams."""
        for tid in fc.track_id.tolist():
            self._forecast_since.setdefault(tid, [t, t])[1] = t
        for tid in [k for k, (_, last) in self._forecast_since.items() if t - last > self._forget_s]:
            del self._forecast_since[tid]

    def _forecastable(self, tids: tuple[int, ...], when: float) -> bool:
        return all(self._forecast_since.get(tid, (np.inf,))[0] < when for tid in tids)

    def _class_names(self, class_id: np.ndarray) -> list[str]:
        return [self.names.get(int(c), str(int(c))) for c in class_id.tolist()]

    def _real(self, frame: int, t: float, tracks: Tracks, ground: np.ndarray, unit: np.ndarray) -> list[Event]:
        ids = tracks.track_id
        events = self.zones.real(frame, t, ids, ground, unit)
        for e in events:
            if e.event in ("zone_enter", "line_cross"):
                self.scorer.add_real(key_of(e), e.event, e.name, e.time_s, self._forecastable((e.track_id,), e.time_s))
        conflict_events, starts = self.conflicts.real(frame, t, ids, ground, unit, self._class_names(tracks.class_id),
                                                      tracks.xyxy.astype(np.float64))
        self.conflict_starts = starts
        for a, b in starts:
            self.scorer.add_real(("conflict", a, b), "conflict", "", t, self._forecastable((a, b), t))
        return events + conflict_events

    def open_alerts(self) -> set[tuple]:
        """Scoring keys of the alerts the monitors still hold (raised; not yet happened, withdrawn or past their
        horizon): what pipeline/outputs/mqtt.py needs to tell a withdrawn alert from one still standing."""
        lines = {ln.name for ln in self.zones.lines}
        return ({("line_cross" if name in lines else "zone_enter", tid, name) for tid, name in self.zones._active}
                | {("conflict", a, b) for a, b in self.conflicts._active})

    def _forecast_feet(self, tracks: Tracks, fc: Forecasts) -> np.ndarray:
        """(M, H, 2) forecast foot points in pixels: the forecast box's bottom centre, else the centre moved
        down by half the current box height."""
        if fc.boxes is not None:
            return foot_points(fc.boxes)
        by_id = {int(t): i for i, t in enumerate(tracks.track_id)}
        rows = [by_id.get(int(t)) for t in fc.track_id]
        half = np.array([(tracks.xyxy[r, 3] - tracks.xyxy[r, 1]) / 2 if r is not None else 0.0 for r in rows])
        return fc.centers + np.stack([np.zeros_like(half), half], axis=-1)[:, None, :]

    def _predicted(self, frame: int, t: float, tracks: Tracks, fc: Forecasts, pred_px: np.ndarray) -> tuple[list[Event], Overlay]:
        by_id = {int(tid): i for i, tid in enumerate(tracks.track_id)}
        keep = np.array([int(tid) in by_id for tid in fc.track_id])
        rows = np.array([by_id[int(tid)] for tid in fc.track_id[keep]], dtype=np.int64)
        ids = fc.track_id[keep]
        now_px = foot_points(tracks.xyxy[rows])
        spread = None if fc.std is None else (fc.std[keep], (2 * fc.std if fc.std2 is None else fc.std2)[keep])
        times, paths = self._sample_paths(now_px, pred_px[keep], spread, fc.t_future_s)
        horizon = float(fc.t_future_s[-1])
        if self.camera is not None:
            paths = self.camera.to_ground(paths)
            unit = np.ones(len(ids))
        else:
            unit = (tracks.xyxy[rows, 3] - tracks.xyxy[rows, 1]).astype(np.float64)
        zev, alerts = self.zones.predicted(frame, t, ids, paths, times, horizon)
        cev, marks = self.conflicts.predicted(frame, t, ids, paths, unit, times, horizon, now_px,
                                              self._class_names(tracks.class_id[rows]))
        for e in zev + cev:
            self.scorer.add_alert(e, horizon)
        return zev + cev, Overlay(self.static.zones, self.static.lines, tuple(alerts), tuple(marks), self.static.unit,
                                  self.static.arrows)

    def _sample_paths(self, now: np.ndarray, mean: np.ndarray, spread: tuple[np.ndarray, np.ndarray] | None,
                      t_future: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T,) dense times from 0 (now) to the horizon and (M, S, T, 2) pixel sample paths; sample 0 is the mean."""
        times = np.concatenate([[0.0], t_future])
        dense = np.linspace(0.0, times[-1], int(np.ceil(times[-1] / DENSE_STEP_S)) + 1)
        pos = np.interp(dense, times, np.arange(len(times)))
        k0 = np.minimum(np.floor(pos).astype(int), len(times) - 2)
        f = (pos - k0)[None, :, None]
        full = np.concatenate([now[:, None], mean], axis=1)  # (M, H+1, 2)
        m = full[:, k0] * (1 - f) + full[:, k0 + 1] * f
        if spread is None or self.cfg.samples == 1:
            return dense, m[:, None]

        def on_dense(a: np.ndarray) -> np.ndarray:
            full_a = np.concatenate([np.zeros_like(now)[:, None], a], axis=1)
            return full_a[:, k0] * (1 - f) + full_a[:, k0 + 1] * f

        u = self._rng.random((len(now), self.cfg.samples))
        theta = self._rng.random((len(now), self.cfg.samples)) * 2 * np.pi
        u[:, 0] = 0.0  # sample 0 is the mean path
        return dense, m[:, None] + sample_offsets(on_dense(spread[0]), on_dense(spread[1]), u, theta)

    def summary_lines(self, served: str) -> list[str]:
        """Speeds, event counts and alert scores for the closing summary."""
        self.scorer.finish()
        out = [self.motion.summary_line()] if self.motion is not None else []
        order = [k for k in ("zone_enter", "zone_exit", "line_cross", "conflict", *PREDICTED) if self.counts[k]]
        out.append("events: " + (", ".join(f"{self.counts[k]} {k}" for k in order) or "none"))
        conflicts = self.conflict_summary()
        return out + self.traffic.summary_lines() + ([conflicts] if conflicts else []) + self.scorer.summary_lines(served)

    def finish(self) -> None:
        """At the end of a run: conflicts still open are written as they stand."""
        self.conflicts.finish()

    def write_scores(self, path: Path) -> None:
        self.scorer.write(path)

    def conflict_places(self) -> list[tuple[float, float, str]]:
        """Each conflict so far as (pixel x, pixel y, severity): where the pair was at its closest."""
        out = []
        for row in self.conflicts.rows:
            r = dict(zip(CONFLICT_COLUMNS, row))
            if not (r["x"] and r["y"]):
                continue
            p = np.array([[float(r["x"]), float(r["y"])]])
            px = self.camera.to_image(p)[0] if self.camera is not None else p[0]
            if np.isfinite(px).all():
                out.append((float(px[0]), float(px[1]), r["severity"]))
        return out

    def conflict_summary(self) -> str | None:
        """e.g. `conflicts: 3 (serious 1, potential 2; crossing 2, head-on 1)`; None without any."""
        rows = [dict(zip(CONFLICT_COLUMNS, r)) for r in self.conflicts.rows]
        if not rows:
            return None
        sev = Counter(r["severity"] for r in rows)
        kinds = Counter(r["type"] for r in rows)
        return (f"conflicts: {len(rows)} ({', '.join(f'{k} {v}' for k, v in sorted(sev.items()))}; "
                f"{', '.join(f'{k} {v}' for k, v in kinds.most_common())})")

    def write_conflicts(self, path: Path) -> None:
        """conflicts.csv: one row per encounter that ended, with its indicators."""
        write_csv_atomic(path, CONFLICT_COLUMNS, self.conflicts.rows)

    def write_counts(self, path: Path) -> None:
        """counts.csv: every interval so far and the totals (only with lines or zones)."""
        self.traffic.write(path)
