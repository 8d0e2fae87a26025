"""`Trajectory`, what every loader (`pipeline.learning.loaders`) produces, and the shared windowing.

Windows are cut on the model's time grid by `make_windows`, which every consumer (training, eval) uses, so they
see the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.forecast.features import FeatureSpec, Window
from pipeline.forecast.history import resample


@dataclass(frozen=True)
class Trajectory:
    """One object's observations: times (K,) seconds, xywh (K, 4); w = h = 0 for point data."""

    key: str
    times: np.ndarray
    xywh: np.ndarray
    has_box: bool
    frame_size: tuple[float, float] = (0.0, 0.0)
    label: str = ""  # object class as the source names it (pedestrian, biker, car, ...); "" when unknown

    def __post_init__(self) -> None:
        if self.xywh.shape != (len(self.times), 4):
            raise ValueError(f"{self.key}: xywh must be (K, 4) matching times")
        if len(self.times) > 1 and np.any(np.diff(self.times) <= 0):
            raise ValueError(f"{self.key}: times must increase")


def default_max_gap(spec: FeatureSpec) -> float:
    """Longest interval between real observations a window may bridge: 1.5 steps, at least 1 s.

    1 s lets sources sampled more coarsely than the grid (Grand Central: 0.8 s) and short detector misses in
    video tracks in; the pipeline bridges gaps up to history.max_lost_s the same way (gap_s tells the model).
    """
    return max(1.5 * spec.step_s, 1.0)


def anchor_times(times: np.ndarray, spec: FeatureSpec, stride: int = 1) -> np.ndarray:
    """The observation times a window may end at ("now"): the first observation in every stride*step slot."""
    slot = np.floor((times - times[0]) / (stride * spec.step_s) + 1e-6)
    return times[np.unique(slot, return_index=True)[1]]


def track_windows(
    tr: Trajectory, now_s: np.ndarray, spec: FeatureSpec, max_gap_s: float | None = None
) -> tuple[Window, np.ndarray, np.ndarray]:
    """The windows of one trajectory ending at the times `now_s` (A,), cut as the pipeline cuts them.

    Returns the observed `Window` (A, obs_len), the future xywh (A, pred_len, 4) and a mask (A,) of the windows
    that are whole: inside the trajectory, with no interval between real observations longer than max_gap_s.
    """
    max_gap = default_max_gap(spec) if max_gap_s is None else max_gap_s
    offsets = spec.step_s * np.arange(-(spec.obs_len - 1), spec.pred_len + 1)
    grid = np.asarray(now_s, np.float64)[:, None] + offsets[None, :]
    boxes, gap, span = resample(tr.times, tr.xywh, grid)
    inside = (grid[:, 0] >= tr.times[0] - 1e-6) & (grid[:, -1] <= tr.times[-1] + 1e-6)
    ok = inside & (span <= max_gap + 1e-9).all(axis=1)
    n, t = len(grid), spec.obs_len
    win = Window(boxes[:, :t], gap[:, :t], np.full(n, tr.has_box), np.tile(np.asarray(tr.frame_size, np.float64), (n, 1)))
    return win, boxes[:, t:], ok


def make_windows(
    trajs: list[Trajectory], spec: FeatureSpec, stride: int = 1, max_gap_s: float | None = None
) -> tuple[Window, np.ndarray, list[str]]:
    """Cut (obs_len + pred_len)-step windows on the spec's grid from every trajectory.

    Each window ends at a real observation ("now", as in the pipeline, which forecasts at every frame), at
    most one per `stride` steps; see `track_windows`. Returns the observed `Window`, the future xywh
    (N, pred_len, 4), and each window's trajectory key.
    """
    parts: list[tuple[Window, np.ndarray]] = []
    keys: list[str] = []
    span = spec.step_s * (spec.obs_len + spec.pred_len - 1)
    for tr in trajs:
        if len(tr.times) < 2 or tr.times[-1] - tr.times[0] < span - 1e-6:
            continue
        win, fut, ok = track_windows(tr, anchor_times(tr.times, spec, stride), spec, max_gap_s)
        if ok.any():
            parts.append((win.take(ok), fut[ok]))
            keys += [tr.key] * int(ok.sum())
    win, fut = concat_windows(parts, spec)
    return win, fut, keys


def concat_windows(parts: list[tuple[Window, np.ndarray]], spec: FeatureSpec) -> tuple[Window, np.ndarray]:
    """One batch from several (Window, future) pairs; an empty list gives an empty batch."""
    if not parts:
        empty = Window(np.zeros((0, spec.obs_len, 4)), np.zeros((0, spec.obs_len)), np.zeros(0, bool), np.zeros((0, 2)))
        return empty, np.zeros((0, spec.pred_len, 4))
    ws = [p[0] for p in parts]
    win = Window(np.concatenate([w.xywh for w in ws]), np.concatenate([w.gap_s for w in ws]),
                 np.concatenate([w.has_box for w in ws]), np.concatenate([w.frame_size for w in ws]))
    return win, np.concatenate([p[1] for p in parts])
