"""Forecasts for young tracks (`predictor.min_history_s`): how good is the tuned Kalman on fewer points?

Two questions, on every source of `run.py bench-forecast`'s list, ADE at 2 s in body heights:
- on tracks at least 2 s old, the tuned Kalman on its last 6 / 3 / 2 points (2.0 / 0.8 / 0.4 s of history);
- the Kalman on 3 points on tracks 0.8-2 s old (the ones only it forecasts) vs on tracks 2 s old or more.

Prints one markdown row per source. Run: `.venv/bin/python benchmarks/young_tracks.py` (about 1 minute).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.core.config import PredictorConfig  # noqa: E402
from pipeline.forecast.features import FeatureSpec, Window, window_scale  # noqa: E402
from pipeline.forecast.predictors import KalmanPredictor  # noqa: E402
from pipeline.learning.datasets import Trajectory, anchor_times, concat_windows, track_windows  # noqa: E402
from pipeline.learning.loso_bench import SOURCES, load_sources  # noqa: E402

STEP, HORIZON = 0.4, 5  # 2 s ahead
CAP = 8000  # windows per source and row (seeded subset)


def kalman(obs: int) -> KalmanPredictor:
    c = PredictorConfig()
    return KalmanPredictor(STEP, obs, HORIZON, meas_std=c.kalman_meas_std, accel_std=c.kalman_accel_std)


def ade(obs: int, win: Window, fut: np.ndarray) -> float:
    spec = FeatureSpec(step_s=STEP, obs_len=obs, pred_len=HORIZON)
    w = win.last(obs)
    d = np.linalg.norm(kalman(obs).predict(w)[0][:, :, :2] - fut[:, :, :2], axis=2) / window_scale(w, spec)[:, None]
    return float(d.mean())


def windows(trajs: list[Trajectory], obs: int, min_age: float, max_age: float) -> tuple[Window, np.ndarray]:
    """Windows of `obs` points ending at observations made when the track was min_age..max_age seconds old."""
    spec = FeatureSpec(step_s=STEP, obs_len=obs, pred_len=HORIZON)
    parts = []
    for tr in trajs:
        now = anchor_times(tr.times, spec)
        age = now - tr.times[0]
        now = now[(age >= min_age - 1e-6) & (age < max_age - 1e-6)]
        if len(now):
            win, fut, ok = track_windows(tr, now, spec)
            if ok.any():
                parts.append((win.take(ok), fut[ok]))
    win, fut = concat_windows(parts, spec)
    if len(fut) > CAP:
        keep = np.sort(np.random.default_rng(0).choice(len(fut), CAP, replace=False))
        win, fut = win.take(keep), fut[keep]
    return win, fut


def main() -> None:
    data = load_sources(SimpleNamespace(data_root=ROOT.parent / "shared" / "data", project_root=ROOT), lambda s: None)
    print("| source | windows (tracks >= 2 s old) | Kalman on 6 / 3 / 2 points | windows (0.8-2 s old) | "
          "3 points on 0.8-2 s old | young / old |")
    print("|---|---|---|---|---|---|")
    for src in SOURCES:
        if not src.held_out or not data[src.name]:
            continue
        old_w, old_f = windows(data[src.name], 6, 2.0, np.inf)
        young_w, young_f = windows(data[src.name], 3, 0.8, 2.0)
        if not len(old_f) or not len(young_f):
            continue
        on = [ade(k, old_w, old_f) for k in (6, 3, 2)]
        young = ade(3, young_w, young_f)
        print(f"| {src.name} | {len(old_f)} | {' / '.join(f'{a:.3f}' for a in on)} | {len(young_f)} | {young:.3f} | "
              f"{young / on[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
