"""Online self-scoring: each forecast is scored when its future arrives, against where the object really was.

A run thereby measures, on its own camera, how far ahead each predictor is right, with no ground truth.
Errors are in body heights (the track's median box height over its observed window when the forecast was
made), so the figures compare across cameras and resolutions. Every predictor is scored on the same windows.
Only forecasts whose future has not fully arrived are held, so memory is bounded by horizon x frame rate.
Time comes from the frame timestamps alone.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.tables import write_csv_atomic
from pipeline.core.types import Forecasts, Tracks
from pipeline.forecast.calibration import SpreadCalibrator, inside, nll

HORIZONS_S = (1.0, 2.0, 3.0)
SELECT_HORIZON_S = 2.0
EPS_S = 1e-6  # two times closer than this are the same instant
SCORE_COLUMNS = ["predictor", "horizon_s", "windows", "ade_bh", "fde_bh", "served", "spread_windows", "in_1sigma",
                 "in_2sigma", "nll", "in_1sigma_raw", "in_2sigma_raw", "nll_raw"]
SPREAD_KEYS = ("in_1sigma", "in_2sigma", "nll", "in_1sigma_raw", "in_2sigma_raw", "nll_raw")


def score_horizons(max_future_s: float) -> tuple[float, ...]:
    """The horizons reported: 1, 2 and 3 s where the forecasts reach them, else the forecast horizon itself."""
    hs = tuple(h for h in HORIZONS_S if h <= max_future_s + EPS_S)
    return hs or (float(max_future_s),)


def selection_horizon(horizons: Sequence[float]) -> float:
    """2 s when scored, else the longest horizon scored."""
    return SELECT_HORIZON_S if SELECT_HORIZON_S in horizons else max(horizons)


@dataclass(frozen=True)
class TrackScale:
    """Source units per body height for the tracks forecast at one frame (median box height; 1 without boxes)."""

    track_id: np.ndarray
    height: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "track_id", np.asarray(self.track_id, np.int64).reshape(-1))
        object.__setattr__(self, "height", np.asarray(self.height, np.float64).reshape(-1))
        if len(self.track_id) != len(self.height):
            raise ValueError("track_id and height must have the same length")

    def of(self, ids: np.ndarray) -> np.ndarray:
        """Scale of each id; NaN where unknown (such a window is not scored)."""
        return _lookup(ids, self.track_id, self.height[:, None])[:, 0]


@dataclass(frozen=True)
class HorizonScore:
    """One predictor at one horizon: windows scored, mean displacement errors in body heights (NaN: none), and
    how honest its spread was at the horizon point: the share of true positions inside the written 1-sigma
    (std) and 2-sigma (std2) ellipses, a calibrated forecast giving 0.393 and 0.865, and the mean negative
    log-likelihood in body heights of the published distribution; `_raw`: the same for the trained spread
    (Gaussian, 2-sigma = 2 std), before recalibration. Spreads are scored on `spread_windows`: the windows
    forecast after every predictor's recalibration had warmed up (all windows without recalibration)."""

    predictor: str
    horizon_s: float
    windows: int
    ade_bh: float
    fde_bh: float
    spread_windows: int = 0
    in_1sigma: float = math.nan
    in_2sigma: float = math.nan
    nll: float = math.nan
    in_1sigma_raw: float = math.nan
    in_2sigma_raw: float = math.nan
    nll_raw: float = math.nan


