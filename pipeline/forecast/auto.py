"""Run several predictors side by side, score them online, and serve the one that is best on this camera.

`--predictor auto` runs lstm, cv and kalman every frame (each on its own time grid), feeds all of them to the
`ForecastScorer`, and serves the member with the lowest recent ADE (at 2 s, or the longest scored horizon)
once `auto_warmup` windows are scored; a fallback member is served before that. A switch needs a margin
(hysteresis), so the drawn forecasts do not flicker between members. A single predictor goes through the
same class, so every run is self-scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import cast

import numpy as np

from pipeline.core.config import PredictorConfig
from pipeline.forecast.calibration import CalibrationSettings, SpreadCalibrator, gaussian_regions
from pipeline.forecast.features import Window
from pipeline.forecast.predictors import Predictor, build_predictor, forecast
from pipeline.forecast.scoring import ForecastScorer, HorizonScore, TrackScale, score_horizons, selection_horizon
from pipeline.core.types import Forecasts, Tracks

MEMBERS = ("lstm", "cv", "kalman")
SERVED = "auto"  # the scores of the forecasts auto actually served (its members' picks over time)
YOUNG = "young"  # forecasts of tracks too young for the members' window (recalibrated on their own)
WindowFn = Callable[[float, int], tuple[np.ndarray, Window]]  # (step_s, obs_len) -> (track ids, windows)


@dataclass(frozen=True)
class AutoSettings:
    """How `auto` picks its member."""

    warmup: int = 8  # scored windows before the scores are trusted; the fallback is served until then
    fallback: str = "kalman"
    margin: float = 0.05  # switch only to a member better by more than this fraction
    recent: int = 250  # the comparison looks at this many most recent scored windows (10-20 s of a busy scene)
    dwell: int = 25  # after a switch, at least this many newly scored windows before the next one


class AutoSelector:
    """Fallback until warm, then the best recent member.

    It switches only to a member better by more than `margin`, and not again before `dwell` more windows are
    scored: recent means of correlated windows are noisy, and a flickering choice would redraw every path.
    """

    def __init__(self, names: Sequence[str], settings: AutoSettings) -> None:
        if settings.fallback not in names:
            raise ValueError(f"fallback {settings.fallback!r} is not one of {list(names)}")
        self.names, self.settings = list(names), settings
        self.served = settings.fallback
        self.switches = 0
        self._switched_at = 0  # windows scored at the last switch

    def warm(self, scored: int) -> bool:
        return scored >= self.settings.warmup

    def choose(self, scored: int, recent: Mapping[str, float]) -> str:
        """The member to serve now, given the windows scored so far and each member's recent ADE."""
        known = {n: v for n, v in recent.items() if n in self.names and math.isfinite(v)}
        settled = self.switches == 0 or scored - self._switched_at >= self.settings.dwell
        if not self.warm(scored) or not known or not settled:
            return self.served
        best = min(known, key=lambda n: (known[n], self.names.index(n)))
        current = known.get(self.served, math.inf)
        if best != self.served and known[best] < (1.0 - self.settings.margin) * current:
            self.served, self._switched_at = best, scored
            self.switches += 1
        return self.served


def body_height(win: Window) -> np.ndarray:
    """Source units per body height of each window: median box height, 1 for point data (no boxes)."""
    med = np.median(win.xywh[:, :, 3], axis=1) if win.xywh.shape[1] else np.ones(len(win.xywh))
    return np.where(win.has_box, np.maximum(med, 1e-3), 1.0)


Grid = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]


