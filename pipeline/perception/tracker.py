"""Multi-object tracking with ultralytics' ByteTrack / BoT-SORT, adapted to our `Detections`/`Tracks`."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from pipeline.core.config import TrackerConfig
from pipeline.core.types import Detections, Tracks


class MultiObjectTracker:
    """Associates detections across frames. Ids are per tracker instance: 1, 2, 3 ... in the order tracks are
    confirmed (ultralytics' own counter also counts tentative tracks that never were, e.g. 1,242 for 175 tracks
    on the crossing), so every output numbers objects the way a person would."""

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
        self._forget_frames = 2 * args.track_buffer + 1  # the tracker has dropped a raw id unseen this long
        self._ids: dict[int, list[int]] = {}  # ultralytics' id -> [our id, frame last seen]
        self._next = 1
        self._frame = 0

    def update(self, detections: Detections, image: np.ndarray | None = None) -> Tracks:
        """Feed one frame's detections (every frame, even empty ones) and get the confirmed tracks."""
        from ultralytics.engine.results import Boxes

        data = np.hstack([detections.xyxy, detections.confidence[:, None], detections.class_id[:, None]])
        h, w = (image.shape[:2] if image is not None else (1, 1))
        out = self._impl.update(Boxes(data.astype(np.float32), (h, w)), image)
        self._frame += 1
        ids: np.ndarray
        if len(out) == 0:
            ids = np.zeros(0, np.int64)
        else:
            ids = np.array([self._our_id(int(r)) for r in out[:, 4]], np.int64)
        if self._frame % 100 == 0:  # bounded on endless streams
            self._ids = {r: v for r, v in self._ids.items() if self._frame - v[1] <= self._forget_frames}
        if len(out) == 0:
            return Tracks.empty()
        return Tracks(out[:, :4], out[:, 5], out[:, 6].astype(np.int64), ids)

    def _our_id(self, raw: int) -> int:
        rec = self._ids.get(raw)
        if rec is None:
            rec = self._ids[raw] = [self._next, self._frame]
            self._next += 1
        rec[1] = self._frame
        return rec[0]

    def reset(self) -> None:
        """Forget every track and restart ids at 1."""
        self._impl.reset()
        self._ids, self._next = {}, 1
