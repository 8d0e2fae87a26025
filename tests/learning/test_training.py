"""A short real training run on real data lowers the validation error, and its checkpoint works."""

import dataclasses
from dataclasses import asdict

import numpy as np
import pytest

from pipeline.core.config import from_dict, load_yaml
from pipeline.core.errors import UserError
from pipeline.forecast.predictors import LSTMPredictor
from pipeline.learning.training import DataSource, TrainConfig, train
from tests.conftest import DATA, ROOT


def test_short_training_lowers_validation_error(tmp_path):
    cfg = TrainConfig(
        train=[DataSource("jaad", str(DATA / "jaad" / "jaad_annotations.tar.xz"), "val")],
        val=[DataSource("mot", str(DATA / "mot15_tud_gt"))],
        epochs=3, patience=5, out=str(tmp_path / "m.pt"), seed=1, max_windows_per_source=3000,
    )
    meta = train(cfg, quiet=True)
    hist = meta["history"]
    assert len(hist) == 3
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert meta["val_ade_units"] <= hist[0]["val_ade"]
    p = LSTMPredictor(str(tmp_path / "m.pt"))
    assert 300 < p.meta["train_windows"] == meta["train_windows"] <= 3000
    assert p.spec.obs_len == cfg.obs_len and p.spec.pred_len == cfg.pred_len


def test_training_is_reproducible_with_a_seed(tmp_path):
    src = [DataSource("mot", str(DATA / "mot15_tud_gt"))]
    a = train(TrainConfig(train=src, epochs=1, out=str(tmp_path / "a.pt"), val_fraction=0.3), quiet=True)
    b = train(TrainConfig(train=src, epochs=1, out=str(tmp_path / "b.pt"), val_fraction=0.3), quiet=True)
    assert a["history"][0]["loss"] == pytest.approx(b["history"][0]["loss"], rel=1e-6)
    assert np.isclose(a["val_ade_units"], b["val_ade_units"])


def test_train_yaml_is_a_valid_config():
    cfg = from_dict(TrainConfig, load_yaml(ROOT / "configs" / "train.yaml"))
    assert {s.format for s in cfg.train} >= {"ethucy", "mot", "tracks", "sdd", "gc", "dut", "trajnetpp", "edinburgh"}


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("train*.yaml")))
def test_each_shipped_checkpoint_was_made_by_its_config(config):
    """The YAML next to each checkpoint reproduces it: same data, grid, schedule and augmentation."""
    cfg = from_dict(TrainConfig, load_yaml(ROOT / "configs" / config))
    p = LSTMPredictor(str(ROOT / cfg.out))
    used = p.meta["config"]
    defaults = asdict(TrainConfig(train=[DataSource("mot", "x")]))
    for key, want in asdict(cfg).items():
        if key not in ("out", "device"):
            assert used.get(key, defaults[key]) == want, key
    tuned = p.meta.get("tuned_baselines", {})
    assert cfg.tune_prior == bool(tuned)
    want = dataclasses.replace(cfg.spec, **{k: tuned[k] for k in ("cv_steps", "cv_gain") if k in tuned})
    assert p.spec == want  # the prior is the cv tuned on the training windows


def test_bad_training_configs():
    with pytest.raises(UserError, match="at least one data source"):
        TrainConfig(train=[])
    with pytest.raises(UserError, match="unknown config key 'train\\[0\\].fmt'"):
        from_dict(TrainConfig, {"train": [{"fmt": "mot", "path": "x"}]})


def test_speed_augmentation_keeps_each_track_consistent():
    """A sped-up copy is the same walk: one speed factor for its past and future, "now" unmoved."""
    from pipeline.forecast.features import FeatureSpec
    from pipeline.learning.datasets import make_windows
    from pipeline.learning.loaders.ethucy import load_ethucy
    from pipeline.learning.training import perturb_window

    spec = FeatureSpec(step_s=0.4, obs_len=8, pred_len=12)
    win, fut, _ = make_windows(load_ethucy(DATA / "ethucy" / "zara1" / "test"), spec, stride=10)
    cfg = TrainConfig(train=[DataSource("mot", "x")], speed_aug=0.25, jitter=0.0, gap_prob=0.0)
    aug, aug_fut = perturb_window(win, fut, spec, cfg, np.random.default_rng(0))
    origin = win.xywh[:, -1:, :2]
    np.testing.assert_allclose(aug.xywh[:, -1, :2], origin[:, 0])
    before = np.linalg.norm(np.concatenate([win.xywh[:, :, :2], fut[:, :, :2]], 1) - origin, axis=2)
    after = np.linalg.norm(np.concatenate([aug.xywh[:, :, :2], aug_fut[:, :, :2]], 1) - origin, axis=2)
    moving = before[:, 0] > 0.5
    ratio = np.where(before > 1e-3, after / np.maximum(before, 1e-3), np.nan)[moving]
    factor = np.nanmean(ratio, axis=1)
    np.testing.assert_allclose(np.nanmin(ratio, axis=1), np.nanmax(ratio, axis=1), rtol=1e-6)
    assert 1 / 1.25 - 1e-9 <= factor.min() and factor.max() <= 1.25 + 1e-9 and factor.std() > 0.05


