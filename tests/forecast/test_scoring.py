"""Online self-scoring on synthetic tracks with known motion, and against an offline computation on real video."""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import HistoryConfig, PredictorConfig
from pipeline.forecast.auto import SelfScoringForecaster
from pipeline.forecast.history import TrackHistory
from pipeline.forecast.predictors import build_predictor
from pipeline.forecast.scoring import (
    SCORE_COLUMNS,
    ForecastScorer,
    ScoresFile,
    TrackScale,
    score_horizons,
    selection_horizon,
)
from pipeline.core.types import Forecasts, Tracks
from tests.conftest import DETECTOR, VTEST, run_cli

FPS = 10.0
H = 50.0  # box height, pixels: one body height


def _tracks(pos: dict[int, tuple[float, float]]) -> Tracks:
    """Tracks with H-high, 20-wide boxes centred on the given positions."""
    ids = sorted(pos)
    xyxy = [[pos[i][0] - 10, pos[i][1] - H / 2, pos[i][0] + 10, pos[i][1] + H / 2] for i in ids]
    return Tracks(np.asarray(xyxy).reshape(-1, 4), np.ones(len(ids)), np.zeros(len(ids)), np.asarray(ids))


def _fc(ids: list[int], t: np.ndarray, centers: np.ndarray) -> Forecasts:
    return Forecasts(np.asarray(ids), t, np.asarray(centers, np.float64).reshape(len(ids), len(t), 2))


def _scale(ids: list[int], h: float = H) -> TrackScale:
    return TrackScale(np.asarray(ids), np.full(len(ids), h))


def _run(scorer: ForecastScorer, frames: int, truth, forecasts, present=lambda tid, t: True) -> None:
    """Feed `frames` frames: truth(tid, t) -> (x, y); forecasts(time_s) -> {name: Forecasts}."""
    for k in range(frames):
        t = k / FPS
        pos = {tid: truth(tid, t) for tid in (1, 2) if present(tid, t)}
        fcs = forecasts(t, sorted(pos))
        scorer.update(t, _tracks(pos), fcs, _scale(sorted(pos)))


def _by(scorer: ForecastScorer) -> dict[tuple[str, float], tuple[int, float, float]]:
    return {(s.predictor, s.horizon_s): (s.windows, s.ade_bh, s.fde_bh) for s in scorer.scores()}


def _line(tid: int, t: float) -> tuple[float, float]:
    return 100.0 + 30.0 * t + 40 * tid, 200.0 - 10.0 * t


STEPS = 0.4 * np.arange(1, 6)  # 0.4 .. 2.0 s


def test_horizons_reported_and_selected():
    assert score_horizons(2.0) == (1.0, 2.0) and score_horizons(3.2) == (1.0, 2.0, 3.0)
    assert score_horizons(0.5) == (0.5,)
    assert selection_horizon((1.0, 2.0, 3.0)) == 2.0 and selection_horizon((1.0,)) == 1.0


def test_exact_forecast_scores_zero_and_an_offset_scores_it_in_body_heights():
    scorer = ForecastScorer(["exact", "off"], (1.0, 2.0))

    def forecasts(t0, ids):
        exact = [[_line(i, t0 + s) for s in STEPS] for i in ids]
        off = [[(x + 5.0, y) for x, y in row] for row in exact]  # 5 px = 0.1 body heights
        return {"exact": _fc(ids, STEPS, exact), "off": _fc(ids, STEPS, off)}

    _run(scorer, 100, _line, forecasts)
    s = _by(scorer)
    n = 2 * (100 - 20)  # two tracks; frames whose 2 s future arrived within the run
    assert s["exact", 2.0][0] == s["off", 2.0][0] == n and s["exact", 1.0][0] == n
    assert s["exact", 2.0][1:] == pytest.approx((0.0, 0.0), abs=1e-9)
    assert s["off", 1.0][1:] == pytest.approx((0.1, 0.1)) and s["off", 2.0][1:] == pytest.approx((0.1, 0.1))


