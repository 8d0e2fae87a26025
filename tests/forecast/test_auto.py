"""`--predictor auto`: warm-up, hysteresis, per-track fallback, members on their own grids, and a real run."""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest

from pipeline.core.config import HistoryConfig
from pipeline.core.errors import UserError
from pipeline.forecast.auto import AutoSelector, AutoSettings, SelfScoringForecaster, serve
from pipeline.forecast.features import Window
from pipeline.forecast.history import TrackHistory
from pipeline.core.types import Forecasts, Tracks
from tests.conftest import DETECTOR, VTEST, run_cli

NAMES = ["lstm", "cv", "kalman"]


def test_fallback_is_served_until_enough_windows_are_scored():
    sel = AutoSelector(NAMES, AutoSettings(warmup=30, fallback="kalman"))
    scores = {"lstm": 0.10, "cv": 0.20, "kalman": 0.30}
    assert [sel.choose(n, scores) for n in (0, 10, 29)] == ["kalman"] * 3
    assert sel.choose(30, scores) == "lstm" and sel.switches == 1


def test_switching_needs_a_margin_and_does_not_flicker():
    sel = AutoSelector(NAMES, AutoSettings(warmup=10, fallback="cv", margin=0.05, dwell=20))
    assert sel.choose(10, {"lstm": 0.200, "cv": 0.205, "kalman": 0.210}) == "cv"  # 2.4 % better: stay
    served = [sel.choose(11 + i, {"lstm": 0.20 + 0.004 * (-1) ** i, "cv": 0.20, "kalman": 0.3}) for i in range(50)]
    assert set(served) == {"cv"} and sel.switches == 0  # +-2 % noise around a tie never switches
    assert sel.choose(100, {"lstm": 0.18, "cv": 0.20, "kalman": 0.3}) == "lstm"  # 10 % better: switch
    assert sel.choose(110, {"lstm": 0.20, "cv": 0.15, "kalman": 0.3}) == "lstm"  # dwell: 10 < 20 new windows
    assert sel.choose(120, {"lstm": 0.20, "cv": 0.15, "kalman": 0.3}) == "cv" and sel.switches == 2


def test_unscored_members_are_never_chosen():
    sel = AutoSelector(NAMES, AutoSettings(warmup=0))
    assert sel.choose(5, {"lstm": math.nan, "cv": math.nan, "kalman": math.nan}) == "kalman"
    assert sel.choose(5, {"lstm": math.nan, "cv": 0.1, "kalman": 0.2}) == "cv"
    with pytest.raises(ValueError):
        AutoSelector(["cv"], AutoSettings(fallback="kalman"))


def test_auto_is_the_default_and_its_settings_are_checked():
    from pipeline.core.config import PredictorConfig, TrackRunConfig, from_dict

    assert PredictorConfig().kind == "auto" and PredictorConfig().auto_fallback == "kalman"
    for bad, key in (({"auto_fallback": "auto"}, "predictor.auto_fallback"), ({"auto_warmup": -1}, "predictor.auto_warmup")):
        with pytest.raises(UserError, match=key):
            from_dict(TrackRunConfig, {"predictor": bad})


def _fc(ids: list[int], t: np.ndarray, vx: float, boxes: bool = True, std: bool = False) -> Forecasts:
    """Track i at (i, 0) moving at vx px/s, boxes 10 px wide."""
    c = np.stack([np.stack([i + vx * t, np.zeros_like(t)], axis=1) for i in ids]).reshape(len(ids), len(t), 2)
    b = np.concatenate([c - 5, c + 5], axis=2) if boxes else None
    return Forecasts(np.asarray(ids), t, c, boxes=b, std=np.ones_like(c) if std else None)


