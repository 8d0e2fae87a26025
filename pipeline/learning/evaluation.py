"""Evaluation of lstm, cv and kalman on exactly the same windows, with the metrics of each protocol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.learning.datasets import Trajectory, make_windows
from pipeline.forecast.features import FeatureSpec, Window
from pipeline.forecast.predictors import ConstantVelocityPredictor, KalmanPredictor, Predictor


@dataclass(frozen=True)
class Protocol:
    """Time grid and window stride of an evaluation; `jaad_metrics` adds the PIE-protocol box MSEs."""

    spec: FeatureSpec
    stride: int = 1
    cv_velocity: str = "last"
    jaad_metrics: bool = False


PROTOCOLS = {
    # Social-GAN/Trajectron++ standard: 8 observed, 12 predicted at 2.5 Hz, stride 1, strict CV baseline.
    "ethucy": Protocol(FeatureSpec(step_s=0.4, obs_len=8, pred_len=12), stride=1, cv_velocity="last"),
    # PIEtraj/BiTraP: 15 observed, 45 predicted at 30 fps, windows every 7 frames, mean-velocity CV.
    "jaad": Protocol(FeatureSpec(step_s=1 / 30, obs_len=15, pred_len=45), stride=7, cv_velocity="mean", jaad_metrics=True),
}


def _xyxy(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[..., :2] - a[..., 2:] / 2, a[..., :2] + a[..., 2:] / 2], axis=-1)


def metrics(pred: np.ndarray, future: np.ndarray, jaad: bool) -> dict[str, float]:
    """ADE/FDE of centres; with jaad, box MSE over the first 15/30/45 steps, C_MSE and CF_MSE."""
    d = np.linalg.norm(pred[:, :, :2] - future[:, :, :2], axis=2)
    out = {"ade": float(d.mean()), "fde": float(d[:, -1].mean())}
    if jaad:
        se = (_xyxy(pred) - _xyxy(future)) ** 2
        for n in (15, 30, 45):
            out[f"mse_{n}"] = float(se[:, :n].mean())
        c = (pred[:, :, :2] - future[:, :, :2]) ** 2
        out["c_mse"] = float(c.mean())
        out["cf_mse"] = float(c[:, -1].mean())
    return out


def baselines(proto: Protocol, has_box: bool) -> dict[str, Predictor]:
    s = proto.spec
    return {
        "cv": ConstantVelocityPredictor(s.step_s, s.obs_len, s.pred_len, proto.cv_velocity, extrapolate_size=has_box),
        "kalman": KalmanPredictor(s.step_s, s.obs_len, s.pred_len, s),
    }


def evaluate(
    trajs: list[Trajectory], proto: Protocol, methods: dict[str, Predictor]
) -> tuple[dict[str, dict[str, float]], int]:
    """Cut the protocol's windows once and score every method on them."""
    win, future, _ = make_windows(trajs, proto.spec, proto.stride)
    results = {}
    for name, p in methods.items():
        pred = predict_batched(p, win)
        results[name] = metrics(pred, future, proto.jaad_metrics)
    return results, len(future)


def predict_batched(p: Predictor, win: Window, bs: int = 4096) -> np.ndarray:
    """Predict in chunks so memory stays bounded on large splits."""
    parts = []
    for i in range(0, len(win.xywh), bs):
        parts.append(p.predict(win.take(slice(i, i + bs)))[0])
    return np.concatenate(parts) if parts else np.zeros((0, p.horizon, 4))


def format_table(results: dict[str, dict[str, float]], windows: int, unit: str) -> str:
    """One table, method x metric."""
    cols = list(next(iter(results.values())).keys())
    head = f"{'method':<8}" + "".join(f"{c:>10}" for c in cols)
    rows = [f"{m:<8}" + "".join(f"{v[c]:>10.3f}" if v[c] < 100 else f"{v[c]:>10.0f}" for c in cols) for m, v in results.items()]
    return "\n".join([f"{windows} windows; ade/fde in {unit}", head, *rows])
