"""Tuning of the cv and Kalman baselines on training windows, as carefully as the model is trained.

A forecast only counts if it beats the best simple extrapolation a user could set up, so each baseline gets a
grid search on the same training windows the model learns from (never on the held-out source): cv over its
velocity window and a speed gain, Kalman over its measurement and acceleration noise. The cv spread is fitted
too (1-sigma growth per second along and across the heading), so cv reports a calibrated uncertainty.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.forecast.features import FeatureSpec, Window, canonical, window_scale
from pipeline.forecast.predictors import ConstantVelocityPredictor, KalmanPredictor
from pipeline.learning.evaluation import metrics

CV_STEPS = (1, 2, 3, 5)
CV_GAINS = (0.8, 0.85, 0.9, 0.95, 1.0, 1.05)
KALMAN_MEAS = (0.02, 0.05, 0.1, 0.2)
KALMAN_ACCEL = (0.1, 0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class TunedBaselines:
    """The chosen settings (PredictorConfig's names) and their training ADE at the tuning horizon (body heights)."""

    cv_steps: int
    cv_gain: float
    cv_std_rate: tuple[float, float]
    kalman_meas_std: float
    kalman_accel_std: float
    cv_ade: float
    kalman_ade: float

    def predictor_settings(self) -> dict:
        """The keys of the `predictor:` config section."""
        d = asdict(self)
        d["cv_std_rate"] = list(self.cv_std_rate)
        return {k: v for k, v in d.items() if not k.endswith("_ade")}


def _ade(p: ConstantVelocityPredictor | KalmanPredictor, win: Window, fut: np.ndarray, scale: np.ndarray,
         horizon_s: float) -> float:
    return metrics(p.predict(win)[0], fut, p.step_s, None, scale)[f"ade_{horizon_s:g}s"]


def tune_baselines(win: Window, fut: np.ndarray, spec: FeatureSpec, horizon_s: float = 2.0) -> TunedBaselines:
    """Grid-search both baselines for the lowest ADE at `horizon_s` on (win, fut) in body heights."""
    scale = window_scale(win, spec)
    s, t, h = spec.step_s, spec.obs_len, fut.shape[1]
    cv = {(k, g): _ade(ConstantVelocityPredictor(s, t, h, k, g), win, fut, scale, horizon_s)
          for k, g in itertools.product([k for k in CV_STEPS if k < t], CV_GAINS)}
    (k, g), cv_ade = min(cv.items(), key=lambda kv: kv[1])
    kf = {(m, a): _ade(KalmanPredictor(s, t, h, meas_std=m, accel_std=a), win, fut, scale, horizon_s)
          for m, a in itertools.product(KALMAN_MEAS, KALMAN_ACCEL)}
    (m, a), k_ade = min(kf.items(), key=lambda kv: kv[1])
    rate = cv_spread(win, fut, ConstantVelocityPredictor(s, t, h, k, g))
    return TunedBaselines(k, g, rate, m, a, cv_ade, k_ade)


def cv_spread(win: Window, fut: np.ndarray, cv: ConstantVelocityPredictor) -> tuple[float, float]:
    """RMS of cv's error along and across the heading per second of horizon (body heights/s)."""
    pred = cv.predict(win)[0]
    frame = canonical(win, cv.spec)
    err = frame.to_canonical(fut[:, :, :2]) - frame.to_canonical(pred[:, :, :2])
    t = cv.step_s * np.arange(1, pred.shape[1] + 1)
    rate = np.sqrt(((err / t[None, :, None]) ** 2).mean(axis=(0, 1)))
    return float(rate[0]), float(rate[1])
