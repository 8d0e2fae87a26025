"""Evaluation of lstm, cv and kalman on exactly the same windows: ADE/FDE at 1, 2 and 3 s and the full horizon,
and how well each predictor's spread is calibrated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from pipeline.core.config import PredictorConfig
from pipeline.core.errors import UserError
from pipeline.forecast.features import FeatureSpec, Window, window_scale
from pipeline.forecast.predictors import ConstantVelocityPredictor, KalmanPredictor, Predictor
from pipeline.learning.datasets import Trajectory, make_windows

HORIZONS_S = (1.0, 2.0, 3.0)


@dataclass(frozen=True)
class Protocol:
    """Time grid and window stride of an evaluation."""

    spec: FeatureSpec
    stride: int = 1


# Social-GAN/Trajectron++ standard: 8 observed, 12 predicted at 2.5 Hz, stride 1.
ETHUCY = Protocol(FeatureSpec(step_s=0.4, obs_len=8, pred_len=12), stride=1)


def at_time(x: np.ndarray, step_s: float, t: float) -> np.ndarray:
    """Values (N, H, k) on the future grid step_s, 2 step_s, ... linearly interpolated at time t (from now = 0)."""
    pos = t / step_s - 1.0
    lo = int(np.clip(np.floor(pos + 1e-9), 0, x.shape[1] - 1))
    hi = min(lo + 1, x.shape[1] - 1)
    w = float(np.clip(pos - lo, 0.0, 1.0))
    return x[:, lo] * (1 - w) + x[:, hi] * w


def metrics(pred: np.ndarray, future: np.ndarray, step_s: float, std: np.ndarray | None = None,
            scale: np.ndarray | None = None) -> dict[str, float]:
    """ADE/FDE over the whole horizon and at 1, 2, 3 s; the share of true positions inside the 1 and 2 sigma
    regions of the forecast spread (a calibrated Gaussian gives 0.39 and 0.86) and its mean Gaussian negative
    log-likelihood (`nll`, in the units of the errors). Errors are divided by `scale` (N,) when given (body
    heights). The spread here is the trained one: recalibration is online, per camera (benchmarks/calibration.py)."""
    s = np.ones(len(pred)) if scale is None else scale
    d = np.linalg.norm(pred[:, :, :2] - future[:, :, :2], axis=2) / s[:, None]
    out = {"ade": float(d.mean()), "fde": float(d[:, -1].mean())}
    horizon = step_s * pred.shape[1]
    for h in HORIZONS_S:
        if h <= horizon + 1e-9:
            n_in = int(np.floor(h / step_s + 1e-9))
            out[f"ade_{h:g}s"] = float(d[:, :n_in].mean())
            end = at_time(pred[:, :, :2], step_s, h) - at_time(future[:, :, :2], step_s, h)
            out[f"fde_{h:g}s"] = float((np.linalg.norm(end, axis=1) / s).mean())
    if std is not None:
        z2 = (((pred[:, :, :2] - future[:, :, :2]) / np.maximum(std, 1e-9)) ** 2).sum(axis=2)
        out["within_1sigma"] = float((z2 <= 1).mean())
        out["within_2sigma"] = float((z2 <= 4).mean())
        sd = np.maximum(std, 1e-9) / s[:, None, None]
        out["nll"] = float((np.log(2 * np.pi * sd[..., 0] * sd[..., 1]) + 0.5 * z2).mean())
    return out


def tuned_baselines(spec: FeatureSpec, cfg: PredictorConfig | None = None, has_box: bool = False) -> dict[str, Predictor]:
    """cv and kalman with the settings tuned on the training sources (PredictorConfig defaults)."""
    c = cfg or PredictorConfig()
    return {
        "cv": ConstantVelocityPredictor(spec.step_s, spec.obs_len, spec.pred_len, c.cv_steps, c.cv_gain,
                                        extrapolate_size=has_box, std_rate=(c.cv_std_rate[0], c.cv_std_rate[1])),
        "kalman": KalmanPredictor(spec.step_s, spec.obs_len, spec.pred_len, meas_std=c.kalman_meas_std,
                                  accel_std=c.kalman_accel_std),
    }


def evaluate(
    trajs: list[Trajectory], proto: Protocol, methods: dict[str, Predictor], body_heights: bool = False
) -> tuple[dict[str, dict[str, float]], int]:
    """Cut the protocol's windows once and score every method on them."""
    win, future, _ = make_windows(trajs, proto.spec, proto.stride)
    if len(future) == 0:
        s = proto.spec
        raise UserError(f"no windows of {s.obs_len} + {s.pred_len} steps of {s.step_s:g} s: the tracks are too short "
                        "(or gappy) for this evaluation; try a smaller --obs/--pred")
    return score_windows(win, future, proto.spec, methods, body_heights), len(future)


def score_windows(win: Window, future: np.ndarray, spec: FeatureSpec, methods: dict[str, Predictor],
                  body_heights: bool = False) -> dict[str, dict[str, float]]:
    """Every method's metrics on the same windows (errors in body heights when asked)."""
    scale = window_scale(win, spec) if body_heights else None
    results = {}
    for name, p in methods.items():
        pred, std = predict_batched(p, win)
        results[name] = metrics(pred, future, spec.step_s, std, scale)
    return results


def predict_batched(p: Predictor, win: Window, bs: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
    """Predict in chunks so memory stays bounded on large splits; returns xywh and the spread (or None)."""
    parts, stds = [], []
    for i in range(0, len(win.xywh), bs):
        xywh, std = p.predict(win.take(slice(i, i + bs)))
        parts.append(xywh)
        stds.append(std)
    if not parts:
        return np.zeros((0, p.horizon, 4)), None
    return np.concatenate(parts), None if any(s is None for s in stds) else np.concatenate(cast(list[np.ndarray], stds))


def format_table(results: dict[str, dict[str, float]], windows: int, unit: str) -> str:
    """One table, method x metric."""
    cols = list(next(iter(results.values())).keys())
    head = f"{'method':<8}" + "".join(f"{c:>14}" for c in cols)
    rows = [f"{m:<8}" + "".join(f"{v.get(c, float('nan')):>14.3f}" for c in cols) for m, v in results.items()]
    return "\n".join([f"{windows} windows; errors in {unit}", head, *rows])