def _lookup(ids: np.ndarray, table_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values (T, D) rows for ids (M,), NaN rows for ids not in table_ids."""
    out = np.full((len(ids), values.shape[1]), np.nan)
    if len(table_ids) == 0 or len(ids) == 0:
        return out
    order = np.argsort(table_ids, kind="stable")
    pos = np.clip(np.searchsorted(table_ids[order], ids), 0, len(order) - 1)
    hit = table_ids[order][pos] == ids
    out[hit] = values[order[pos[hit]]]
    return out


def _at_times(t: np.ndarray, centers: np.ndarray, times: Sequence[float]) -> np.ndarray:
    """centers (M, H, 2) given at t (H,), linearly interpolated at each of `times` -> (M, len(times), 2).

    A time before the first step has no value (NaN): the current position is not part of a forecast.
    """
    out = np.full((centers.shape[0], len(times), 2), np.nan)
    for j, h in enumerate(times):
        k = int(np.searchsorted(t, h - EPS_S))
        if k < len(t) and abs(t[k] - h) <= EPS_S:
            out[:, j] = centers[:, k]
        elif 0 < k < len(t):
            w = (h - t[k - 1]) / (t[k] - t[k - 1])
            out[:, j] = (1 - w) * centers[:, k - 1] + w * centers[:, k]
    return out


@dataclass
class _Member:
    """One predictor's forecasts for one frame, aligned to the frame's union of track ids."""

    has: np.ndarray  # (M,) bool: this predictor forecast the track
    centers: np.ndarray  # (M, H, 2), NaN rows where it did not
    t: np.ndarray  # (H,) seconds after the frame
    t_idx: np.ndarray  # (H,) index of each step in the frame's target times
    at_h: np.ndarray  # (M, n_h, 2) forecast centres at the scored horizons
    std_raw: np.ndarray | None = None  # (M, H, 2) the trained 1-sigma spread (what recalibration learns from)
    spread_h: np.ndarray | None = None  # (3, M, n_h, 2) written std, std2 and trained std at the horizons


@dataclass
class _Pending:
    """One frame's forecasts waiting for their future; `obs` fills in as later frames arrive."""

    time_s: float
    track_id: np.ndarray  # (M,)
    scale: np.ndarray  # (M,)
    targets: np.ndarray  # (K,) seconds after time_s, increasing: every step of every predictor and the horizons
    h_idx: np.ndarray  # (n_h,) index of each horizon in targets
    members: dict[str, _Member]
    obs: np.ndarray  # (M, K, 2) observed centres; NaN until observed, or when the track was not there
    done: np.ndarray  # (K,) the target time has passed
    warm: bool = True  # every predictor's spread had been recalibrated (past the warm-up) when these were made


def _key(t: np.ndarray | Sequence[float]) -> np.ndarray:
    return np.round(np.asarray(t, np.float64), 6)


class ForecastScorer:
    """Scores every named predictor's forecasts against the tracks that later frames observe.

    A window (a track's forecasts made at one frame) counts at horizon h only if every predictor forecast
    it and every forecast point up to h could be observed: the track was seen on the processed frames just
    before and after the point's time (linearly interpolated between them), at most `max_gap_s` apart.
    """

    def __init__(
        self, names: Sequence[str], horizons_s: Sequence[float], recent: int = 200, max_gap_s: float = 1.0,
        max_pending: int = 4096, extra: Sequence[str] = (), calibrator: SpreadCalibrator | None = None,
    ) -> None:
        if not names or not horizons_s or recent < 1 or max_gap_s <= 0 or max_pending < 1:
            raise ValueError("need predictor names, horizons, recent >= 1, max_gap_s > 0 and max_pending >= 1")
        self.names = list(names)
        self.extra = list(extra)  # forecasts only fed to the calibrator (e.g. young tracks'), not in the tables
        self.calibrator = calibrator
        self.horizons = tuple(float(h) for h in horizons_s)
        self.max_gap_s = max_gap_s
        self._pending: deque[_Pending] = deque(maxlen=max_pending)
        self._prev: tuple[float, np.ndarray, np.ndarray] | None = None
        n_h, n_p = len(self.horizons), len(self.names)
        self.windows = np.zeros(n_h, np.int64)
        self._ade_sum = np.zeros((n_p, n_h))
        self._fde_sum = np.zeros((n_p, n_h))
        self._spread_n = np.zeros((n_p, n_h), np.int64)  # windows whose forecast had a spread
        self._spread_sum = np.zeros((len(SPREAD_KEYS), n_p, n_h))
        self._recent: list[deque[np.ndarray]] = [deque(maxlen=recent) for _ in self.horizons]  # per horizon: (n_p,) ADE per window

    @property
    def pending(self) -> int:
        """Frames whose forecasts still wait for their future."""
        return len(self._pending)

    def update(self, time_s: float, tracks: Tracks, forecasts: Mapping[str, Forecasts], scale: TrackScale,
               raw_std: Mapping[str, np.ndarray | None] | None = None, warm: bool = True) -> None:
        """Score what this frame's tracks make observable, then hold this frame's forecasts.

        `raw_std`: each forecast's trained spread (rows as its forecast's) when `forecasts` carry recalibrated
        ones; without it the written std is taken as the trained one. `warm`: every predictor's spread was past
        its recalibration warm-up when these forecasts were made (their spreads are scored only then)."""
        if self._prev is not None and time_s < self._prev[0] - EPS_S:  # time went back: a new stream
            self._pending.clear()
            self._prev = None
        self._observe(time_s, tracks)
        rec = self._record(time_s, forecasts, scale, raw_std or {})
        if rec is not None:
            rec.warm = warm
            self._pending.append(rec)

    def _observe(self, time_s: float, tracks: Tracks) -> None:
        ids, xy = tracks.track_id, tracks.centers.astype(np.float64)
        prev = self._prev
        for rec in self._pending:
            abs_t = rec.time_s + rec.targets
            todo = ~rec.done & (abs_t <= time_s + EPS_S)
            if not todo.any():
                continue
            cur = _lookup(rec.track_id, ids, xy)
            now = todo & (np.abs(abs_t - time_s) <= EPS_S)
            rec.obs[:, now] = cur[:, None]
            between = todo & ~now
            if between.any() and prev is not None and time_s - prev[0] <= self.max_gap_s + EPS_S:
                before = _lookup(rec.track_id, prev[1], prev[2])
                w = np.clip((abs_t[between] - prev[0]) / max(time_s - prev[0], EPS_S), 0.0, 1.0)
                rec.obs[:, between] = before[:, None] + w[None, :, None] * (cur - before)[:, None]
            rec.done |= todo
        while self._pending and self._pending[0].done.all():
            self._finish(self._pending.popleft())
        self._prev = (time_s, ids, xy)

    def _record(self, time_s: float, forecasts: Mapping[str, Forecasts], scale: TrackScale,
                raw_std: Mapping[str, np.ndarray | None]) -> _Pending | None:
        unknown = set(forecasts) - set(self.names) - set(self.extra)
        if unknown:
            raise ValueError(f"forecasts of unknown predictors {sorted(unknown)}; scorer knows {self.names}")
        fcs = {n: f for n, f in forecasts.items() if len(f)}
        if not fcs:
            return None
        for n, f in fcs.items():
            if f.t_future_s[-1] < max(self.horizons) - EPS_S:
                raise ValueError(f"{n} forecasts {f.t_future_s[-1]:g} s ahead, less than the scored {max(self.horizons):g} s")
        ids = np.unique(np.concatenate([f.track_id for f in fcs.values()]))
        targets = np.unique(_key(np.concatenate([*(f.t_future_s for f in fcs.values()), self.horizons])))
        h_idx = np.searchsorted(targets, _key(self.horizons))
        members = {n: self._member(ids, f, targets, raw_std.get(n, f.std)) for n, f in fcs.items()}
        k = len(targets)
        return _Pending(float(time_s), ids, scale.of(ids), targets, h_idx, members,
                        np.full((len(ids), k, 2), np.nan), np.zeros(k, bool))

    def _member(self, ids: np.ndarray, fc: Forecasts, targets: np.ndarray, raw: np.ndarray | None) -> _Member:
        rows = np.searchsorted(ids, fc.track_id)
        has = np.zeros(len(ids), bool)
        has[rows] = True

        def aligned(a: np.ndarray) -> np.ndarray:
            out = np.full((len(ids), len(fc.t_future_s), 2), np.nan)
            out[rows] = a
            return out

        centers = aligned(fc.centers)
        t_idx = np.searchsorted(targets, _key(fc.t_future_s))
        m = _Member(has, centers, fc.t_future_s, t_idx, _at_times(fc.t_future_s, centers, self.horizons))
        if fc.std is not None and raw is not None:
            std2 = fc.std2 if fc.std2 is not None else 2.0 * fc.std
            m.std_raw = aligned(raw)
            m.spread_h = np.stack([_at_times(fc.t_future_s, aligned(a), self.horizons) for a in (fc.std, std2, raw)])
        return m

    def _calibrate(self, rec: _Pending) -> None:
        """Every member's observed points, as radii under its trained spread, to the calibrator (any window:
        the calibration of one predictor does not need the others to have forecast the track)."""
        if self.calibrator is None:
            return
        for name, m in rec.members.items():
            if m.std_raw is None:
                continue
            err = m.centers - rec.obs[:, m.t_idx]
            r = np.sqrt(((err / np.maximum(m.std_raw, 1e-9)) ** 2).sum(axis=2))  # (M, H)
            ok = np.isfinite(r) & m.has[:, None]
            if ok.any():
                self.calibrator.observe(name, np.nonzero(ok)[1], r[ok])

    def _spread_scores(self, i: int, j: int, m: _Member, obs: np.ndarray, scale: np.ndarray, ok: np.ndarray) -> None:
        """Coverage and NLL (body heights) of one member's windows `ok` at horizon j, written and trained spread."""
        if m.spread_h is None:
            return
        err = (m.at_h[:, j] - obs) / scale[:, None]
        std, std2, raw = (a[:, j] / scale[:, None] for a in m.spread_h)
        good = ok & np.isfinite(err).all(1) & np.isfinite(std).all(1) & np.isfinite(raw).all(1)
        if not good.any():
            return
        e, std, std2, raw = err[good], std[good], std2[good], raw[good]
        vals = (inside(e, std), inside(e, std2), nll(e, std, std2), inside(e, raw), inside(e, 2 * raw), nll(e, raw))
        self._spread_n[i, j] += int(good.sum())
        for k, v in enumerate(vals):
            self._spread_sum[k, i, j] += float(np.sum(v))

    def _finish(self, rec: _Pending) -> None:
        """Fold a frame whose future has fully arrived into the totals (same windows for every predictor)."""
        self._calibrate(rec)
        if not set(self.names) <= set(rec.members):
            return  # a predictor made no forecast at this frame: no window of it is comparable
        scale = np.where(rec.scale > 0, rec.scale, np.nan)[:, None]
        for j, h in enumerate(self.horizons):
            ade = np.full((len(self.names), len(rec.track_id)), np.nan)
            fde = np.full_like(ade, np.nan)
            for i, name in enumerate(self.names):
                m = rec.members[name]
                err = np.linalg.norm(m.centers - rec.obs[:, m.t_idx], axis=2) / scale
                upto = m.t <= h + EPS_S
                ade[i] = err[:, upto].mean(axis=1) if upto.any() else np.nan
                fde[i] = np.linalg.norm(m.at_h[:, j] - rec.obs[:, rec.h_idx[j]], axis=1) / scale[:, 0]
            ok = np.isfinite(ade).all(axis=0) & np.isfinite(fde).all(axis=0)
            for i, name in enumerate(self.names):
                if rec.warm:  # spreads are scored after the warm-up only: before it they are the trained ones
                    self._spread_scores(i, j, rec.members[name], rec.obs[:, rec.h_idx[j]], scale[:, 0], ok)
            self.windows[j] += int(ok.sum())
            self._ade_sum[:, j] += ade[:, ok].sum(axis=1)
            self._fde_sum[:, j] += fde[:, ok].sum(axis=1)
            self._recent[j].extend(ade[:, ok].T)

    def scores(self) -> list[HorizonScore]:
        """Per predictor and horizon: windows scored and mean ADE / FDE in body heights so far."""
        out = []
        for i, name in enumerate(self.names):
            for j, h in enumerate(self.horizons):
                n = int(self.windows[j])
                ade, fde = (self._ade_sum[i, j] / n, self._fde_sum[i, j] / n) if n else (math.nan, math.nan)
                ns = int(self._spread_n[i, j])
                spread = self._spread_sum[:, i, j] / ns if ns else np.full(len(SPREAD_KEYS), math.nan)
                out.append(HorizonScore(name, h, n, float(ade), float(fde), ns, *(float(v) for v in spread)))
        return out

    def scored(self, horizon_s: float) -> int:
        """Windows scored so far at a horizon."""
        return int(self.windows[self.horizons.index(horizon_s)])

    def recent_ade(self, horizon_s: float) -> dict[str, float]:
        """Each predictor's mean ADE over the most recent scored windows (NaN before any)."""
        rows = self._recent[self.horizons.index(horizon_s)]
        if not rows:
            return {n: math.nan for n in self.names}
        mean = np.mean(np.asarray(rows), axis=0)
        return {n: float(v) for n, v in zip(self.names, mean)}


def _fmt(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.4f}"


def write_scores_csv(path: Path, scores: Sequence[HorizonScore], served: str) -> None:
    """Replace `path` whole (`core.atomic`), so a killed run leaves the last complete table."""
    write_csv_atomic(path, SCORE_COLUMNS, (
        [s.predictor, f"{s.horizon_s:g}", s.windows, _fmt(s.ade_bh), _fmt(s.fde_bh), int(s.predictor == served),
         s.spread_windows, *(_fmt(getattr(s, k)) for k in SPREAD_KEYS)] for s in scores))


class ScoresFile:
    """forecast_scores.csv, rewritten every `every_s` seconds of video time and once at the end."""

    def __init__(self, path: Path, every_s: float = 10.0) -> None:
        self.path, self.every_s = path, every_s
        self._last: float | None = None

    def maybe_write(self, time_s: float, rows: Callable[[], tuple[list[HorizonScore], str]]) -> bool:
        """Write when `every_s` of video time passed since the last write (or the first frame)."""
        if self._last is None or time_s < self._last:
            self._last = time_s
        if time_s - self._last < self.every_s - EPS_S:
            return False
        self.write(*rows())
        self._last = time_s
        return True

    def write(self, scores: Sequence[HorizonScore], served: str) -> None:
        write_scores_csv(self.path, scores, served)
