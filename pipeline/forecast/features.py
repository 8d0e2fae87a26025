"""512-d per-step feature vectors for trajectory windows: the one encoder used by training and inference.

A window is a track's recent boxes resampled on a regular time grid (`FeatureSpec.step_s`). Every length is
expressed in *scale units* (body heights): the median box height of the window for pixel data, or
`FeatureSpec.metric_unit_m` metres for metric data without boxes (a person is ~1.7 m tall), so pixels from
any camera and metres from any ground plane share one space and one model.

Positions are taken into a *canonical frame*: relative to the last observed position and rotated so that the
tuned constant-velocity heading points along +x. Nothing says where in the image an object is or which way
the camera looks, so the model cannot learn one camera's habits; it can only learn how motion continues.

Each step is described by 16 quantities (see `QUANTITIES`); each is lifted to 32 numbers (its clipped
value, tanh of it, and sin/cos at 15 geometric frequencies): 16 x 32 = 512 dims.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FEATURE_DIM = 512
QUANTITIES = (
    "rel_x", "rel_y",  # position relative to the last observed position, canonical frame (units)
    "vel_x", "vel_y",  # velocity (units/s), backward difference, canonical frame
    "acc_x", "acc_y",  # acceleration (units/s^2), canonical frame
    "speed",  # |velocity| (units/s)
    "heading_cos", "heading_sin",  # direction of motion in the canonical frame (0, 0 when still)
    "turn_rate",  # change of heading per second (rad/s, 0 when still)
    "prior_speed",  # speed of the constant-velocity prior (units/s), the same at every step
    "log_w", "log_h",  # log of box width / height in units (0 without boxes)
    "log_h_rate",  # d log(h) / dt: approaching / receding (1/s)
    "gap_s",  # seconds since the object was last really observed (0 when observed at this step)
    "has_box",  # 1 for box data (pixels), 0 for point data (metres)
)
N_FREQ = 15
_FREQS = (2.0 * np.pi / (32.0 * 2.0 ** (-np.arange(N_FREQ) / 2.0))).astype(np.float32)  # periods 32 .. ~0.25
_CLIP = 50.0
_STILL = 0.05  # units/s below which an object counts as standing (no heading)


@dataclass(frozen=True)
class FeatureSpec:
    """Time grid, units and constant-velocity prior of a model's windows; stored in every checkpoint."""

    step_s: float = 0.4  # time between steps, seconds
    obs_len: int = 6  # observed steps (the last one is "now")
    pred_len: int = 12  # predicted steps after now
    metric_unit_m: float = 1.7  # metres per scale unit for point (metric) data
    version: int = 2  # bump when the encoding changes; checkpoints of another version are refused
    cv_steps: int = 1  # the prior's velocity is the displacement over the last cv_steps steps
    cv_gain: float = 1.0  # ... times this factor (tuned on the training sources)
    box_features: bool = True  # False: box size and its rate of change are left out (zeros): detector boxes wobble

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.obs_len < 2 or self.pred_len < 1:
            raise ValueError("FeatureSpec needs step_s > 0, obs_len >= 2 and pred_len >= 1")
        if not 1 <= self.cv_steps < self.obs_len:
            raise ValueError(f"cv_steps must be 1..obs_len-1 ({self.obs_len - 1}), got {self.cv_steps}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    """A batch of observed windows on the regular grid.

    xywh: (N, T, 4) centre x, y, width, height in source units (w = h = 0 for point data);
    gap_s: (N, T) seconds since a real observation; has_box: (N,) bool; frame_size: (N, 2) image
    width/height in pixels, or 0 when unknown (kept for drawing and bookkeeping; no feature uses it).
    """

    xywh: np.ndarray
    gap_s: np.ndarray
    has_box: np.ndarray
    frame_size: np.ndarray

    def __post_init__(self) -> None:
        if self.xywh.ndim != 3 or self.xywh.shape[2] != 4:
            raise ValueError(f"xywh must be (N, T, 4), got {self.xywh.shape}")
        n, t = self.xywh.shape[:2]
        if self.gap_s.shape != (n, t) or self.has_box.shape != (n,) or self.frame_size.shape != (n, 2):
            raise ValueError("gap_s, has_box and frame_size must match xywh's batch and time dims")

    def take(self, idx: slice | np.ndarray) -> Window:
        """The windows at `idx` (a slice, indices or a boolean mask)."""
        return Window(self.xywh[idx], self.gap_s[idx], self.has_box[idx], self.frame_size[idx])

    def last(self, steps: int) -> Window:
        """The same windows cut to their last `steps` steps (a model that looks back less far)."""
        return Window(self.xywh[:, -steps:], self.gap_s[:, -steps:], self.has_box, self.frame_size)


@dataclass(frozen=True)
class Canonical:
    """Per window: scale (N,) source units per body height, origin (N, 2) last position, rot (N, 2, 2).

    `rot` maps source-frame offsets to the canonical frame (tuned-cv heading along +x); its transpose maps back.
    """

    scale: np.ndarray
    origin: np.ndarray
    rot: np.ndarray

    def to_canonical(self, xy: np.ndarray) -> np.ndarray:
        """(N, T, 2) source positions -> canonical positions in units."""
        return np.einsum("nij,ntj->nti", self.rot, (xy - self.origin[:, None]) / self.scale[:, None, None])

    def to_source(self, xy_c: np.ndarray) -> np.ndarray:
        """(N, H, 2) canonical positions in units -> source positions."""
        back = np.einsum("nji,ntj->nti", self.rot, xy_c) * self.scale[:, None, None]
        return back + self.origin[:, None]

    def std_to_source(self, std_c: np.ndarray) -> np.ndarray:
        """(N, H, 2) canonical along/across 1-sigma -> per-axis source 1-sigma (diagonal of the rotated covariance)."""
        r2 = self.rot**2  # var_x = c^2 var_a + s^2 var_c, with rot = [[c, s], [-s, c]]
        var = np.einsum("nji,ntj->nti", r2, std_c**2)
        return np.sqrt(var) * self.scale[:, None, None]


def _velocity(xy: np.ndarray, step_s: float) -> np.ndarray:
    """Backward-difference velocity (N, T, 2) of positions (N, T, 2); the first step repeats the second."""
    vel = np.diff(xy, axis=1, prepend=xy[:, :1]) / step_s
    if xy.shape[1] > 1:
        vel[:, 0] = vel[:, 1]
    return vel


def window_scale(win: Window, spec: FeatureSpec) -> np.ndarray:
    """Source units per scale unit, (N,): median box height, or metric_unit_m for point data."""
    med_h = np.median(win.xywh[:, :, 3], axis=1)
    scale = np.where(win.has_box, med_h, spec.metric_unit_m)
    return np.maximum(scale, 1e-3)


def cv_velocity(xy: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The tuned constant-velocity estimate (N, 2): displacement over the last cv_steps, times cv_gain."""
    k = min(spec.cv_steps, xy.shape[1] - 1)
    return spec.cv_gain * (xy[:, -1] - xy[:, -1 - k]) / (k * spec.step_s)


def canonical(win: Window, spec: FeatureSpec) -> Canonical:
    """The canonical frame of each window: heading of the tuned cv, else of the whole window, else +x."""
    scale = window_scale(win, spec)
    xy = win.xywh[:, :, :2]
    d = cv_velocity(xy / scale[:, None, None], spec)
    whole = (xy[:, -1] - xy[:, 0]) / scale[:, None]
    use_whole = np.linalg.norm(d, axis=1) < _STILL
    d = np.where(use_whole[:, None], whole, d)
    norm = np.linalg.norm(d, axis=1)
    c = np.where(norm > 1e-6, d[:, 0] / np.maximum(norm, 1e-6), 1.0)
    s = np.where(norm > 1e-6, d[:, 1] / np.maximum(norm, 1e-6), 0.0)
    rot = np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)
    return Canonical(scale, xy[:, -1].copy(), rot)


