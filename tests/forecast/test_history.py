import numpy as np

from pipeline.core.config import HistoryConfig
from pipeline.forecast.history import TrackHistory
from pipeline.core.types import Tracks


def _tracks(ids, x):
    xyxy = [[x, 10, x + 10, 40] for _ in ids]
    return Tracks(np.asarray(xyxy, float).reshape(-1, 4), [0.9] * len(ids), [0] * len(ids), ids)


def test_history_is_bounded_and_forgets_lost_tracks():
    h = TrackHistory(HistoryConfig(history_s=1.0, max_lost_s=0.5), fps=10)
    for i in range(200):
        h.update(_tracks([1] + ([2] if i < 50 else []), float(i)), i / 10)
    assert len(h) == 1  # track 2 forgotten 0.5 s after it was last seen
    assert len(h.trail(1, since_s=-1)) <= h.maxlen
    assert len(h.trail(2, since_s=-1)) == 0


def test_windows_resample_on_the_model_grid_and_need_enough_history():
    h = TrackHistory(HistoryConfig(), fps=30)
    for i in range(31):  # 1 s at 30 fps, x moves 3 px per frame = 90 px/s
        h.update(_tracks([5], 3.0 * i), i / 30)
    ids, win = h.windows(np.array([5]), now_s=1.0, step_s=0.1, steps=10, frame_size=(640, 480))
    assert ids.tolist() == [5]
    np.testing.assert_allclose(np.diff(win.xywh[0, :, 0]), 9.0, atol=1e-6)
    ids, _ = h.windows(np.array([5]), now_s=1.0, step_s=0.2, steps=10, frame_size=(640, 480))
    assert ids.tolist() == []  # 1.8 s of history needed, only 1 s known


def test_gaps_are_reported():
    h = TrackHistory(HistoryConfig(max_lost_s=5), fps=10)
    for i in [0, 1, 2, 3, 8, 9, 10]:  # object missed for frames 4-7
        h.update(_tracks([1], float(i)), i / 10)
    _, win = h.windows(np.array([1]), now_s=1.0, step_s=0.1, steps=11, frame_size=(640, 480))
    assert win.gap_s[0, :4].max() == 0 and win.gap_s[0, 7] > 0.35
