"""512-d per-step feature vectors for trajectory windows: the one encoder used by training and inference.

A window is a track's recent boxes resampled on a regular time grid (`FeatureSpec.step_s`). Every length is
expressed in *scale units*: the median box height of the window for pixel data, or
`FeatureSpec.metric_unit_m` metres for metric data without boxes (a person is ~1.7 m tall), so pixels from
any camera and metres from ETH/UCY share one space and one model.

Each step is described by 16 motion quantities (see `QUANTITIES`); each quantity is lifted to 32 numbers
(its clipped value, tanh of it, and sin/cos at 15 geometric frequencies), giving 16 x 32 = 512 dims.
With `FeatureSpec.social`, 16 neighbourhood quantities (`SOCIAL_QUANTITIES`: the 3 nearest other objects
at each step) join them and every quantity gets a 16-number lift (7 frequencies): 32 x 16 = 512 dims.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FEATURE_DIM = 512
QUANTITIES = (
    "rel_x", "rel_y",  # position relative to the last observed position (units)
    "vel_x", "vel_y",  # velocity (units/s), backward difference
    "acc_x", "acc_y",  # acceleration (units/s^2)
    "speed",  # |velocity| (units/s)
    "heading_cos", "heading_sin",  # direction of motion (0, 0 when still)
    "log_w", "log_h",  # log of box width / height in units (0 without boxes)
    "log_h_rate",  # d log(h) / dt: approaching / receding (1/s)
    "img_x", "img_y",  # centre in the image, -0.5..0.5 (0 without an image)
    "gap_s",  # seconds since the object was last really observed (0 when observed at this step)
    "has_box",  # 1 for box data (pixels), 0 for point data (metres)
)
SOCIAL_QUANTITIES = tuple(
    f"n{k}_{q}" for k in range(3) for q in ("dx", "dy", "dvx", "dvy", "present")  # nearest first, units
) + ("closing_speed",)  # speed at which the nearest neighbour approaches (units/s, < 0 when moving apart)
N_NEIGHBOURS = 3
NEIGHBOUR_RADIUS = 8.0  # scale units (~14 m for people): farther objects count as absent
N_FREQ = 15
_FREQS = (2.0 * np.pi / (32.0 * 2.0 ** (-np.arange(N_FREQ) / 2.0))).astype(np.float32)  # periods 32 .. ~0.25
_FREQS_SOCIAL = (2.0 * np.pi / (32.0 * 2.0 ** (-np.arange(7.0)))).astype(np.float32)  # periods 32 .. 0.5
_CLIP = 50.0
PRIOR_STEPS = {"mean": None, "last": 1, "last2": 2}  # steps the prior's velocity is measured over (None: all)


@dataclass(frozen=True)
class FeatureSpec:
    """Time grid and units of a model's windows; stored in every checkpoint."""

    step_s: float = 0.1  # time between steps, seconds
    obs_len: int = 10  # observed steps (the last one is "now")
    pred_len: int = 20  # predicted steps after now
    metric_unit_m: float = 1.7  # metres per scale unit for point (metric) data
    version: int = 1  # bump when the encoding changes; checkpoints of another version are refused
    prior: str = "mean"  # velocity of the constant-velocity prior: "mean" over the window, "last" or "last2" steps
    social: bool = False  # describe the 3 nearest neighbours at each step (32 quantities x 16 lift)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    """A batch of observed windows on the regular grid.

    xywh: (N, T, 4) centre x, y, width, height in source units (w = h = 0 for point data);
    gap_s: (N, T) seconds since a real observation; has_box: (N,) bool; frame_size: (N, 2) image
    width/height in pixels, or 0 when unknown; neigh: optional (N, T, K, 4) x, y, vx, vy of the K nearest
    other objects of the same scene at each step, nearest first, NaN where there is none. Without it, a
    social model takes the other windows of the batch (one frame of a video) as the neighbours.
    """

    xywh: np.ndarray
    gap_s: np.ndarray
    has_box: np.ndarray
    frame_size: np.ndarray
    neigh: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.xywh.ndim != 3 or self.xywh.shape[2] != 4:
            raise ValueError(f"xywh must be (N, T, 4), got {self.xywh.shape}")
        n, t = self.xywh.shape[:2]
        if self.gap_s.shape != (n, t) or self.has_box.shape != (n,) or self.frame_size.shape != (n, 2):
            raise ValueError("gap_s, has_box and frame_size must match xywh's batch and time dims")
        if self.neigh is not None and (self.neigh.ndim != 4 or self.neigh.shape[:2] != (n, t) or self.neigh.shape[3] != 4):
            raise ValueError(f"neigh must be (N, T, K, 4) matching xywh, got {self.neigh.shape}")

    def take(self, idx: slice | np.ndarray) -> Window:
        """The windows at `idx` (a slice, indices or a boolean mask), neighbours included."""
        neigh = None if self.neigh is None else self.neigh[idx]
        return Window(self.xywh[idx], self.gap_s[idx], self.has_box[idx], self.frame_size[idx], neigh)


def nearest_neighbours(xy: np.ndarray, others_xy: np.ndarray, others_vel: np.ndarray, k: int) -> np.ndarray:
    """The k nearest of `others` at each step: xy (T, 2), others (J, T, 2) NaN where absent -> (T, k, 4)."""
    t = xy.shape[0]
    out = np.full((t, k, 4), np.nan)
    if len(others_xy) == 0:
        return out
    d = np.linalg.norm(others_xy - xy[None], axis=2)
    d = np.where(np.isfinite(d), d, np.inf)
    order = np.argsort(d, axis=0, kind="stable")[:k]  # (k', T)
    steps = np.arange(t)[None, :]
    found = np.isfinite(d[order, steps])
    got = np.concatenate([others_xy[order, steps], others_vel[order, steps]], axis=2)  # (k', T, 4)
    got[~found] = np.nan
    out[:, : got.shape[0]] = got.transpose(1, 0, 2)
    return out


def _velocity(xy: np.ndarray, step_s: float) -> np.ndarray:
    """Backward-difference velocity (N, T, 2) of positions (N, T, 2); the first step repeats the second."""
    vel = np.diff(xy, axis=1, prepend=xy[:, :1]) / step_s
    if xy.shape[1] > 1:
        vel[:, 0] = vel[:, 1]
    return vel


def batch_neighbours(win: Window, step_s: float, k: int = N_NEIGHBOURS) -> np.ndarray:
    """Neighbours taken from the batch itself: all windows share one time grid (one video frame)."""
    xy = win.xywh[:, :, :2]
    vel = _velocity(xy, step_s)
    out = np.full((len(xy), xy.shape[1], k, 4), np.nan)
    for i in range(len(xy)):
        others = np.arange(len(xy)) != i
        out[i] = nearest_neighbours(xy[i], xy[others], vel[others], k)
    return out


def window_scale(win: Window, spec: FeatureSpec) -> np.ndarray:
    """Source units per scale unit, (N,): median box height, or metric_unit_m for point data."""
    med_h = np.median(win.xywh[:, :, 3], axis=1)
    scale = np.where(win.has_box, med_h, spec.metric_unit_m)
    return np.maximum(scale, 1e-3)


def motion_quantities(win: Window, spec: FeatureSpec) -> np.ndarray:
    """The 16 raw quantities per step, (N, T, 16), in scale units and seconds."""
    dt = spec.step_s
    scale = window_scale(win, spec)[:, None]
    xy = win.xywh[:, :, :2] / scale[..., None]
    rel = xy - xy[:, -1:, :]
    vel = _velocity(xy, dt)
    acc = np.diff(vel, axis=1, prepend=vel[:, :1]) / dt
    speed = np.linalg.norm(vel, axis=2)
    moving = speed > 1e-3
    heading = np.where(moving[..., None], vel / np.maximum(speed, 1e-3)[..., None], 0.0)
    box = win.has_box[:, None]
    wh = np.maximum(win.xywh[:, :, 2:], 1e-3) / scale[..., None]
    log_wh = np.where(box[..., None], np.log(wh), 0.0)
    log_h_rate = np.diff(log_wh[:, :, 1], axis=1, prepend=log_wh[:, :1, 1]) / dt
    size = win.frame_size[:, None, :]
    img = np.where(size > 0, win.xywh[:, :, :2] / np.maximum(size, 1) - 0.5, 0.0)
    has_box = np.broadcast_to(box.astype(np.float64), speed.shape)
    q = np.concatenate(
        [rel, vel, acc, speed[..., None], heading, log_wh, log_h_rate[..., None], img,
         win.gap_s[..., None], has_box[..., None]],
        axis=2,
    )
    return q


def social_quantities(win: Window, spec: FeatureSpec) -> np.ndarray:
    """The 16 neighbourhood quantities per step, (N, T, 16), relative to the window's own motion, in units."""
    neigh = win.neigh if win.neigh is not None else batch_neighbours(win, spec.step_s)
    scale = window_scale(win, spec)[:, None, None, None]
    xy = win.xywh[:, :, :2]
    vel = _velocity(xy, spec.step_s)
    k = min(neigh.shape[2], N_NEIGHBOURS)
    rel = (neigh[:, :, :k, :2] - xy[:, :, None]) / scale
    dv = (neigh[:, :, :k, 2:] - vel[:, :, None]) / scale
    dist = np.linalg.norm(rel, axis=3)
    present = np.isfinite(dist) & (dist < NEIGHBOUR_RADIUS)
    per = np.concatenate([rel, dv, present[..., None].astype(np.float64)], axis=3)
    q = np.zeros(xy.shape[:2] + (N_NEIGHBOURS, 5))
    q[:, :, :k] = np.where(present[..., None], per, 0.0)
    near = q[:, :, 0]
    d0 = np.linalg.norm(near[..., :2], axis=2)
    closing = np.where(near[..., 4] > 0, -(near[..., :2] * near[..., 2:4]).sum(axis=2) / np.maximum(d0, 1e-3), 0.0)
    return np.concatenate([q.reshape(*xy.shape[:2], -1), closing[..., None]], axis=2)