def motion_quantities(win: Window, spec: FeatureSpec, frame: Canonical | None = None) -> np.ndarray:
    """The 16 raw quantities per step, (N, T, 16), in the canonical frame, scale units and seconds."""
    frame = frame or canonical(win, spec)
    dt = spec.step_s
    rel = frame.to_canonical(win.xywh[:, :, :2])
    vel = _velocity(rel, dt)
    acc = np.diff(vel, axis=1, prepend=vel[:, :1]) / dt
    speed = np.linalg.norm(vel, axis=2)
    moving = speed > _STILL
    heading = np.where(moving[..., None], vel / np.maximum(speed, 1e-6)[..., None], 0.0)
    angle = np.unwrap(np.arctan2(heading[..., 1], heading[..., 0]), axis=1)
    turn = np.diff(angle, axis=1, prepend=angle[:, :1]) / dt
    turn = np.where(moving & np.roll(moving, 1, axis=1), turn, 0.0)
    prior_speed = np.broadcast_to(np.linalg.norm(cv_velocity(rel, spec), axis=1)[:, None], speed.shape)
    box = win.has_box[:, None]
    wh = np.maximum(win.xywh[:, :, 2:], 1e-3) / frame.scale[:, None, None]
    log_wh = np.where(box[..., None] & spec.box_features, np.log(wh), 0.0)
    log_h_rate = np.diff(log_wh[:, :, 1], axis=1, prepend=log_wh[:, :1, 1]) / dt
    has_box = np.broadcast_to(box.astype(np.float64), speed.shape)
    cols = [rel[..., 0], rel[..., 1], vel[..., 0], vel[..., 1], acc[..., 0], acc[..., 1], speed, heading[..., 0],
            heading[..., 1], turn, prior_speed, log_wh[..., 0], log_wh[..., 1], log_h_rate, win.gap_s, has_box]
    return np.stack(cols, axis=2)


