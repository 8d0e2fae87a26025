"""Forecasters with one interface: a batch of observed windows in, future boxes out.

`lstm` is the product; `cv` (constant velocity) and `kalman` are the baselines users compare against, run
on exactly the same windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.core import resources
from pipeline.core.config import PredictorConfig
from pipeline.core.errors import UserError
from pipeline.forecast.features import (
    FeatureSpec,
    Window,
    canonical,
    cv_velocity,
    encode,
    targets_to_xywh,
    velocity_prior,
    window_scale,
)
from pipeline.core.types import Forecasts


class Predictor(Protocol):
    """step_s/obs_len: the grid a window must be sampled on; horizon: steps predicted."""

    step_s: float
    obs_len: int
    horizon: int

    def predict(self, win: Window) -> tuple[np.ndarray, np.ndarray | None]:
        """Future xywh (N, horizon, 4) and an optional centre std (N, horizon, 2)."""
        ...


def _horizon(horizon_s: float, step_s: float) -> int:
    return max(1, int(round(horizon_s / step_s)))


class ConstantVelocityPredictor:
    """Extrapolates the centre at constant velocity; the box keeps its current size (or moves its corners).

    The velocity is the displacement over the last `cv_steps` steps times `gain` (both tuned on training
    sources: `run.py bench forecast`); cv_steps = obs_len - 1 is the window's mean velocity, 1 the strict CV
    of Schoeller et al. 2020. The 1-sigma spread grows linearly with time, `std_rate` body heights per
    second along and across the heading (also tuned), so every predictor reports an uncertainty.
    """

    def __init__(
        self, step_s: float, obs_len: int, horizon: int, cv_steps: int = 1, gain: float = 1.0,
        extrapolate_size: bool = False, std_rate: tuple[float, float] = (0.25, 0.12),
    ) -> None:
        self.step_s, self.obs_len, self.horizon = step_s, obs_len, horizon
        self.spec = FeatureSpec(step_s=step_s, obs_len=obs_len, pred_len=horizon, cv_steps=min(cv_steps, obs_len - 1),
                                cv_gain=gain)
        self.extrapolate_size = extrapolate_size  # True: every box corner moves at constant velocity
        self.std_rate = std_rate

    def predict(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        k = 4 if self.extrapolate_size else 2
        v = cv_velocity(win.xywh[:, :, :k], self.spec)
        t = self.step_s * np.arange(1, self.horizon + 1)
        out = np.repeat(win.xywh[:, -1:, :], self.horizon, axis=1).astype(np.float64)
        out[:, :, :k] += v[:, None, :] * t[None, :, None]
        out[:, :, 2:] = np.maximum(out[:, :, 2:], 0.0)
        std_c = np.asarray(self.std_rate)[None, None, :] * t[None, :, None] * np.ones((len(out), 1, 1))
        return out, canonical(win, self.spec).std_to_source(std_c)


class KalmanPredictor:
    """Constant-velocity Kalman filter on the centre, run over the window, then predicted forward.

    Noise is set in scale units (box height or metric unit) so one setting fits every camera.
    """

    def __init__(
        self, step_s: float, obs_len: int, horizon: int, spec: FeatureSpec | None = None,
        meas_std: float = 0.05, accel_std: float = 0.5,
    ) -> None:
        self.step_s, self.obs_len, self.horizon = step_s, obs_len, horizon
        self.spec = spec or FeatureSpec(step_s=step_s, obs_len=obs_len, pred_len=horizon)
        self.meas_std, self.accel_std = meas_std, accel_std

    def predict(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        n, t_len = win.xywh.shape[:2]
        dt = self.step_s
        s2 = window_scale(win, self.spec)[:, None, None] ** 2
        f = np.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)
        g = np.array([[dt**2 / 2, 0], [0, dt**2 / 2], [dt, 0], [0, dt]])
        q = (g @ g.T)[None] * self.accel_std**2 * s2
        r = np.eye(2)[None] * self.meas_std**2 * s2
        h = np.eye(2, 4)
        z = win.xywh[:, :, :2]
        x = np.concatenate([z[:, 0], np.zeros((n, 2))], axis=1)
        p = np.tile(np.diag([1.0, 1.0, 4.0, 4.0]), (n, 1, 1)) * s2
        p[:, :2, :2] = r
        for k in range(1, t_len):
            x = x @ f.T
            p = f @ p @ f.T + q
            innov = z[:, k] - x[:, :2]
            s = p[:, :2, :2] + r
            gain = p[:, :, :2] @ np.linalg.inv(s)
            x = x + np.einsum("nij,nj->ni", gain, innov)
            p = (np.eye(4) - gain @ h) @ p
        out = np.repeat(win.xywh[:, -1:, :], self.horizon, axis=1).astype(np.float64)
        std = np.zeros((n, self.horizon, 2))
        for k in range(self.horizon):
            x = x @ f.T
            p = f @ p @ f.T + q
            out[:, k, :2] = x[:, :2]
            std[:, k] = np.sqrt(np.maximum(np.diagonal(p, axis1=1, axis2=2)[:, :2], 0))
        return out, std


class LSTMPredictor:
    """The trained TrajectoryLSTM; one batched forward pass for all windows."""

    def __init__(self, checkpoint: str, horizon_s: float | None = None, device: str = "cpu") -> None:
        from pipeline.forecast.model import load_checkpoint  # torch: imported only when an LSTM is used

        self.model, self.spec, self.meta = load_checkpoint(checkpoint)
        self.device = device  # "cuda:N" with a GPU detector: features are built on the CPU, the network runs there
        if device != "cpu":
            self.model.to(device)
        self.step_s, self.obs_len = self.spec.step_s, self.spec.obs_len
        max_s = self.spec.pred_len * self.spec.step_s
        self.horizon = self.spec.pred_len if horizon_s is None else _horizon(horizon_s, self.step_s)
        if self.horizon > self.spec.pred_len:
            raise UserError(
                f"predictor.horizon_s={horizon_s:g} is beyond what {checkpoint} predicts ({max_s:g} s); "
                f"pass --horizon {max_s:g} (or lower predictor.horizon_s in the config)"
            )

    def predict(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        import torch

        if len(win.xywh) == 0:
            return np.zeros((0, self.horizon, 4)), np.zeros((0, self.horizon, 2))
        win = win.last(self.obs_len)  # a longer window (an evaluation protocol's) is cut to what the model reads
        frame = canonical(win, self.spec)
        feats = torch.from_numpy(encode(win, self.spec, frame)).to(self.device)
        prior = torch.from_numpy(velocity_prior(win, self.spec, self.spec.pred_len, frame)).to(self.device)
        with torch.no_grad():
            mean, sigma = (o.cpu() for o in self.model(feats, prior))
        h = self.horizon
        xywh = targets_to_xywh(win, mean.numpy()[:, :h], self.spec, frame)
        return xywh, frame.std_to_source(sigma.numpy()[:, :h].astype(np.float64))


def resolve_checkpoint(path: str) -> str:
    """A relative path is looked up in the working directory, then in the checkout (e.g. weights/...), then among
    the shipped files (`weights/traj_lstm.pt` is the packaged one in an installed copy)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return str(p)
    root = resources.checkout_root()
    if root is not None and (root / p).exists():
        return str(root / p)
    shipped = resources.shipped(p)
    return str(shipped) if shipped is not None else str(p)


