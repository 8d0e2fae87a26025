"""Bounded per-track history of boxes, and its resampling onto a model's regular time grid."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from pipeline.core.config import HistoryConfig
from pipeline.forecast.features import Window
from pipeline.core.types import Tracks


@dataclass
class _TrackLog:
    times: deque
    boxes: deque  # xywh rows
    class_id: int = 0
    last_seen_s: float = 0.0


class TrackHistory:
    """Keeps at most `history_s` seconds (and a frame-count cap) of boxes per track.

    Tracks unseen for longer than `max_lost_s` are forgotten, so memory stays flat on endless streams.
    """

    def __init__(self, config: HistoryConfig, fps: float) -> None:
        self.config = config
        self.maxlen = max(4, int(np.ceil(config.history_s * fps)) + 2)
        self._logs: dict[int, _TrackLog] = {}

    def __len__(self) -> int:
        return len(self._logs)

    def update(self, tracks: Tracks, time_s: float) -> None:
        """Append this frame's boxes and forget stale tracks."""
        xyxy = tracks.xyxy.astype(np.float64)
        xywh = np.stack(
            [(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2, xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]],
            axis=1,
        )
        for tid, box, cls in zip(tracks.track_id.tolist(), xywh, tracks.class_id.tolist()):
            log = self._logs.get(tid)
            if log is None:
                log = self._logs[tid] = _TrackLog(deque(maxlen=self.maxlen), deque(maxlen=self.maxlen))
            log.times.append(time_s)
            log.boxes.append(box)
            log.class_id = cls
            log.last_seen_s = time_s
        horizon = time_s - self.config.history_s
        for tid in [t for t, log in self._logs.items() if time_s - log.last_seen_s > self.config.max_lost_s]:
            del self._logs[tid]
        for log in self._logs.values():
            while len(log.times) > 2 and log.times[1] < horizon:
                log.times.popleft()
                log.boxes.popleft()

    def trail(self, track_id: int, since_s: float) -> np.ndarray:
        """Past centres (K, 2) of one track observed at or after `since_s`."""
        log = self._logs.get(track_id)
        if log is None:
            return np.zeros((0, 2))
        pts = [b[:2] for t, b in zip(log.times, log.boxes) if t >= since_s]
        return np.asarray(pts, np.float64).reshape(-1, 2)

    def windows(
        self, track_ids: np.ndarray, now_s: float, step_s: float, steps: int, frame_size: tuple[int, int]
    ) -> tuple[np.ndarray, Window]:
        """Resample the given tracks on the grid now - (steps-1)*step .. now.

        Returns the ids that have enough history (first observation no later than the grid start) and
        their `Window`. Points between observations are linearly interpolated; `gap_s` says how stale each is.
        Training cuts its windows with the same `resample` (learning/datasets.py), so both see the same data.
        """
        grid = now_s - step_s * np.arange(steps - 1, -1, -1)
        ok_ids, boxes, gaps = [], [], []
        for tid in np.asarray(track_ids).tolist():
            log = self._logs.get(tid)
            if log is None or log.times[0] > grid[0] + 1e-6 or log.times[-1] < now_s - 1e-6:
                continue
            b, g, _ = resample(np.fromiter(log.times, np.float64, len(log.times)), np.asarray(log.boxes, np.float64), grid)
            boxes.append(b)
            gaps.append(g)
            ok_ids.append(tid)
        n = len(ok_ids)
        win = Window(
            xywh=np.asarray(boxes, np.float64).reshape(n, steps, 4),
            gap_s=np.asarray(gaps, np.float64).reshape(n, steps),
            has_box=np.ones(n, bool),
            frame_size=np.tile(np.asarray(frame_size, np.float64), (n, 1)),
        )
        return np.asarray(ok_ids, np.int64), win


def resample(times: np.ndarray, xywh: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One track's observations (K,), (K, 4) on a time grid (any shape G): the one resampling of the project.

    Returns boxes (*G, 4) linearly interpolated between observations, gap_s (*G,) seconds since the last real
    observation at or before each grid time, and span_s (*G,) the length of the interval between the real
    observations around it (0 where a grid time is an observation). Interpolating a grid time uses only the
    observations on either side of it, so a window that ends at an observation never sees anything later.
    """
    flat = np.asarray(grid, np.float64).ravel()
    boxes = np.stack([np.interp(flat, times, xywh[:, k]) for k in range(4)], axis=-1)
    prev = np.clip(np.searchsorted(times, flat + 1e-9, side="right") - 1, 0, len(times) - 1)
    nxt = np.clip(np.searchsorted(times, flat - 1e-9, side="left"), 0, len(times) - 1)
    gap = np.maximum(flat - times[prev], 0.0)
    span = np.where(gap < 1e-6, 0.0, times[nxt] - times[prev])
    shape = np.shape(grid)
    return boxes.reshape(*shape, 4), gap.reshape(shape), span.reshape(shape)