def encode(win: Window, spec: FeatureSpec, frame: Canonical | None = None) -> np.ndarray:
    """Feature tensor (N, T, 512) float32 for a batch of windows."""
    q = np.clip(motion_quantities(win, spec, frame), -_CLIP, _CLIP).astype(np.float32)  # float32: faster sin/cos
    phase = q[..., None] * _FREQS  # (N, T, 16, 15)
    feats = np.concatenate([q[..., None], np.tanh(q)[..., None], np.sin(phase), np.cos(phase)], axis=3)
    n, t = q.shape[:2]
    return feats.reshape(n, t, FEATURE_DIM)


def future_targets(win: Window, future_xywh: np.ndarray, spec: FeatureSpec, frame: Canonical | None = None) -> np.ndarray:
    """Training targets (N, H, 4): future centres in the canonical frame (units), and log size ratios."""
    frame = frame or canonical(win, spec)
    d_xy = frame.to_canonical(future_xywh[:, :, :2])
    now = win.xywh[:, -1:, :]
    ratio = np.maximum(future_xywh[:, :, 2:], 1e-3) / np.maximum(now[:, :, 2:], 1e-3)
    d_wh = np.where(win.has_box[:, None, None], np.log(ratio), 0.0)
    return np.concatenate([d_xy, d_wh], axis=2).astype(np.float32)


def targets_to_xywh(win: Window, targets: np.ndarray, spec: FeatureSpec, frame: Canonical | None = None) -> np.ndarray:
    """Inverse of `future_targets`: (N, H, 4) canonical offsets -> future xywh in source units."""
    frame = frame or canonical(win, spec)
    xy = frame.to_source(targets[:, :, :2].astype(np.float64))
    wh = win.xywh[:, -1:, 2:] * np.exp(np.clip(targets[:, :, 2:], -3, 3))
    return np.concatenate([xy, wh], axis=2)


def velocity_prior(win: Window, spec: FeatureSpec, steps: int, frame: Canonical | None = None) -> np.ndarray:
    """The tuned constant-velocity forecast (N, H, 4) in target space (canonical: mostly along +x).

    The LSTM predicts a bounded residual on top of this, so where it knows nothing it stays with cv.
    """
    frame = frame or canonical(win, spec)
    rel = frame.to_canonical(win.xywh[:, :, :2])
    vel = cv_velocity(rel, spec)
    t = spec.step_s * np.arange(1, steps + 1)
    prior = np.zeros((len(rel), steps, 4), np.float32)
    prior[:, :, :2] = vel[:, None, :] * t[None, :, None]
    return prior
