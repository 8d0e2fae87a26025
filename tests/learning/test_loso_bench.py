"""The leave-one-source-out scoring on a real held-out source (the training folds themselves run in
`make bench-forecast`, far too long for the test suite)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.forecast.predictors import LSTMPredictor
from pipeline.learning.loaders import load
from pipeline.learning.loso_bench import SOURCES, BenchConfig, format_table, ratio_at, score_source
from pipeline.learning.training import DataSource, TrainConfig
from pipeline.learning.tuning import TunedBaselines
from tests.conftest import DATA, LSTM_CKPT


def test_held_out_scene_is_scored_at_1_2_3_s_with_auto_picking_a_member():
    src = next(s for s in SOURCES if s.name == "ethucy/zara2")
    trajs = load("ethucy", DATA / "ethucy" / "all_data" / "crowds_zara02.txt")
    tuned = TunedBaselines(2, 0.95, (0.27, 0.18), 0.05, 0.5, 0.0, 0.0)
    cfg = BenchConfig(DATA, Path("."), TrainConfig(train=[DataSource("mot", "x")]), eval_cap=2000)
    r = score_source(src, trajs, LSTMPredictor(str(LSTM_CKPT)), tuned, cfg, np.random.default_rng(0))
    assert r["windows"] == 2000 and 0 < r["served"]["windows"] < 2000  # a quarter picks, the rest is scored
    for m in ("lstm", "cv", "kalman"):
        bh = r["served"][m]
        assert bh["ade_1s"] < bh["ade_2s"] < bh["ade_3s"] and 0 < bh["within_1sigma"] < bh["within_2sigma"] <= 1
    auto = r["served"]["auto"]
    assert auto["ade_2s"] == r["served"][auto["picked"]]["ade_2s"]
    assert ratio_at(r, "auto") == pytest.approx(auto["ade_2s"] / min(r["served"]["cv"]["ade_2s"],
                                                                      r["served"]["kalman"]["ade_2s"]))
    assert r["ethucy_protocol_m"]["windows"] > 1000  # the scene's standard test file, 8 -> 12 steps, metres
    assert "| ethucy/zara2 |" in format_table({"ethucy/zara2": r})