def test_constant_velocity_track_scored_for_cv_gives_zero_error():
    cfg = PredictorConfig(kind="cv", horizon_s=2.0, cv_gain=1.0)  # plain cv: exact on a straight line
    forecaster = SelfScoringForecaster({"cv": build_predictor(cfg)}, None)
    history = TrackHistory(HistoryConfig(), FPS)
    for k in range(120):
        t = k / FPS
        tracks = _tracks({1: _line(1, t), 2: _line(2, t)})
        history.update(tracks, t)
        forecaster.update(t, tracks, lambda step, n: history.windows(tracks.track_id, t, step, n, (640, 480)))
    windows, ade, fde = _by(forecaster.scorer)["cv", 2.0]
    assert windows > 100 and ade == pytest.approx(0.0, abs=1e-6) and fde == pytest.approx(0.0, abs=1e-6)
    assert "cv ADE 0.000" in forecaster.summary_line() and f"over {windows} windows" in forecaster.summary_line()


def test_points_between_frames_use_the_observations_on_either_side():
    """Forecast times fall between frames: the target is the linear interpolation of the two frames around it."""
    t_f = np.array([0.25, 0.55, 0.85, 1.0])
    scorer = ForecastScorer(["p", "curve"], (1.0,))

    def curve(tid, t):
        return 100.0 * t * t + tid, 0.0

    def interp_truth(t):  # what the frames 0.1 s apart show, joined by straight lines
        a = math.floor(t * FPS + 1e-9) / FPS
        w = (t - a) * FPS
        return (1 - w) * curve(0, a)[0] + w * curve(0, a + 0.1)[0]

    def forecasts(t0, ids):
        return {"p": _fc(ids, t_f, [[(interp_truth(t0 + s) + i, 0.0) for s in t_f] for i in ids]),
                "curve": _fc(ids, t_f, [[curve(i, t0 + s) for s in t_f] for i in ids])}

    _run(scorer, 60, curve, forecasts)
    s = _by(scorer)
    n, ade, fde = s["p", 1.0]
    assert n == 2 * (60 - 10) and ade == pytest.approx(0.0, abs=2e-5) and fde == pytest.approx(0.0, abs=2e-5)
    assert s["curve", 1.0][1] > 1e-3  # the true curve between frames is not what the frames show
    assert s["curve", 1.0][2] == pytest.approx(0.0, abs=2e-5)  # 1 s lands on a frame


def test_fde_between_forecast_steps_is_interpolated():
    """Steps at 0.4 s: the 1 s point lies between 0.8 and 1.2 and is read off the line joining them."""
    scorer = ForecastScorer(["p"], (1.0,))

    def forecasts(t0, ids):  # right at 0.4 and 0.8, then 10 px off at 1.2 and beyond
        rows = [[(_line(i, t0 + s)[0] + (10.0 if s > 1.0 else 0.0), _line(i, t0 + s)[1]) for s in STEPS] for i in ids]
        return {"p": _fc(ids, STEPS, rows)}

    _run(scorer, 50, _line, forecasts)
    n, ade, fde = _by(scorer)["p", 1.0]
    assert n == 2 * (50 - 20) and ade == pytest.approx(0.0, abs=1e-9)
    assert fde == pytest.approx(0.5 * 10.0 / H)  # halfway between 0 and 10 px


def test_gone_and_unobserved_points_are_skipped():
    """Track 2 leaves at 3.0 s and misses the frame at 1.5 s: windows needing those frames are not scored."""
    scorer = ForecastScorer(["p"], (1.0, 2.0))

    def present(tid, t):
        return tid == 1 or (t < 3.0 - 1e-9 and abs(t - 1.5) > 1e-9)

    def forecasts(t0, ids):
        return {"p": _fc(ids, STEPS, [[_line(i, t0 + s) for s in STEPS] for i in ids])}

    _run(scorer, 60, _line, forecasts, present)
    s = _by(scorer)
    frames = 60 - 20  # frames 0..39 have their whole future inside the run
    # track 2: forecasts from frames before 3.0 s; a window is lost when a point <= h lands on 1.5 s or >= 3.0 s
    ok2 = {h: sum(1 for k in range(30) if k != 15 and all(abs(k / FPS + p - 1.5) > 1e-9 and k / FPS + p < 3.0 - 1e-9
                                                          for p in [*STEPS[STEPS <= h + 1e-9], h]))
           for h in (1.0, 2.0)}
    assert s["p", 1.0][0] == frames + ok2[1.0] and s["p", 2.0][0] == frames + ok2[2.0]
    assert ok2[2.0] < ok2[1.0] < 30


