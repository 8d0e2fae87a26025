"""Stage boundaries: small dataclasses of numpy arrays, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _as(a: np.ndarray | list, dtype: type, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    arr: np.ndarray = np.asarray(a, dtype=dtype)
    if arr.ndim == 1 and shape_tail and arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    if arr.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape_tail))}), got {arr.shape}")
    return arr


@dataclass(frozen=True)
class Frame:
    """One decoded image with its explicit time (seconds since the start of the source)."""

    index: int
    time_s: float
    image: np.ndarray  # HxWx3 BGR uint8

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"frame image must be HxWx3, got {self.image.shape}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True)
class Detections:
    """Boxes of one frame: xyxy pixels, confidence in [0, 1], integer class ids."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyxy", _as(self.xyxy, np.float32, (4,), "xyxy"))
        object.__setattr__(self, "confidence", np.asarray(self.confidence, np.float32).reshape(-1))
        object.__setattr__(self, "class_id", np.asarray(self.class_id, np.int64).reshape(-1))
        n = len(self.xyxy)
        if len(self.confidence) != n or len(self.class_id) != n:
            raise ValueError("xyxy, confidence and class_id must have the same length")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))


@dataclass(frozen=True)
class Tracks(Detections):
    """Detections that carry a persistent per-object track id (positive integers)."""

    track_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "track_id", np.asarray(self.track_id, np.int64).reshape(-1))
        if len(self.track_id) != len(self.xyxy):
            raise ValueError("track_id must have one entry per box")

    @property
    def centers(self) -> np.ndarray:
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2], axis=1)

    @classmethod
    def empty(cls) -> Tracks:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros(0))


@dataclass(frozen=True)
class Forecasts:
    """Future positions of N tracks at H future times (seconds after the current frame).

    `centers` is (N, H, 2) in the source's units (pixels for video); `boxes` (N, H, 4) xyxy is optional
    because some predictors only forecast centres; `std` (N, H, 2) is an optional 1-sigma uncertainty: the
    semi-axes of the ellipse meant to hold the true position 39.3 % of the time. `std2` (N, H, 2), optional, is
    the 2-sigma region (86.5 %): 2 x std for Gaussian errors, wider when recalibration found heavier tails.
    """

    track_id: np.ndarray
    t_future_s: np.ndarray
    centers: np.ndarray
    boxes: np.ndarray | None = None
    std: np.ndarray | None = None
    std2: np.ndarray | None = None
    served: str = ""  # the predictor that made them ("lstm", "cv", "kalman"; auto serves one of them)

    def __post_init__(self) -> None:
        object.__setattr__(self, "track_id", np.asarray(self.track_id, np.int64).reshape(-1))
        object.__setattr__(self, "t_future_s", np.asarray(self.t_future_s, np.float64).reshape(-1))
        n, h = len(self.track_id), len(self.t_future_s)
        centers = np.asarray(self.centers, np.float64).reshape(n, h, 2)
        object.__setattr__(self, "centers", centers)
        if self.boxes is not None:
            object.__setattr__(self, "boxes", np.asarray(self.boxes, np.float64).reshape(n, h, 4))
        if self.std is not None:
            object.__setattr__(self, "std", np.asarray(self.std, np.float64).reshape(n, h, 2))
        if self.std2 is not None:
            if self.std is None:
                raise ValueError("std2 (the 2-sigma region) needs std (the 1-sigma region) too")
            object.__setattr__(self, "std2", np.asarray(self.std2, np.float64).reshape(n, h, 2))
        if h and np.any(np.diff(self.t_future_s) <= 0):
            raise ValueError("t_future_s must be strictly increasing")

    def __len__(self) -> int:
        return len(self.track_id)

    @property
    def xy(self) -> np.ndarray:
        """(N, H, 2) forecast centres, pixels for video (the same array as `centers`)."""
        return self.centers

    @property
    def t_s(self) -> np.ndarray:
        """(H,) seconds after now of each forecast step (the same array as `t_future_s`)."""
        return self.t_future_s

    def to_columns(self, time_s: float = 0.0, frame: int = 0,
                   class_names: dict[int, str] | None = None) -> dict[str, np.ndarray]:
        """predictions.csv's columns as arrays, one row per track and step (missing boxes or spreads: NaN);
        `class_names`: track id -> class name (empty where not given)."""
        n, h = len(self.track_id), len(self.t_future_s)
        nan = np.full((n, h), np.nan)
        box = self.boxes if self.boxes is not None else np.stack([nan] * 4, axis=-1)
        std = self.std if self.std is not None else np.stack([nan] * 2, axis=-1)
        std2 = self.std2 if self.std2 is not None else np.stack([nan] * 2, axis=-1)
        cols = {"frame": np.full((n, h), frame), "time_s": np.full((n, h), float(time_s)),
                "track_id": np.repeat(self.track_id[:, None], h, axis=1),
                "class_name": np.array([[(class_names or {}).get(int(t), "")] * h for t in self.track_id],
                                       dtype=object).reshape(n, h),
                "step": np.tile(np.arange(1, h + 1), (n, 1)), "t_future_s": np.tile(self.t_future_s, (n, 1)),
                "t_target_s": np.tile(time_s + self.t_future_s, (n, 1)),
                "pred_cx": self.centers[..., 0], "pred_cy": self.centers[..., 1],
                **{k: box[..., i] for i, k in enumerate(("pred_x1", "pred_y1", "pred_x2", "pred_y2"))},
                "std_x": std[..., 0], "std_y": std[..., 1], "std2_x": std2[..., 0], "std2_y": std2[..., 1]}
        return {k: np.asarray(v).reshape(-1) for k, v in cols.items()}

    def to_dataframe(self, time_s: float = 0.0, frame: int = 0, class_names: dict[int, str] | None = None) -> Any:
        """A pandas DataFrame with predictions.csv's columns (pandas comes with the parquet extra, not the runtime)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Forecasts.to_dataframe needs pandas: pip install 'trajpred[parquet]' "
                              "(or use to_columns(), a dict of numpy arrays)") from e
        return pd.DataFrame(self.to_columns(time_s, frame, class_names))

    @classmethod
    def empty(cls, t_future_s: np.ndarray) -> Forecasts:
        return cls(np.zeros(0), t_future_s, np.zeros((0, len(t_future_s), 2)))