def test_serve_takes_each_track_from_the_first_member_that_forecast_it_on_the_first_grid():
    coarse, fine = 0.4 * np.arange(1, 6), 0.1 * np.arange(1, 21)
    fcs = {"kalman": _fc([3], coarse, 10.0, std=True), "lstm": _fc([3, 5, 7], fine, 10.0), "cv": _fc([7, 9], coarse, 99.0)}
    out = serve(["kalman", "lstm", "cv"], fcs, np.array([9, 7, 5, 3, 4]))
    assert out.track_id.tolist() == [9, 7, 5, 3]  # the tracks' order; 4 was forecast by nobody
    np.testing.assert_allclose(out.t_future_s, coarse)
    np.testing.assert_allclose(out.centers[1, :, 0], 7 + 10.0 * coarse)  # lstm's, resampled onto 0.4 s
    np.testing.assert_allclose(out.centers[0, :, 0], 9 + 99.0 * coarse)  # only cv had 9
    assert out.boxes is not None and out.std is None  # not every member gives a std
    assert serve(["kalman", "lstm"], {"kalman": fcs["lstm"], "lstm": fcs["kalman"]}, np.array([3, 5, 7])) is fcs["lstm"]


class _Fake:
    """A predictor on its own grid: constant velocity from the last two points, plus a fixed offset in x."""

    def __init__(self, step_s: float, obs_len: int, horizon: int, offset: float) -> None:
        self.step_s, self.obs_len, self.horizon, self.offset = step_s, obs_len, horizon, offset

    def predict(self, win: Window) -> tuple[np.ndarray, None]:
        v = (win.xywh[:, -1] - win.xywh[:, -2]) / self.step_s
        t = self.step_s * np.arange(1, self.horizon + 1)
        out = win.xywh[:, -1:, :] + v[:, None, :] * t[None, :, None] * np.array([1, 1, 0, 0])
        out[:, :, 0] += self.offset
        return out, None


def _tracks(t: float, ids: list[int]) -> Tracks:
    xy = [(100.0 + 40 * i + 20 * t, 200.0 + 5 * t) for i in ids]
    return Tracks([[x - 10, y - 25, x + 10, y + 25] for x, y in xy], np.ones(len(ids)), np.zeros(len(ids)), ids)


def test_members_run_on_their_own_grids_and_the_best_is_served_after_the_warm_up():
    members = {"lstm": _Fake(0.1, 10, 20, 0.0), "cv": _Fake(0.4, 6, 5, 5.0), "kalman": _Fake(0.4, 6, 5, 10.0)}
    f = SelfScoringForecaster(members, AutoSettings(warmup=30, fallback="kalman"))
    history, calls, served = TrackHistory(HistoryConfig(), 10.0), [], []
    for k in range(120):
        t = k / 10.0
        tracks = _tracks(t, [1, 2] if k < 30 else [1, 2, 3])  # track 3 appears late

        def windows(step, n, t=t, tracks=tracks):
            calls.append((k, step, n))
            return history.windows(tracks.track_id, t, step, n, (640, 480))

        history.update(tracks, t)
        fc = f.update(t, tracks, windows)
        served.append((f.served, f.scorer.scored(2.0), fc))
    assert all(sum(1 for c in calls if c[0] == k) == 2 for k in range(120))  # one window per grid per frame
    first_lstm = next(i for i, s in enumerate(served) if s[0] == "lstm")
    # a frame's choice is made on the windows scored up to the frame before (then its forecasts are scored)
    assert all(s[0] == "kalman" for s in served[:first_lstm])
    assert served[first_lstm - 1][1] >= 30 > served[first_lstm - 2][1]
    assert {s[0] for s in served[first_lstm:]} == {"lstm"} and f.selector.switches == 1
    fc = served[first_lstm][2]
    np.testing.assert_allclose(fc.t_future_s, 0.1 * np.arange(1, 21))
    name, _, late = served[42]  # during the warm-up track 3 has 1.2 s of history: enough for lstm only
    assert name == "kalman" and late.track_id.tolist() == [1, 2, 3] and first_lstm > 42
    np.testing.assert_allclose(late.t_future_s, 0.4 * np.arange(1, 6))  # on the served member's grid
    x_now = 100.0 + 40 * 3 + 20 * 4.2
    np.testing.assert_allclose(late.centers[2, :, 0], x_now + 20 * late.t_future_s, atol=1e-6)  # lstm's, exact
    np.testing.assert_allclose(late.centers[0, :, 0], 140.0 + 20 * (4.2 + late.t_future_s) + 10.0, atol=1e-6)
    rows = {(s.predictor, s.horizon_s): s for s in f.scorer.scores()}
    assert rows["lstm", 2.0].ade_bh == pytest.approx(0.0, abs=1e-4)
    assert rows["cv", 2.0].ade_bh == pytest.approx(0.1, abs=1e-4) and rows["kalman", 2.0].fde_bh == pytest.approx(0.2, abs=1e-4)
    assert len({rows[n, h].windows for n in NAMES for h in (2.0,)}) == 1
    assert f.summary_line().endswith("; serving lstm (switches: 1)")


