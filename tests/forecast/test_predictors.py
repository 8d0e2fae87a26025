import numpy as np
import pytest
import torch

from pipeline.core.config import PredictorConfig
from pipeline.core.errors import UserError
from pipeline.forecast.features import FeatureSpec, Window
from pipeline.forecast.model import ModelConfig, TrajectoryLSTM, load_checkpoint, save_checkpoint
from pipeline.forecast.predictors import ConstantVelocityPredictor, KalmanPredictor, LSTMPredictor, build_predictor, forecast
from tests.conftest import LSTM_CKPT


def _linear(n=4, t=10, v=(30.0, -10.0), dt=0.1, h=80.0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    k = np.arange(t) * dt
    xy = np.stack([200 + v[0] * k, 300 + v[1] * k], axis=1)[None].repeat(n, 0) + rng.normal(0, noise, (n, t, 2))
    wh = np.broadcast_to([h / 2, h], (n, t, 2))
    return Window(np.concatenate([xy, wh], axis=2), np.zeros((n, t)), np.ones(n, bool), np.tile([640.0, 480.0], (n, 1)))


@pytest.mark.parametrize("cv_steps", [1, 9])
def test_cv_is_exact_on_linear_motion(cv_steps):
    win = _linear()
    out, std = ConstantVelocityPredictor(0.1, 10, 5, cv_steps).predict(win)
    expected_x = 200 + 30 * (0.9 + 0.1 * np.arange(1, 6))
    np.testing.assert_allclose(out[0, :, 0], expected_x)
    np.testing.assert_allclose(out[0, :, 3], 80.0)
    # the spread grows linearly with time, along the heading more than across it, in pixels (80 px body height)
    along, across = 0.25, 0.12
    dx, dy = np.array([30.0, -10.0]) / np.hypot(30.0, -10.0)
    t = 0.1 * np.arange(1, 6)
    np.testing.assert_allclose(std[0, :, 0], 80 * t * np.sqrt((along * dx) ** 2 + (across * dy) ** 2), rtol=1e-6)


def test_cv_gain_and_velocity_window():
    win = _linear()
    win.xywh[:, -1, 0] += 3.0  # last step 6 px instead of 3
    last = ConstantVelocityPredictor(0.1, 10, 1, cv_steps=1, gain=0.5).predict(win)[0]
    np.testing.assert_allclose(last[0, 0, 0] - win.xywh[0, -1, 0], 0.5 * 6.0)
    three = ConstantVelocityPredictor(0.1, 10, 1, cv_steps=3).predict(win)[0]
    np.testing.assert_allclose(three[0, 0, 0] - win.xywh[0, -1, 0], (3.0 * 3 + 3.0) / 3)


def test_kalman_tracks_noisy_linear_motion_and_grows_uncertainty():
    win = _linear(n=200, t=20, noise=2.0)
    out, std = KalmanPredictor(0.1, 20, 10).predict(win)
    truth_x = 200 + 30 * (1.9 + 0.1 * np.arange(1, 11))
    assert abs(out[:, -1, 0].mean() - truth_x[-1]) < 3.0
    assert np.all(np.diff(std[0, :, 0]) > 0)


def test_forecast_packages_boxes_and_times():
    win = _linear(n=2)
    fc = forecast(ConstantVelocityPredictor(0.1, 10, 20), np.array([7, 9]), win)
    assert fc.track_id.tolist() == [7, 9]
    np.testing.assert_allclose(fc.t_future_s, 0.1 * np.arange(1, 21))
    np.testing.assert_allclose(fc.boxes[:, :, 3] - fc.boxes[:, :, 1], 80.0)


def test_build_predictor_horizon_in_seconds():
    p = build_predictor(PredictorConfig(kind="cv", horizon_s=1.5, step_s=0.25))
    assert p.horizon == 6 and p.step_s == 0.25


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="LSTM checkpoint not found.*--predictor cv"):
        LSTMPredictor(str(tmp_path / "nope.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        LSTMPredictor(str(junk))
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a traj-lstm/2 checkpoint"):
        LSTMPredictor(str(tmp_path / "other.pt"))


def test_mismatched_checkpoint_is_refused(tmp_path):
    spec = FeatureSpec(pred_len=20)
    model = TrajectoryLSTM(ModelConfig(pred_len=20))
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, spec, {})
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["hidden_size"] = 64
    ckpt["features"]["pred_len"] = 20
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="does not match TrajectoryLSTM"):
        LSTMPredictor(str(tmp_path / "bad.pt"))
    with pytest.raises(UserError, match="beyond what"):
        LSTMPredictor(str(path), horizon_s=9.0)


def test_checkpoint_roundtrip_keeps_stats_and_outputs(tmp_path):
    torch.manual_seed(0)
    model = TrajectoryLSTM(ModelConfig(pred_len=20)).eval()
    model.feat_mean.normal_()
    model.residual_std.fill_(0.3)
    spec = FeatureSpec(step_s=0.1, obs_len=10, pred_len=20)
    save_checkpoint(tmp_path / "m.pt", model, spec, {"note": "x"})
    loaded, spec2, meta = load_checkpoint(tmp_path / "m.pt")
    assert spec2 == spec and meta == {"note": "x"}
    x, prior = torch.randn(3, 10, 512), torch.randn(3, 20, 4)
    with torch.no_grad():
        for a, b in zip(loaded(x, prior), model(x, prior)):
            torch.testing.assert_close(a, b)


def test_residual_is_bounded_around_the_prior():
    """However wild the network's output, the forecast stays within `bound` residual spreads of cv."""
    model = TrajectoryLSTM(ModelConfig(pred_len=4, bound=3.0)).eval()
    model.residual_std.fill_(0.2)
    with torch.no_grad():
        model.head[2].bias.fill_(1e4)
        mean, sigma = model(torch.randn(5, 6, 512), torch.zeros(5, 4, 4))
    assert float(mean.abs().max()) <= 3.0 * 0.2 + 1e-6
    assert torch.all(sigma > 0)


def test_shipped_pixel_checkpoint_predicts_batched():
    p = LSTMPredictor(str(LSTM_CKPT), horizon_s=2.0)
    assert p.model.lstm.input_size == 512 and p.model.lstm.hidden_size == 128 and p.model.lstm.num_layers == 2
    win = _linear(n=100, t=p.obs_len, dt=p.step_s)
    out, std = p.predict(win)
    assert out.shape == (100, p.horizon, 4) and np.isfinite(out).all()
    assert std.shape == (100, p.horizon, 2) and np.all(std > 0)
    # a pedestrian walking steadily right keeps going right
    assert np.all(out[:, -1, 0] > win.xywh[:, -1, 0])
