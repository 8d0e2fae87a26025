"""One path from a track to a window: the windows `track` forecasts from are the windows training cuts from the
tracks.csv that run wrote (same resampling, same gaps, same features), on a real video."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.config import TrackRunConfig, from_dict, load_yaml, merge
from pipeline.forecast.features import QUANTITIES, FeatureSpec, motion_quantities
from pipeline.forecast.history import TrackHistory
from pipeline.learning.datasets import track_windows
from pipeline.learning.loaders.tracks import load_tracks_csv
from pipeline.apps.track_run import run_track
from tests.conftest import DETECTOR, ROOT, VTEST


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Run `track` on 120 real frames, recording every window the pipeline builds."""
    out = tmp_path_factory.mktemp("run") / "vtest"
    seen: list[tuple[float, np.ndarray, object]] = []
    original = TrackHistory.windows

    def recording(self, track_ids, now_s, step_s, steps, frame_size):
        ids, win = original(self, track_ids, now_s, step_s, steps, frame_size)
        if steps == 6 and abs(step_s - 0.4) < 1e-9:
            seen.append((now_s, ids, win))
        return ids, win

    over = {"detector": {"weights": str(DETECTOR)}, "predictor": {"kind": "cv"}, "output": {"video": False}}
    cfg = from_dict(TrackRunConfig, merge(load_yaml(ROOT / "configs" / "default.yaml"), over))
    mp = pytest.MonkeyPatch()
    mp.setattr(TrackHistory, "windows", recording)
    try:
        run_track(VTEST, out, cfg, quiet=True, max_frames=120)
    finally:
        mp.undo()
    return out, seen


def test_pipeline_windows_equal_the_training_windows_of_its_own_tracks_csv(served):
    out, seen = served
    trajs = {t.key.rsplit(":", 1)[1]: t for t in load_tracks_csv(out / "tracks.csv")}
    spec = FeatureSpec(step_s=0.4, obs_len=6, pred_len=1)
    compared = moving = 0
    for now, ids, win in seen:
        for i, tid in enumerate(ids.tolist()):
            tr = trajs[str(tid)]
            cut, _, _ = track_windows(tr, np.array([now]), spec)
            # tracks.csv keeps 2 decimals of a pixel and 4 of a second: that is the only difference allowed
            np.testing.assert_allclose(cut.xywh[0], win.xywh[i], atol=0.011)
            np.testing.assert_allclose(cut.gap_s[0], win.gap_s[i], atol=1e-3)
            q_cut, q_run = motion_quantities(cut, spec)[0], motion_quantities(win.take(np.array([i])), spec)[0]
            if q_run[-1, QUANTITIES.index("prior_speed")] > 0.2:  # standing still, rounding may turn the heading
                np.testing.assert_allclose(q_cut, q_run, atol=0.02)  # the 16 quantities the encoder lifts to 512
                moving += 1
            compared += 1
    assert compared > 100 and moving > 30  # a real number of windows (forecasts every 0.4 s), from many tracks
    assert len({int(t) for _, ids, _ in seen for t in ids}) > 5


def test_training_cuts_a_window_at_every_frame_the_pipeline_forecast(served):
    """Every (track, frame) the pipeline forecast from is a whole window for training too (if its future exists)."""
    out, seen = served
    trajs = {t.key.rsplit(":", 1)[1]: t for t in load_tracks_csv(out / "tracks.csv")}
    spec = FeatureSpec(step_s=0.4, obs_len=6, pred_len=1)
    ok = [track_windows(trajs[str(tid)], np.array([now]), spec)[2][0]
          for now, ids, _ in seen for tid in ids.tolist() if trajs[str(tid)].times[-1] >= now + 0.4]
    assert len(ok) > 100 and np.mean(ok) > 0.95  # forecasts are made every 0.4 s: every 4th vtest frame