def test_at_steps_forecasts_on_the_step_grid_and_holds_the_last_forecasts_between():
    """At 25 fps and 0.4 s steps: a forecast every 10th frame; between, the last one of the tracks still present."""
    f = SelfScoringForecaster({"cv": _Fake(0.4, 3, 5, 0.0)}, None, at_steps=True)
    history, fresh, made = TrackHistory(HistoryConfig(), 25.0), [], []
    for k in range(120):
        t = k / 25.0
        tracks = _tracks(t, [1, 2] if k < 45 else [2])  # track 1 leaves at frame 45
        history.update(tracks, t)
        fc = f.update(t, tracks, lambda step, n, t=t, tracks=tracks: history.windows(tracks.track_id, t, step, n, (640, 480)))
        fresh.append(f.fresh)
        made.append(fc)
    assert [k for k, x in enumerate(fresh) if x] == list(range(0, 120, 10))
    assert made[23].track_id.tolist() == made[20].track_id.tolist() == [1, 2]  # held
    np.testing.assert_allclose(made[23].centers, made[20].centers, atol=1e-4)  # steady motion: the same path
    np.testing.assert_allclose(made[23].t_future_s, made[20].t_future_s - 3 / 25.0)  # their times count from now
    assert made[29].t_future_s[0] > 0  # held for less than a step: every point still ahead
    assert made[47].track_id.tolist() == [2]  # a track that left is no longer drawn
    np.testing.assert_allclose(made[47].centers[0], made[40].centers[1], atol=1e-4)
    assert f.scorer.scored(2.0) > 0  # observations between steps still score the forecasts
    f.update(0.0, _tracks(0.0, [1]), lambda step, n: (np.zeros(0, np.int64), Window(np.zeros((0, n, 4)),
             np.zeros((0, n)), np.zeros(0, bool), np.zeros((0, 2)))))
    assert f.fresh  # time went back (a new stream): the grid restarts