def encode(win: Window, spec: FeatureSpec) -> np.ndarray:
    """Feature tensor (N, T, 512) float32 for a batch of windows."""
    q = motion_quantities(win, spec)
    freqs = _FREQS
    if spec.social:
        q = np.concatenate([q, social_quantities(win, spec)], axis=2)
        freqs = _FREQS_SOCIAL
    q = np.clip(q, -_CLIP, _CLIP).astype(np.float32)  # float32: 5x faster sin/cos
    phase = q[..., None] * freqs  # (N, T, Q, F)
    parts = [q[..., None], np.tanh(q)[..., None], np.sin(phase), np.cos(phase)]
    feats = np.concatenate(parts, axis=3)  # (N, T, Q, 2 + 2F): 16 x 32 or 32 x 16
    n, t = q.shape[:2]
    return feats.reshape(n, t, FEATURE_DIM).astype(np.float32)


def future_targets(win: Window, future_xywh: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Training targets (N, H, 4): future centre offsets from now in scale units, and log size ratios."""
    scale = window_scale(win, spec)[:, None, None]
    now = win.xywh[:, -1:, :]
    d_xy = (future_xywh[:, :, :2] - now[:, :, :2]) / scale
    ratio = np.maximum(future_xywh[:, :, 2:], 1e-3) / np.maximum(now[:, :, 2:], 1e-3)
    d_wh = np.where(win.has_box[:, None, None], np.log(ratio), 0.0)
    return np.concatenate([d_xy, d_wh], axis=2).astype(np.float32)


def targets_to_xywh(win: Window, targets: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Inverse of `future_targets`: (N, H, 4) offsets -> future xywh in source units."""
    scale = window_scale(win, spec)[:, None, None]
    now = win.xywh[:, -1:, :]
    xy = now[:, :, :2] + targets[:, :, :2] * scale
    wh = now[:, :, 2:] * np.exp(np.clip(targets[:, :, 2:], -3, 3))
    return np.concatenate([xy, wh], axis=2)


def velocity_prior(win: Window, spec: FeatureSpec, steps: int) -> np.ndarray:
    """Constant-velocity offsets (N, H, 4) in target space (spec.prior: mean, last or last2 velocity).

    The LSTM predicts a residual on top of this, so even a short training starts from a sane forecast.
    """
    scale = window_scale(win, spec)[:, None]
    xy = win.xywh[:, :, :2] / scale[..., None]
    span = min(PRIOR_STEPS[spec.prior] or xy.shape[1] - 1, xy.shape[1] - 1)
    vel = (xy[:, -1] - xy[:, -1 - span]) / (span * spec.step_s) if span > 0 else np.zeros_like(xy[:, -1])
    t = spec.step_s * np.arange(1, steps + 1)
    prior = np.zeros((xy.shape[0], steps, 4), np.float32)
    prior[:, :, :2] = vel[:, None, :] * t[None, :, None]
    return prior
