"""Track ids: 1, 2, 3 ... in the order tracks are confirmed, however many tentative tracks came and went."""

from __future__ import annotations

import numpy as np

from pipeline.core.config import TrackerConfig
from pipeline.core.types import Detections
from pipeline.perception.tracker import MultiObjectTracker

IMAGE = np.zeros((480, 640, 3), np.uint8)


def _frame(k: int) -> Detections:
    """Three people walking right, a fourth from frame 30, and from frame 1 one flash detection on every frame,
    never where the last one was (a tentative track that is never confirmed)."""
    walkers = [[20 + 3 * k + 150 * i, 100, 60 + 3 * k + 150 * i, 200] for i in range(3)]
    walkers += [[500 - 2 * (k - 30), 20, 530 - 2 * (k - 30), 80]] if k >= 30 else []
    flash = [[(137.0 * k) % 560, 250.0 + 80 * (k % 2), (137.0 * k) % 560 + 30, 310.0 + 80 * (k % 2)]] if k else []
    boxes = np.array(walkers + flash, float)
    return Detections(boxes, np.full(len(boxes), 0.9), np.zeros(len(boxes), np.int64))


def test_ids_count_confirmed_tracks_only_and_restart_after_reset():
    tracker = MultiObjectTracker(TrackerConfig(), fps=25.0)
    seen: list[int] = []
    for k in range(60):
        tr = tracker.update(_frame(k), IMAGE)
        seen += [t for t in tr.track_id.tolist() if t not in seen]
    raw_of_fourth = next(raw for raw, (ours, _) in tracker._ids.items() if ours == 4)
    assert seen == [1, 2, 3, 4] and raw_of_fourth > 25  # ultralytics counted each flash as a tentative track
    tracker.reset()
    tr = tracker.update(_frame(0), IMAGE)
    assert sorted(tr.track_id.tolist()) == [1, 2, 3]
