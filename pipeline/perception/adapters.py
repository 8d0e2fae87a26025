"""Tracks from other people's tracking loops: supervision `Detections` with `tracker_id`, an ultralytics
`Results` from `model.track(..., persist=True)`, or plain arrays. Duck-typed, so neither library is imported.

Why here: like the detector, other libraries' types meet ours only at this edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.core.types import Tracks


def _np(x: Any) -> np.ndarray:
    """A numpy copy of an array, list or torch tensor (on any device)."""
    if hasattr(x, "detach"):
        x = x.detach()
    if hasattr(x, "cpu"):
        x = x.cpu()
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


def _build(xyxy: Any, track_id: Any, class_id: Any = None, confidence: Any = None) -> Tracks:
    boxes = _np(xyxy).astype(np.float64).reshape(-1, 4)
    n = len(boxes)
    ids = _np(track_id).reshape(-1)
    if len(ids) != n:
        raise ValueError(f"tracks: {n} boxes but {len(ids)} track ids; give one id per box")
    keep = np.array([v is not None and np.isfinite(float(v)) and float(v) > 0 for v in ids.tolist()], bool) \
        if n else np.zeros(0, bool)
    cls = np.zeros(n) if class_id is None else _np(class_id).reshape(-1)
    conf = np.ones(n) if confidence is None else _np(confidence).reshape(-1)
    return Tracks(boxes[keep], conf[keep].astype(np.float64), cls[keep].astype(np.int64),
                  ids[keep].astype(np.float64).astype(np.int64))


def as_tracks(obj: Any) -> tuple[Tracks, tuple[int, int] | None]:
    """Our `Tracks` (objects without a positive track id are left out: the tracker has not confirmed them)
    and the frame size (width, height) where the input knows it."""
    if isinstance(obj, Tracks):
        return obj, None
    if hasattr(obj, "tracker_id") and hasattr(obj, "xyxy"):  # supervision.Detections
        if obj.tracker_id is None:
            raise ValueError("these supervision Detections have no tracker_id: pass them through a tracker first, "
                             "e.g. sv.ByteTrack().update_with_detections(detections)")
        return _build(obj.xyxy, obj.tracker_id, obj.class_id, obj.confidence), None
    if hasattr(obj, "boxes") and hasattr(obj, "orig_shape"):  # ultralytics Results
        h, w = obj.orig_shape[:2]
        b = obj.boxes
        if b is None or b.id is None:  # no confirmed track yet on this frame
            return Tracks.empty(), (int(w), int(h))
        return _build(b.xyxy, b.id, b.cls, b.conf), (int(w), int(h))
    if isinstance(obj, Mapping):
        missing = {"xyxy", "track_id"} - set(obj)
        if missing:
            raise ValueError(f"tracks as a mapping need keys xyxy and track_id (class_id, confidence optional); "
                             f"missing {sorted(missing)}")
        return _build(obj["xyxy"], obj["track_id"], obj.get("class_id"), obj.get("confidence")), None
    if isinstance(obj, tuple) and len(obj) in (2, 3, 4):
        return _build(*obj), None
    raise TypeError(f"tracks must be supervision Detections with tracker_id, an ultralytics Results from "
                    f"model.track(..., persist=True), a mapping or tuple of arrays (xyxy, track_id[, class_id]), or "
                    f"pipeline Tracks; got {type(obj).__name__}")
