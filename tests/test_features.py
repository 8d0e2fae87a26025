import numpy as np
import pytest

from pipeline.features import FEATURE_DIM, QUANTITIES, FeatureSpec, Window, encode, future_targets, targets_to_xywh


def _win(xywh, has_box=True, size=(640, 480)):
    xywh = np.asarray(xywh, np.float64)
    n, t = xywh.shape[:2]
    return Window(xywh, np.zeros((n, t)), np.full(n, has_box), np.tile(np.asarray(size, float), (n, 1)))


def _walk(n=3, t=10, v=(4.0, -2.0), start=(100, 200), h=50.0):
    k = np.arange(t)
    xs = start[0] + v[0] * k
    ys = start[1] + v[1] * k
    one = np.stack([xs, ys, np.full(t, h / 2), np.full(t, h)], axis=1)
    return np.repeat(one[None], n, axis=0)


def test_shape_and_layout():
    spec = FeatureSpec()
    f = encode(_win(_walk()), spec)
    assert f.shape == (3, 10, FEATURE_DIM) and f.dtype == np.float32
    assert len(QUANTITIES) * 32 == FEATURE_DIM
    assert np.isfinite(f).all()


def test_translation_invariant_apart_from_image_position():
    spec = FeatureSpec()
    a = encode(_win(_walk(start=(100, 200)), size=(0, 0)), spec)
    b = encode(_win(_walk(start=(400, 50)), size=(0, 0)), spec)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_scale_invariant_across_cameras():
    """The same motion in body heights has the same motion features from a near and a far camera."""
    spec = FeatureSpec()
    near = _walk(v=(4.0, -2.0), h=100.0, start=(320, 240))
    far = near.copy()
    far[..., :2] = (near[..., :2] - [320, 240]) * 0.25 + [320, 240]
    far[..., 2:] *= 0.25
    a, b = encode(_win(near, size=(0, 0)), spec), encode(_win(far, size=(0, 0)), spec)
    np.testing.assert_allclose(a, b, atol=1e-4)
    img = [QUANTITIES.index("img_x"), QUANTITIES.index("img_y")]
    a_img, b_img = encode(_win(near), spec), encode(_win(far), spec)
    assert not np.allclose(a_img[..., img[0] * 32], b_img[..., img[0] * 32])  # image position does differ


def test_metric_points_use_metric_unit():
    spec = FeatureSpec(step_s=0.4, obs_len=8, pred_len=12)
    xy = _walk(t=8, v=(0.5, 0.0), h=0.0)
    xy[..., 2:] = 0
    q_idx = QUANTITIES.index("vel_x")
    f = encode(_win(xy, has_box=False, size=(0, 0)), spec)
    # the clipped raw value is the first of each quantity's 32 numbers: 0.5 m / 0.4 s / 1.7 m
    assert f[0, -1, q_idx * 32] == pytest.approx(0.5 / 0.4 / 1.7, rel=1e-5)


def test_targets_roundtrip():
    spec = FeatureSpec()
    obs = _walk(t=10)
    fut = _walk(t=20, start=(obs[0, -1, 0] + 4, obs[0, -1, 1] - 2))
    fut[..., 3] *= 1.2
    win = _win(obs)
    back = targets_to_xywh(win, future_targets(win, fut, spec), spec)
    np.testing.assert_allclose(back, fut, rtol=1e-4, atol=1e-3)


def test_velocity_prior_mean_or_last_step():
    from pipeline.features import velocity_prior

    obs = _walk(t=10, v=(4.0, 0.0))
    obs[:, -1, 0] += 10.0  # a last-step jump: 14 px instead of 4
    win = _win(obs, size=(0, 0))
    h = 50.0  # scale: the box height
    mean = velocity_prior(win, FeatureSpec(prior="mean"), 3)
    last = velocity_prior(win, FeatureSpec(prior="last"), 3)
    np.testing.assert_allclose(mean[0, 0, 0], (9 * 4.0 + 10.0) / 9 / h, rtol=1e-6)
    np.testing.assert_allclose(last[0, 0, 0], 14.0 / h, rtol=1e-6)
    np.testing.assert_allclose(last[0, 2, 0], 3 * 14.0 / h, rtol=1e-6)