def test_held_forecasts_start_where_the_object_is_now():
    """An object 8 px off its forecast course between steps: the held path moves with it, times count from now."""
    f = SelfScoringForecaster({"cv": _Fake(0.4, 3, 5, 0.0)}, None, at_steps=True)
    history = TrackHistory(HistoryConfig(), 25.0)

    def step(k: int, dx: float = 0.0) -> Forecasts:
        t = k / 25.0
        tracks = _tracks(t, [1])
        tracks = Tracks(tracks.xyxy + [dx, 0, dx, 0], tracks.confidence, tracks.class_id, tracks.track_id)
        history.update(tracks, t)
        return f.update(t, tracks, lambda s, n: history.windows(tracks.track_id, t, s, n, (640, 480)))

    for k in range(21):
        made = step(k)
    assert f.fresh and len(made) == 1
    held = step(21, dx=8.0)
    assert not f.fresh
    np.testing.assert_allclose(held.centers, made.centers + [8.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(held.t_future_s, made.t_future_s - 1 / 25.0)


# --- a real run ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_auto_run_scores_every_member_on_the_same_windows_and_names_the_served_one(tmp_path):
    out = tmp_path / "auto"
    proc = run_cli("track", "--source", str(VTEST), "--weights", str(DETECTOR), "--out", str(out), "--max-frames",
                   "150", "--no-video", "--quiet", "--predictor", "auto")
    assert proc.returncode == 0, proc.stderr
    with (out / "forecast_scores.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["predictor"] for r in rows} == {*NAMES, "auto"}  # the members and what auto really served
    for h in {r["horizon_s"] for r in rows}:
        windows = {r["windows"] for r in rows if r["horizon_s"] == h}
        assert len(windows) == 1 and int(windows.pop()) > 50  # the same windows for every member
    served = {r["predictor"] for r in rows if r["served"] == "1"}
    assert len(served) == 1 and served <= set(NAMES)
    line = re.search(r"forecast self-score @2 s: lstm ADE [\d.]+ / cv ADE [\d.]+ / kalman ADE [\d.]+ / auto ADE "
                     r"[\d.]+ body heights over \d+ windows; serving (\w+)", proc.stdout)
    assert line and line[1] == served.pop(), proc.stdout


# --- tracks younger than the models' window ---------------------------------------------------------------------


def test_young_tracks_get_a_kalman_forecast_after_min_history_and_are_never_scored():
    """Track 1 from t=0, track 2 from t=3: between 0.8 and 2 s old track 2 is forecast by the short Kalman, before
    0.8 s not at all; the scores count only windows every member forecast, with or without young forecasts."""
    from pipeline.core.config import PredictorConfig
    from pipeline.forecast.auto import build_forecaster

    def run(cfg: PredictorConfig) -> tuple[SelfScoringForecaster, dict[float, list[int]]]:
        f = build_forecaster(cfg, at_steps=True)
        history, seen = TrackHistory(HistoryConfig(), 10.0), {}
        for k in range(80):
            t = k / 10.0
            tracks = _tracks(t, [1] if t < 3.0 - 1e-9 else [1, 2])
            history.update(tracks, t)
            fc = f.update(t, tracks, lambda s, n, t=t, tracks=tracks: history.windows(tracks.track_id, t, s, n, (640, 480)))
            if f.fresh:
                seen[round(t, 1)] = fc.track_id.tolist()
                assert not len(fc) or (np.all(np.isfinite(fc.centers)) and fc.std is not None and np.all(fc.std > 0))
        return f, seen

    young, seen = run(PredictorConfig(kind="cv"))
    assert young.young is not None and young.young.obs_len == 3
    assert seen[0.4] == [] and seen[0.8] == [1]  # track 1 young from 0.8 s
    assert seen[3.2] == [1] and seen[3.6] == [1]  # track 2 seen for 0.2 and 0.6 s: too young
    assert seen[4.0] == [1, 2] and seen[4.8] == [1, 2] and seen[5.2] == [1, 2]  # 1.0 s (young), 1.8 s, 2.2 s
    assert young.young_forecasts == 6  # track 1 at 0.8, 1.2, 1.6 s, track 2 at 4.0, 4.4, 4.8 s
    assert "6 forecasts of tracks younger than the models' window by kalman on 0.8 s" in young.summary_line()
    old, seen_old = run(PredictorConfig(kind="cv", min_history_s=2.0))
    assert old.young is None and seen_old[1.6] == [] and seen_old[4.8] == [1] and seen_old[5.2] == [1, 2]
    assert [s.windows for s in young.scorer.scores()] == [s.windows for s in old.scorer.scores()]
    assert [s.ade_bh for s in young.scorer.scores()] == [s.ade_bh for s in old.scorer.scores()]


def test_min_history_shorter_than_a_step_is_a_one_line_error():
    from pipeline.core.config import PredictorConfig

    with pytest.raises(UserError, match="min_history_s.*at least one step"):
        PredictorConfig(min_history_s=0.2)