def _on_grid(fc: Forecasts, t: np.ndarray) -> Grid:
    """A member's centres, boxes, std and std2 on another member's future times (linear, held at the ends)."""
    if len(fc.t_future_s) == len(t) and np.allclose(fc.t_future_s, t, atol=1e-6):
        return fc.centers, fc.boxes, fc.std, fc.std2

    def interp(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        out = np.empty((a.shape[0], len(t), a.shape[2]))
        for i in range(a.shape[0]):
            for c in range(a.shape[2]):
                out[i, :, c] = np.interp(t, fc.t_future_s, a[i, :, c])
        return out

    return cast(np.ndarray, interp(fc.centers)), interp(fc.boxes), interp(fc.std), interp(fc.std2)


def serve(order: Sequence[str], fcs: Mapping[str, Forecasts], track_order: np.ndarray) -> Forecasts:
    """Each track's forecast from the first member in `order` that forecast it, on the first member's grid."""
    first = fcs[order[0]]
    if len(order) == 1 or set(first.track_id.tolist()) >= {int(i) for f in fcs.values() for i in f.track_id}:
        return first
    t = first.t_future_s
    grids = {n: _on_grid(fcs[n], t) for n in order}
    src: dict[int, tuple[str, int]] = {}
    for n in reversed(order):  # earlier members override later ones
        src.update({int(tid): (n, r) for r, tid in enumerate(fcs[n].track_id.tolist())})
    ids = [int(i) for i in track_order.tolist() if int(i) in src]
    if not ids:
        return Forecasts.empty(t)
    picks = [(grids[src[i][0]], src[i][1]) for i in ids]
    centers = np.stack([g[0][r] for g, r in picks])
    boxes = np.stack([cast(np.ndarray, g[1])[r] for g, r in picks]) if all(g[1] is not None for g, _ in picks) else None
    std = np.stack([cast(np.ndarray, g[2])[r] for g, r in picks]) if all(g[2] is not None for g, _ in picks) else None
    std2 = np.stack([cast(np.ndarray, g[3])[r] for g, r in picks]) if std is not None and all(g[3] is not None for g, _ in picks) else None
    return Forecasts(np.asarray(ids, np.int64), t, centers, boxes=boxes, std=std, std2=std2)


class SelfScoringForecaster:
    """Forecasts with its member predictors (every frame, or at each model step), scores them all, serves one."""

    def __init__(self, members: Mapping[str, Predictor], settings: AutoSettings | None, max_gap_s: float = 1.0,
                 at_steps: bool = False, young: Predictor | None = None,
                 calibration: CalibrationSettings | None = None) -> None:
        if not members or (settings is None and len(members) != 1):
            raise ValueError("one predictor, or several with auto settings")
        self.members = dict(members)
        # forecasts the tracks too young for every member's window; served, never scored (no member has them)
        self.young = young
        self.young_forecasts = 0  # tracks forecast by `young` so far (one per track and step)
        # at_steps: forecast only when the video clock crosses the next point of the models' step grid (0.4 s),
        # the rate the models were trained at; between steps the last forecasts are held (`fresh` False)
        self.step_s = min(float(p.step_s) for p in self.members.values()) if at_steps else 0.0
        self._grid: tuple[float, int, float] | None = None  # (grid origin, last step index, last time)
        self._held: Forecasts | None = None
        self._held_at = 0.0  # video time the held forecasts were made
        self._held_from: dict[int, np.ndarray] = {}  # track id -> its centre when they were made
        self.fresh = True  # whether the last update() forecast (False: it returned the held forecasts)
        horizons = score_horizons(min(p.step_s * p.horizon for p in self.members.values()))
        recent = (settings or AutoSettings()).recent
        scored = list(self.members) + ([SERVED] if settings else [])  # what auto really wrote is scored too
        # calibration None: the trained spreads are written as they are (std2 = 2 std, a Gaussian)
        self.calibrator = SpreadCalibrator(calibration) if calibration is not None else None
        self.scorer = ForecastScorer(scored, horizons, recent=recent, max_gap_s=max_gap_s,
                                     extra=[YOUNG] if young is not None else [], calibrator=self.calibrator)
        self.horizon_s = selection_horizon(horizons)
        self.selector = AutoSelector(list(self.members), settings) if settings else None

    @property
    def served(self) -> str:
        return self.selector.served if self.selector else next(iter(self.members))

    def update(self, time_s: float, tracks: Tracks, windows: WindowFn) -> Forecasts:
        """This frame's served forecasts; all members' forecasts go to the scorer first.

        Between steps (at_steps) nothing is forecast: the scorer still sees where the tracks are, and the
        last forecasts of the tracks still present are returned (`fresh` is False).
        """
        self.fresh = self._due(time_s)
        if not self.fresh:
            self.scorer.update(time_s, tracks, {}, TrackScale(np.zeros(0, np.int64), np.zeros(0)))
            return self._hold(tracks, time_s)
        self._held_at = time_s
        self._held_from = dict(zip(tracks.track_id.tolist(), tracks.centers))  # where each track was
        raw, scale = self._forecast_all(windows)
        cal = self.calibrator  # scored for their spread only once every member's is recalibrated at every step
        warm = cal is None or all(cal.warm(n, len(f.t_future_s)) for n, f in raw.items())
        fcs = {n: self._publish(n, f) for n, f in raw.items()}
        raw_std = {n: f.std for n, f in raw.items()}
        if self.selector is None:
            served = fcs[self.served]
        else:
            self.selector.choose(self.scorer.scored(self.horizon_s), self.scorer.recent_ade(self.horizon_s))
            order = self._order()
            served = serve(order, fcs, tracks.track_id)
            fcs[SERVED], raw_std[SERVED] = served, serve(order, raw, tracks.track_id).std
        young = self._young(served, windows)
        if young is not None:
            fcs[YOUNG], raw_std[YOUNG] = self._publish(YOUNG, young), young.std
            served = serve(["served", YOUNG], {"served": served, YOUNG: fcs[YOUNG]}, tracks.track_id)
        self.scorer.update(time_s, tracks, fcs, scale, raw_std, warm)
        self._held = served
        return self._held

    def _publish(self, name: str, fc: Forecasts) -> Forecasts:
        """A forecast with the spread it is written with: recalibrated on this camera, or the trained one. The
        young tracks' Kalman borrows the Kalman member's recalibration until it has enough points of its own."""
        if self.calibrator is None:
            return gaussian_regions(fc)
        fallback = "kalman" if name == YOUNG and "kalman" in self.members else None
        return self.calibrator.apply(name, fc, fallback)

    def _young(self, served: Forecasts, windows: WindowFn) -> Forecasts | None:
        """The young predictor's forecasts of the tracks no member could forecast yet (None: there are none)."""
        if self.young is None:
            return None
        ids, win = windows(self.young.step_s, self.young.obs_len)
        new = ~np.isin(ids, served.track_id)
        if not new.any():
            return None
        young = forecast(self.young, ids[new], win.take(new))
        self.young_forecasts += len(young)
        return young

    def _due(self, time_s: float) -> bool:
        """True on the first frame at or after each point of the step grid (every frame without at_steps)."""
        if self.step_s <= 0:
            return True
        if self._grid is None or time_s < self._grid[2] - 1e-9:  # first frame, or time went back (a new stream)
            self._grid = (time_s, 0, time_s)
            return True
        origin, last, _ = self._grid
        k = int(math.floor((time_s - origin) / self.step_s + 1e-6))
        self._grid = (origin, max(k, last), time_s)
        return k > last

    def _hold(self, tracks: Tracks, time_s: float) -> Forecasts:
        """The last forecasts, of the tracks seen in this frame, on this frame's clock and from where they are now.

        Their times count from now (made 0.1 s ago, the 1 s point is 0.9 s ahead), so drawn time ticks, ETAs
        and events stay right between steps; each path is moved by how far the object now is from where that
        forecast put it at this moment, so it starts at the object (for steady motion: what a fresh forecast
        would say). Held for less than a step, so every point is still ahead.
        """
        held = self._held
        if held is None:
            return Forecasts.empty(np.zeros(0))
        age = max(0.0, time_s - self._held_at)
        if not len(held.t_future_s):
            return held
        keep = np.isin(held.track_id, tracks.track_id)
        ids = held.track_id[keep]
        now = dict(zip(tracks.track_id.tolist(), tracks.centers))
        known = np.array([tid in self._held_from for tid in ids.tolist()], bool)
        start = np.array([self._held_from.get(tid, now[tid]) for tid in ids.tolist()]).reshape(-1, 2)
        # every path at the same age: one interpolation weight for all of them
        times = np.concatenate([[0.0], held.t_future_s])
        full = np.concatenate([start[:, None], held.centers[keep]], axis=1)
        k = int(np.clip(np.searchsorted(times, age, side="right"), 1, len(times) - 1))
        f = float(np.clip((age - times[k - 1]) / (times[k] - times[k - 1]), 0.0, 1.0))
        expected = full[:, k - 1] * (1 - f) + full[:, k] * f
        current = np.array([now[tid] for tid in ids.tolist()]).reshape(-1, 2)
        shift = np.where(known[:, None], current - expected, 0.0)
        boxes = None if held.boxes is None else held.boxes[keep] + np.tile(shift, 2)[:, None, :]
        return Forecasts(ids, held.t_future_s - age, held.centers[keep] + shift[:, None, :], boxes=boxes,
                         std=None if held.std is None else held.std[keep],
                         std2=None if held.std2 is None else held.std2[keep])

    def _forecast_all(self, windows: WindowFn) -> tuple[dict[str, Forecasts], TrackScale]:
        """Each member on its own grid; windows built once per distinct (step_s, obs_len)."""
        cache: dict[tuple[float, int], tuple[np.ndarray, Window]] = {}
        fcs = {}
        for name, p in self.members.items():
            key = (round(float(p.step_s), 9), int(p.obs_len))
            if key not in cache:
                cache[key] = windows(p.step_s, p.obs_len)
            fcs[name] = forecast(p, *cache[key])
        # one scale per track for every member (fair): the longest window, which every forecast track has
        ids, win = cache[max(cache, key=lambda k: (k[0] * (k[1] - 1), k[1]))]
        return fcs, TrackScale(ids, body_height(win))

    def _order(self) -> list[str]:
        """Served member first, then the others best recent score first (for tracks it cannot forecast)."""
        recent = self.scorer.recent_ade(self.horizon_s)
        rest = sorted((n for n in self.members if n != self.served),
                      key=lambda n: (not math.isfinite(recent[n]), recent[n] if math.isfinite(recent[n]) else 0.0,
                                     list(self.members).index(n)))
        return [self.served, *rest]

    def score_rows(self) -> tuple[list[HorizonScore], str]:
        return self.scorer.scores(), self.served

    def summary_line(self) -> str:
        """e.g. `forecast self-score @2 s: lstm ADE 0.21 / cv 0.24 ... over 812 windows; serving lstm`."""
        h = self.horizon_s
        n = self.scorer.scored(h)
        head = f"forecast self-score @{h:g} s: "
        if n == 0:
            body = f"no window scored yet (a track must be followed {h:g} s past a forecast)"
        else:
            ade = {s.predictor: s.ade_bh for s in self.scorer.scores() if s.horizon_s == h}
            body = " / ".join(f"{k} ADE {v:.3f}" for k, v in ade.items()) + f" body heights over {n} windows"
        young = ""
        if self.young is not None and self.young_forecasts:
            young = (f"; {self.young_forecasts} forecasts of tracks younger than the models' window by kalman on "
                     f"{self.young.step_s * (self.young.obs_len - 1):g} s of history (not scored)")
        if self.selector is None:
            return head + body + young + self.spread_line()
        sel = self.selector
        why = f"fallback until {sel.settings.warmup} windows are scored" if not sel.warm(n) else f"switches: {sel.switches}"
        return head + body + f"; serving {self.served} ({why})" + young + self.spread_line()

    def spread_score(self) -> HorizonScore | None:
        """The written forecasts' score at the selection horizon (auto's when auto serves), None before any."""
        name = SERVED if self.selector is not None else self.served
        row = next((s for s in self.scorer.scores() if s.predictor == name and s.horizon_s == self.horizon_s), None)
        return row if row is not None and math.isfinite(row.in_1sigma) else None

    def spread_line(self) -> str:
        """e.g. `\nforecast spread @2 s (served): 1-sigma holds 0.40, 2-sigma 0.86 (0.393 / 0.865 if honest);
        trained spread 0.08 / 0.30; NLL -1.20 (trained 3.10)`."""
        s = self.spread_score()
        if s is None:
            return ""
        how = "recalibrated on this camera" if self.calibrator is not None else "trained, not recalibrated"
        return (f"\nforecast spread @{s.horizon_s:g} s ({how}): 1-sigma holds {s.in_1sigma:.2f}, 2-sigma "
                f"{s.in_2sigma:.2f} of true positions (0.39 / 0.86 when honest; trained spread {s.in_1sigma_raw:.2f} / "
                f"{s.in_2sigma_raw:.2f}); NLL {s.nll:.2f} (trained {s.nll_raw:.2f}) over {s.spread_windows} windows"
                f"{' after the warm-up' if self.calibrator is not None else ''}")


def build_forecaster(cfg: PredictorConfig, max_gap_s: float = 1.0, at_steps: bool = False,
                     device: str = "cpu") -> SelfScoringForecaster:
    """The configured predictor, or for kind `auto` every member, wrapped for self-scoring (the LSTM on `device`)."""
    cal = CalibrationSettings(cfg.recalibrate_window, cfg.recalibrate_warmup) if cfg.recalibrate else None
    if cfg.kind != "auto":
        members = {cfg.kind: build_predictor(cfg, device)}
        return SelfScoringForecaster(members, None, max_gap_s, at_steps, young_predictor(cfg, members.values()), cal)
    members = {n: build_predictor(replace(cfg, kind=n), device) for n in MEMBERS}
    settings = AutoSettings(warmup=cfg.auto_warmup, fallback=cfg.auto_fallback)
    return SelfScoringForecaster(members, settings, max_gap_s, at_steps, young_predictor(cfg, members.values()), cal)


def young_predictor(cfg: PredictorConfig, members: Iterable[Predictor]) -> Predictor | None:
    """Kalman on the last `min_history_s` (at the cv/kalman step), or None when that is no shorter than the
    longest member window (every track old enough for it is forecast by a member already).

    Kalman on 3 points (0.8 s) forecasts old tracks about as well as on 6 (benchmarks/young_tracks.py), and a
    track's first 2 s are when many people reach a zone: without it they would get no forecast at all.
    """
    obs = int(math.floor(cfg.min_history_s / cfg.step_s + 1e-6)) + 1
    if cfg.step_s * (obs - 1) >= max(p.step_s * (p.obs_len - 1) for p in members) - 1e-9:
        return None
    return build_predictor(replace(cfg, kind="kalman", obs_steps=obs, cv_steps=min(cfg.cv_steps, obs - 1)), "cpu")