def test_a_window_counts_only_when_every_predictor_forecast_it():
    scorer = ForecastScorer(["a", "b"], (1.0, 2.0))

    def forecasts(t0, ids):
        rows = [[_line(i, t0 + s) for s in STEPS] for i in ids]
        only1 = [r for i, r in zip(ids, rows) if i == 1]
        return {"a": _fc(ids, STEPS, rows), "b": _fc([1], STEPS, only1)}

    _run(scorer, 60, _line, forecasts)
    s = _by(scorer)
    assert s["a", 2.0][0] == s["b", 2.0][0] == 60 - 20  # track 2 is forecast by a only: never counted


def test_time_comes_from_frames_and_memory_stays_bounded():
    """A long run: only forecasts whose future has not arrived are held (2 s x 10 fps), whatever the length."""
    scorer = ForecastScorer(["p"], (1.0, 2.0), recent=50)
    most = 0
    for k in range(3000):
        t = k / FPS
        ids = [2, 3 + (k // 100) % 7]  # track ids come and go
        tracks = _tracks({i: _line(i, t) for i in ids})
        scorer.update(t, tracks, {"p": _fc(ids, STEPS, [[_line(i, t + s) for s in STEPS] for i in ids])}, _scale(ids))
        most = max(most, scorer.pending)
    assert most <= 2.0 * FPS + 1
    assert len(scorer._recent[0]) == 50
    assert scorer.scored(2.0) > 4500


def test_time_going_back_starts_over():
    scorer = ForecastScorer(["p"], (1.0,))
    tracks = _tracks({1: (0.0, 0.0)})
    scorer.update(5.0, tracks, {"p": _fc([1], STEPS, np.zeros((1, 5, 2)))}, _scale([1]))
    scorer.update(0.0, tracks, {}, _scale([]))
    assert scorer.pending == 0


def test_unknown_predictor_or_too_short_forecast_is_refused():
    scorer = ForecastScorer(["p"], (1.0, 2.0))
    with pytest.raises(ValueError, match="unknown"):
        scorer.update(0.0, Tracks.empty(), {"q": _fc([1], STEPS, np.zeros((1, 5, 2)))}, _scale([1]))
    with pytest.raises(ValueError, match="less than"):
        scorer.update(0.0, Tracks.empty(), {"p": _fc([1], STEPS[:2], np.zeros((1, 2, 2)))}, _scale([1]))


def test_scores_file_is_rewritten_on_video_time_and_atomically(tmp_path):
    scorer = ForecastScorer(["p", "q"], (1.0, 2.0))
    f = ScoresFile(tmp_path / "forecast_scores.csv", every_s=10.0)
    written = [f.maybe_write(t, lambda: (scorer.scores(), "q")) for t in (3.0, 8.0, 12.9, 13.0, 20.0, 23.1)]
    assert written == [False, False, False, True, False, True]
    with (tmp_path / "forecast_scores.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == SCORE_COLUMNS and len(rows) == 1 + 4
    assert [r[0] for r in rows[1:]] == ["p", "p", "q", "q"] and [r[5] for r in rows[1:]] == ["0", "0", "1", "1"]
    assert rows[1][2] == "0" and rows[1][3] == ""  # nothing scored yet: no ADE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast_scores.csv"]


# --- against an offline computation from the CSVs a real run writes ---------------------------------------


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _offline_scores(out: Path, step_s: float, obs_len: int, horizons: tuple[float, ...], last_frame: int) -> dict:
    """The same windows scored the same way, from tracks.csv and predictions.csv alone."""
    obs: dict[int, dict[int, tuple[float, float, float]]] = defaultdict(dict)
    for r in _read(out / "tracks.csv"):
        obs[int(r["track_id"])][int(r["frame"])] = (float(r["cx"]), float(r["cy"]), float(r["y2"]) - float(r["y1"]))
    fcs: dict[tuple[int, int], list[tuple[float, float, float]]] = defaultdict(list)
    for r in _read(out / "predictions.csv"):
        fcs[int(r["frame"]), int(r["track_id"])].append((float(r["t_future_s"]), float(r["pred_cx"]), float(r["pred_cy"])))
    sums = {h: [0, 0.0, 0.0] for h in horizons}
    for (f, tid), pts in fcs.items():
        t = np.array([p[0] for p in pts])
        if f + round(t[-1] * FPS) > last_frame:
            continue  # its future had not fully arrived when the run stopped
        if min(obs[tid]) > f - round((obs_len - 1) * step_s * FPS):
            continue  # a track younger than the window: its forecast is the young-track Kalman's, never scored
        frames = np.array(sorted(k for k in obs[tid] if k <= f))
        heights = np.array([obs[tid][k][2] for k in frames])
        grid = f / FPS - step_s * np.arange(obs_len - 1, -1, -1)
        scale = np.median(np.interp(grid, frames / FPS, heights))
        err = [_offline_error(obs[tid], f / FPS + p[0], p[1:]) / scale for p in pts]
        for h in horizons:
            upto = [e for e, ti in zip(err, t) if ti <= h + 1e-6]
            k = int(np.searchsorted(t, h - 1e-6))
            at_h = pts[k][1:] if abs(t[k] - h) < 1e-6 else [
                np.interp(h, t[k - 1:k + 1], [pts[k - 1][c], pts[k][c]]) for c in (1, 2)]
            fde = _offline_error(obs[tid], f / FPS + h, at_h) / scale
            if all(math.isfinite(e) for e in [*upto, fde]):
                sums[h][0] += 1
                sums[h][1] += float(np.mean(upto))
                sums[h][2] += fde
    return {h: (n, a / n, d / n) for h, (n, a, d) in sums.items() if n}


def _offline_error(track: dict[int, tuple[float, float, float]], target_s: float, xy) -> float:
    """Distance to where the track was at target_s (between the two frames around it), NaN if not seen there."""
    x = target_s * FPS
    a, b = math.floor(x + 1e-6), math.ceil(x - 1e-6)
    if a not in track or b not in track:
        return math.nan
    w = 0.0 if a == b else x - a
    px, py = ((1 - w) * track[a][c] + w * track[b][c] for c in (0, 1))
    return math.hypot(xy[0] - px, xy[1] - py)


@pytest.mark.slow
def test_cv_run_scores_agree_with_an_offline_computation(tmp_path):
    out = tmp_path / "cv"
    proc = run_cli("track", "--source", str(VTEST), "--weights", str(DETECTOR), "--out", str(out), "--max-frames",
                   "150", "--no-video", "--quiet", "--predictor", "cv")
    assert proc.returncode == 0, proc.stderr
    rows = _read(out / "forecast_scores.csv")
    assert {r["predictor"] for r in rows} == {"cv"} and all(r["served"] == "1" for r in rows)
    cfg = PredictorConfig(kind="cv")
    horizons = tuple(float(r["horizon_s"]) for r in rows)
    offline = _offline_scores(out, cfg.step_s, cfg.obs_steps, horizons, last_frame=149)
    for r in rows:
        n, ade, fde = offline[float(r["horizon_s"])]
        assert int(r["windows"]) == n > 50
        assert float(r["ade_bh"]) == pytest.approx(ade, abs=2e-4) and float(r["fde_bh"]) == pytest.approx(fde, abs=2e-4)
    line = re.search(r"forecast self-score @2 s: cv ADE ([\d.]+) body heights over (\d+) windows", proc.stdout)
    assert line and int(line[2]) == offline[2.0][0] and float(line[1]) == pytest.approx(offline[2.0][1], abs=1.5e-3)


def test_a_full_disk_while_rewriting_the_scores_keeps_the_last_table_and_says_so(tmp_path, monkeypatch):
    """forecast_scores.csv is replaced atomically: a full disk leaves the previous table whole, no temp file, exit 5."""
    import errno
    import os

    from pipeline.core.errors import DiskFullError
    from pipeline.forecast.scoring import HorizonScore

    path = tmp_path / "forecast_scores.csv"
    scores = ScoresFile(path)
    scores.write([HorizonScore("cv", 2.0, 10, 0.2, 0.3)], "cv")
    before = path.read_text()

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(DiskFullError, match="the disk is full") as err:
        scores.write([HorizonScore("cv", 2.0, 20, 0.1, 0.2)], "cv")
    assert err.value.exit_code == 5 and "forecast_scores.csv" in str(err.value)
    assert path.read_text() == before and list(tmp_path.iterdir()) == [path]