def build_predictor(cfg: PredictorConfig, device: str = "cpu") -> Predictor:
    """The predictor the config names (an LSTM on `device`)."""
    if cfg.kind == "lstm":
        return LSTMPredictor(resolve_checkpoint(cfg.weights), cfg.horizon_s, device)
    horizon = _horizon(cfg.horizon_s, cfg.step_s)
    if cfg.kind == "cv":
        return ConstantVelocityPredictor(cfg.step_s, cfg.obs_steps, horizon, cfg.cv_steps, cfg.cv_gain,
                                         std_rate=(cfg.cv_std_rate[0], cfg.cv_std_rate[1]))
    return KalmanPredictor(cfg.step_s, cfg.obs_steps, horizon, meas_std=cfg.kalman_meas_std,
                           accel_std=cfg.kalman_accel_std)


def forecast(predictor: Predictor, track_ids: np.ndarray, win: Window) -> Forecasts:
    """Run a predictor and package the result as `Forecasts` (centres, boxes, optional std)."""
    t = predictor.step_s * np.arange(1, predictor.horizon + 1)
    if len(track_ids) == 0:
        return Forecasts.empty(t)
    xywh, std = predictor.predict(win)
    centers = xywh[:, :, :2]
    half = xywh[:, :, 2:] / 2
    boxes = np.concatenate([centers - half, centers + half], axis=2) if bool(win.has_box.all()) else None
    return Forecasts(track_ids, t, centers, boxes=boxes, std=std)
