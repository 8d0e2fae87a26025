"""Online spread recalibration on synthetic streams with known noise, and the published distribution's maths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.core.config import PredictorConfig
from pipeline.core.types import Forecasts, Tracks
from pipeline.forecast.auto import build_forecaster
from pipeline.forecast.calibration import (
    LEVEL_1SIGMA,
    LEVEL_2SIGMA,
    CalibrationSettings,
    SpreadCalibrator,
    fit_nu,
    gaussian_regions,
    inside,
    nll,
    region,
    sample_offsets,
)
from pipeline.forecast.features import Window
from pipeline.forecast.scoring import ForecastScorer, TrackScale

FPS, N, H = 10.0, 40, 50.0  # frame rate, objects, box height (pixels: one body height)


def _stream(noise, claimed: float, recalibrate: bool, frames: int = 400, seed: int = 0) -> ForecastScorer:
    """N objects walking at constant velocity; every frame a 1 s forecast of each, off the truth by `noise`
    (rng, n) -> (n, 2) pixels, claiming a 1-sigma spread of `claimed` pixels. Scored and (optionally)
    recalibrated exactly as a run does: the calibrator only sees forecasts whose future has arrived."""
    rng = np.random.default_rng(seed)
    cal = SpreadCalibrator(CalibrationSettings(window=1000, warmup=30)) if recalibrate else None
    scorer = ForecastScorer(["m"], [1.0], calibrator=cal)
    ids = np.arange(1, N + 1)
    start = rng.uniform(0, 500, (N, 2))
    vel = rng.normal(0, 30, (N, 2))
    t_future = np.array([0.5, 1.0])
    for k in range(frames):
        t = k / FPS
        pos = start + vel * t
        tracks = Tracks(np.hstack([pos - [10, H / 2], pos + [10, H / 2]]), np.ones(N), np.zeros(N), ids)
        truth = start[:, None] + vel[:, None] * (t + t_future)[None, :, None]
        centers = truth + np.stack([noise(rng, N) * math.sqrt(tf) for tf in t_future], axis=1)
        raw = Forecasts(ids, t_future, centers, std=np.full((N, 2, 2), claimed) * np.sqrt(t_future)[None, :, None])
        warm = cal is None or cal.warm("m", len(t_future))  # as the forecaster tells it: spreads scored once warm
        fc = cal.apply("m", raw) if cal is not None else gaussian_regions(raw)
        scorer.update(t, tracks, {"m": fc}, TrackScale(ids, np.full(N, H)), {"m": raw.std}, warm)
    return scorer


def _gauss(sigma: float):
    return lambda rng, n: rng.normal(0, sigma, (n, 2))


def _student(sigma: float, dof: float):
    return lambda rng, n: rng.normal(0, sigma, (n, 2)) / np.sqrt(rng.chisquare(dof, (n, 1)) / dof)


def test_recalibration_brings_a_three_times_too_narrow_spread_to_its_promised_coverage():
    s = _stream(_gauss(6.0), claimed=2.0, recalibrate=True).scores()[0]
    assert s.spread_windows > 5000
    assert s.in_1sigma_raw < 0.1  # the trained spread: 1 - exp(-1/18) = 0.054
    assert abs(s.in_1sigma - LEVEL_1SIGMA) < 0.03
    assert abs(s.in_2sigma - LEVEL_2SIGMA) < 0.03
    assert s.nll < s.nll_raw


def test_heavy_tails_are_met_at_both_levels_where_one_scale_could_not():
    s = _stream(_student(4.0, 3.0), claimed=4.0, recalibrate=True).scores()[0]
    assert abs(s.in_1sigma - LEVEL_1SIGMA) < 0.03
    assert abs(s.in_2sigma - LEVEL_2SIGMA) < 0.03
    assert s.nll < s.nll_raw
    # a Gaussian scaled to hold 39.3 % at 1 sigma would hold far less than 86.5 % at 2 sigma here
    assert s.in_2sigma_raw < 0.8


def test_without_recalibration_the_trained_spread_is_written_as_a_gaussian():
    s = _stream(_gauss(6.0), claimed=2.0, recalibrate=False, frames=100).scores()[0]
    assert s.in_1sigma == s.in_1sigma_raw and s.in_2sigma == s.in_2sigma_raw and s.nll == s.nll_raw
    assert s.in_1sigma < 0.1
    std = np.full((3, 4, 2), 2.0)
    fc = gaussian_regions(Forecasts(np.arange(3), np.arange(1, 5) * 0.4, np.zeros((3, 4, 2)), std=std))
    assert np.array_equal(fc.std, std) and np.array_equal(fc.std2, 2 * std)


def test_a_step_still_warming_up_keeps_the_trained_spread():
    cal = SpreadCalibrator(CalibrationSettings(window=100, warmup=30))
    cal.observe("m", np.zeros(30, np.int64), np.full(30, 3.0))  # step 0 is warm, step 1 has seen nothing
    fc = cal.apply("m", Forecasts([7], [0.4, 0.8], np.zeros((1, 2, 2)), std=np.ones((1, 2, 2))))
    assert np.allclose(fc.std[0, 0], 3.0) and np.allclose(fc.std2[0, 0], 3.0)
    assert np.allclose(fc.std[0, 1], 1.0) and np.allclose(fc.std2[0, 1], 2.0)
    assert not cal.warm("m", 2) and cal.warm("m", 1)
    cal.observe("m", np.zeros(500, np.int64), np.arange(500.0))  # bounded: only the last 100 are kept
    assert cal.scored("m") == 100


def test_the_published_distribution_holds_what_its_two_regions_say():
    rng = np.random.default_rng(1)
    std, std2 = np.array([[[2.0, 1.0]]]), np.array([[[6.0, 3.0]]])  # 3:1, heavier tails than a Gaussian's 2:1
    u, theta = rng.random((1, 200_000)), rng.random((1, 200_000)) * 2 * np.pi
    off = sample_offsets(std, std2, u, theta)[0, :, 0]
    assert abs(inside(off, std[0, 0]).mean() - LEVEL_1SIGMA) < 0.005
    assert abs(inside(off, std2[0, 0]).mean() - LEVEL_2SIGMA) < 0.005
    assert abs(inside(off, region(std, std2, 0.8)[0, 0]).mean() - 0.8) < 0.005
    gauss = sample_offsets(std, 2 * std, u, theta)[0, :, 0]
    assert abs(inside(gauss, std[0, 0]).mean() - LEVEL_1SIGMA) < 0.005
    assert np.allclose(region(std, 2 * std, 0.8), region(std, None, 0.8))


def test_nll_is_the_gaussian_one_at_a_two_to_one_ratio_and_t_degrees_round_trip():
    err, std = np.array([[0.5, -1.0], [3.0, 2.0]]), np.array([[1.0, 2.0], [1.0, 2.0]])
    assert np.allclose(nll(err, std, 2 * std), nll(err, std))
    nu = np.array([1.5, 3.0, 8.0])
    from pipeline.forecast.calibration import _radius_ratio

    assert np.allclose(fit_nu(_radius_ratio(nu)), nu, rtol=1e-4)
    # the trained spread (exactly 2:1) stays Gaussian; a recalibrated one is never lighter-tailed than t(10)
    assert fit_nu(np.array([2.0]))[0] == np.inf
    assert np.array_equal(fit_nu(np.array([1.5, 1.9, 2.1])), [10.0, 10.0, 10.0])
    far = np.array([[40.0, 0.0]])  # a box that jumped 40 sigma: t(10) keeps its cost bounded
    assert nll(far, np.ones((1, 2)), np.full((1, 2), 1.9))[0] < 60 < nll(far, np.ones((1, 2)))[0]


@pytest.mark.parametrize("recalibrate", [True, False])
def test_the_forecaster_writes_both_regions_and_the_config_switch_is_honoured(recalibrate):
    f = build_forecaster(PredictorConfig(kind="kalman", recalibrate=recalibrate))
    assert (f.calibrator is not None) == recalibrate
    ids = np.array([1, 2])
    xywh = np.zeros((2, 6, 4))
    xywh[:, :, 0] = np.arange(6) * 4.0
    xywh[:, :, 3] = H
    win = Window(xywh, np.zeros((2, 6)), np.ones(2, bool), np.zeros((2, 2)))
    tracks = Tracks([[10, 0, 30, 50], [10, 0, 30, 50]], [1, 1], [0, 0], ids)
    fc = f.update(0.0, tracks, lambda step_s, obs_len: (ids, win.last(obs_len)))
    assert fc.std is not None and fc.std2 is not None and np.allclose(fc.std2, 2 * fc.std)


def test_a_cold_predictor_borrows_a_warm_one_of_its_kind():
    cal = SpreadCalibrator(CalibrationSettings(window=100, warmup=30))
    cal.observe("kalman", np.repeat([0, 1], 30), np.full(60, 3.0))
    fc = Forecasts([7], [0.4, 0.8, 1.2], np.zeros((1, 3, 2)), std=np.ones((1, 3, 2)))
    cal.observe("young", np.zeros(30, np.int64), np.full(30, 5.0))  # young is warm at its first step only
    out = cal.apply("young", fc, fallback="kalman")
    assert np.allclose(out.std[0, :, 0], [5.0, 3.0, 1.0]) and np.allclose(out.std2[0, :, 0], [5.0, 3.0, 2.0])