def test_jitter_and_gaps_touch_only_the_observed_past():
    from pipeline.forecast.features import FeatureSpec
    from pipeline.learning.datasets import make_windows
    from pipeline.learning.loaders.ethucy import load_ethucy
    from pipeline.learning.training import perturb_window

    spec = FeatureSpec(step_s=0.4, obs_len=8, pred_len=12)
    win, fut, _ = make_windows(load_ethucy(DATA / "ethucy" / "zara1" / "test"), spec, stride=10)
    cfg = TrainConfig(train=[DataSource("mot", "x")], speed_aug=0.0, jitter=0.05, gap_prob=1.0)
    aug, aug_fut = perturb_window(win, fut, spec, cfg, np.random.default_rng(0))
    np.testing.assert_allclose(aug_fut, fut)  # the future is the truth
    noise = (aug.xywh[:, :, :2] - win.xywh[:, :, :2]) / 1.7
    assert 0.02 < noise.std() < 0.04  # each window draws its level from 0..0.05 (rms 0.029)
    clean = (win.gap_s == 0).all(axis=1)
    assert clean.sum() > 100
    assert np.all((aug.gap_s[clean] > 0).sum(axis=1) == 1)  # exactly one more missed observation per window
    assert np.all(aug.gap_s[clean, -1] == 0) and np.all(aug.gap_s[clean, 0] == 0)


@pytest.mark.slow
def test_own_camera_workflow_track_train_track(tmp_path):
    """README's path: track a video, train on its tracks.csv, track again with the new checkpoint."""
    import csv

    from tests.conftest import DETECTOR, VTEST, run_cli

    first = tmp_path / "first"
    r = run_cli("track", "--source", str(VTEST), "--weights", str(DETECTOR), "--predictor", "kalman",
                "--no-video", "--quiet", "--max-frames", "400", "--out", str(first))
    assert r.returncode == 0, r.stderr
    ckpt = tmp_path / "mycam.pt"
    r = run_cli("train", "--data", str(first), "--format", "tracks", "--epochs", "2", "--out", str(ckpt), "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"wrote {ckpt}" in r.stdout
    before = ckpt.read_bytes()
    r = run_cli("train", "--data", str(first), "--format", "tracks", "--epochs", "1", "--out", str(ckpt), "--quiet")
    assert r.returncode == 2 and "exists" in r.stderr and "--overwrite" in r.stderr
    assert ckpt.read_bytes() == before  # a checkpoint is never replaced without --overwrite
    p = LSTMPredictor(str(ckpt))
    assert p.meta["train_windows"] > 100 and p.meta["config"]["train"][0]["format"] == "tracks"
    second = tmp_path / "second"
    r = run_cli("track", "--source", str(VTEST), "--weights", str(DETECTOR), "--lstm-weights", str(ckpt),
                "--no-video", "--quiet", "--max-frames", "60", "--out", str(second))
    assert r.returncode == 0, r.stderr
    with open(second / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(np.isfinite(float(row["pred_cx"])) for row in rows)
    assert max(int(row["step"]) for row in rows) == round(2.0 / p.step_s)  # the default 2 s horizon on its grid



def test_pipeline_baselines_are_the_ones_tuned_with_the_shipped_model():
    """cv and kalman in `track` use the settings tuned on the shipped model's training windows (no hand-picking)."""
    from pipeline.core.config import PredictorConfig

    tuned = LSTMPredictor(str(ROOT / "weights" / "traj_lstm.pt")).meta["tuned_baselines"]
    cfg = from_dict(PredictorConfig, load_yaml(ROOT / "configs" / "default.yaml")["predictor"], "predictor.")
    assert (cfg.cv_steps, cfg.cv_gain, cfg.kalman_meas_std, cfg.kalman_accel_std) == (
        tuned["cv_steps"], tuned["cv_gain"], tuned["kalman_meas_std"], tuned["kalman_accel_std"])
    np.testing.assert_allclose(cfg.cv_std_rate, tuned["cv_std_rate"], atol=5e-4)
