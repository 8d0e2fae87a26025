"""Alert probabilities recalibrated from scored alerts: a stream of overconfident alerts made honest, causally."""

from __future__ import annotations

import numpy as np

from pipeline.events.reliability import ProbabilityCalibrator, ReliabilitySettings, fit_platt
from pipeline.events.scoring import BINS, Tally


def _stream(truth, n: int = 3000, seed: int = 0) -> tuple[Tally, Tally]:
    """Alerts with raw shares in [0.5, 1] that come true with probability truth(p); each alert carries the
    calibrator's probability at its time, and its outcome is learned only after it was issued (causal)."""
    rng = np.random.default_rng(seed)
    cal = ProbabilityCalibrator(ReliabilitySettings(window=500, warmup=20, prior=10.0))
    said, raw = Tally(), Tally()
    for k in range(n):
        p = float(rng.choice([0.5, 0.6, 0.75, 0.9, 1.0]))
        q = float(cal("line_cross_predicted", np.array([p]))[0])
        came = bool(rng.random() < truth(p))
        if k >= 200:  # after the warm-up
            said.alerts += 1
            said.hits += came
            said.add_scored(q, p, came)
        cal.observe("line_cross_predicted", p, came)
    return said, raw


def test_overconfident_alerts_are_made_honest_in_every_bin():
    said, _ = _stream(lambda p: 0.3 + 0.5 * p)  # "100 %" comes true 80 % of the time, "50 %" 55 %
    for (lo, hi), (n, p_sum, true) in zip(BINS, said.bins):
        if n >= 20:
            assert abs(p_sum / n - true / n) <= 0.05, (lo, hi, n, p_sum / n, true / n)
    assert said.brier_sum < said.brier_raw_sum  # better than the raw share of paths on the same alerts


def test_honest_alerts_stay_as_they_are_and_warm_up_keeps_the_raw_share():
    said, _ = _stream(lambda p: p)
    assert abs(said.prob_sum - said.raw_sum) / said.alerts < 0.03
    cal = ProbabilityCalibrator(ReliabilitySettings(window=50, warmup=20))
    for _ in range(19):
        cal.observe("zone_enter_predicted", 1.0, False)
    assert cal("zone_enter_predicted", np.array([0.9]))[0] == 0.9  # 19 < warm-up: untouched
    cal.observe("zone_enter_predicted", 1.0, False)
    assert cal("zone_enter_predicted", np.array([0.9]))[0] < 0.5
    assert cal("line_cross_predicted", np.array([0.9]))[0] == 0.9  # each kind learns on its own


def test_the_fit_converges_where_raw_shares_sit_at_one():
    p = np.r_[np.full(50, 1.0), np.linspace(0.5, 0.9, 16)]
    y = np.r_[np.ones(40), np.zeros(10), np.ones(8), np.zeros(8)]
    a, b = fit_platt(p, y, prior=0.0)
    q = 1 / (1 + np.exp(-(a * np.log(127) + b)))
    assert abs(q - 0.8) < 0.03  # the share of 1.0 alerts that came true (a full Newton step ran off to 1e-13)
