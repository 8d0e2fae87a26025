"""Multi-object tracking with ultralytics' ByteTrack / BoT-SORT, adapted to our `Detections`/`Tracks`."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from pipeline.core.config import TrackerConfig
from pipeline.core.types import Detections, Tracks


class MultiObjectTracker:
    """Associates detections across frames; ids are per tracker instance and start at 1."""

    def __init__(self, config: TrackerConfig, fps: float) -> None:
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker

        self.config = config
        args = SimpleNamespace(
            tracker_type=config.type,
            track_high_thresh=config.track_high_thresh,
            track_low_thresh=config.track_low_thresh,
            new_track_thresh=config.new_track_thresh,
            track_buffer=max(1, round(config.track_buffer_s * fps)),
            match_thresh=config.match_thresh,
            fuse_score=config.fuse_score,
            gmc_method=config.gmc_method,
            proximity_thresh=config.proximity_thresh,
            appearance_thresh=config.appearance_thresh,
            with_reid=False,
            model="auto",
        )
        self._impl = BYTETracker(args) if config.type == "bytetrack" else BOTSORT(args)

    def update(self, detections: Detections, image: np.ndarray | None = None) -> Tracks:
        """Feed one frame's detections (every frame, even empty ones) and get the confirmed tracks."""
        from ultralytics.engine.results import Boxes

        data = np.hstack([detections.xyxy, detections.confidence[:, None], detections.class_id[:, None]])
        h, w = (image.shape[:2] if image is not None else (1, 1))
        out = self._impl.update(Boxes(data.astype(np.float32), (h, w)), image)
        if len(out) == 0:
            return Tracks.empty()
        return Tracks(out[:, :4], out[:, 5], out[:, 6].astype(np.int64), out[:, 4].astype(np.int64))

    def reset(self) -> None:
        """Forget every track and restart ids at 1."""
        self._impl.reset()
