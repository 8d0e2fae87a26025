import numpy as np
import pytest

from pipeline.forecast.features import (
    FEATURE_DIM,
    QUANTITIES,
    FeatureSpec,
    Window,
    canonical,
    encode,
    future_targets,
    motion_quantities,
    targets_to_xywh,
    velocity_prior,
)


def _win(xywh, has_box=True, size=(640, 480)):
    xywh = np.asarray(xywh, np.float64)
    n, t = xywh.shape[:2]
    return Window(xywh, np.zeros((n, t)), np.full(n, has_box), np.tile(np.asarray(size, float), (n, 1)))


def _walk(n=3, t=6, v=(4.0, -2.0), start=(100, 200), h=50.0):
    k = np.arange(t)
    xs = start[0] + v[0] * k
    ys = start[1] + v[1] * k
    one = np.stack([xs, ys, np.full(t, h / 2), np.full(t, h)], axis=1)
    return np.repeat(one[None], n, axis=0)


def _rotate(xywh, angle, about=(0.0, 0.0)):
    c, s = np.cos(angle), np.sin(angle)
    out = xywh.copy()
    p = xywh[..., :2] - about
    out[..., 0] = c * p[..., 0] - s * p[..., 1] + about[0]
    out[..., 1] = s * p[..., 0] + c * p[..., 1] + about[1]
    return out


def test_shape_and_layout():
    spec = FeatureSpec()
    f = encode(_win(_walk()), spec)
    assert f.shape == (3, 6, FEATURE_DIM) and f.dtype == np.float32
    assert len(QUANTITIES) * 32 == FEATURE_DIM
    assert np.isfinite(f).all()


def test_no_feature_knows_where_in_the_image_or_which_way():
    """Camera habits cannot be learnt: the same motion anywhere in the frame, in any direction, encodes the same."""
    spec = FeatureSpec()
    a = encode(_win(_walk(start=(100, 200))), spec)
    b = encode(_win(_walk(start=(400, 50))), spec)
    np.testing.assert_allclose(a, b, atol=1e-5)
    q = motion_quantities(_win(_walk(v=(3.0, 0.0))), spec)
    turned = motion_quantities(_win(_rotate(_walk(v=(3.0, 0.0)), 2.0)), spec)
    moving = [i for i, n in enumerate(QUANTITIES) if n not in ("log_w",)]  # box width stays in image axes
    np.testing.assert_allclose(q[..., moving], turned[..., moving], atol=1e-9)


def test_canonical_frame_points_along_the_heading():
    spec = FeatureSpec()
    q = motion_quantities(_win(_walk(v=(0.0, -5.0))), spec)  # walking up the image at 5 px per step
    i = QUANTITIES.index
    assert q[0, -1, i("vel_x")] == pytest.approx(5.0 / 0.4 / 50.0)
    assert q[0, -1, i("vel_y")] == pytest.approx(0.0, abs=1e-12)
    assert q[0, 0, i("rel_x")] == pytest.approx(-25.0 / 50.0)  # 5 steps behind, 0.1 body heights each
    assert q[0, -1, i("prior_speed")] == pytest.approx(5.0 / 0.4 / 50.0)


def test_scale_invariant_across_cameras():
    """The same motion in body heights has the same features from a near and a far camera."""
    spec = FeatureSpec()
    near = _walk(v=(4.0, -2.0), h=100.0, start=(320, 240))
    far = near.copy()
    far[..., :2] = (near[..., :2] - [320, 240]) * 0.25 + [320, 240]
    far[..., 2:] *= 0.25
    np.testing.assert_allclose(encode(_win(near), spec), encode(_win(far), spec), atol=1e-4)


def test_metric_points_use_metric_unit():
    spec = FeatureSpec(step_s=0.4, obs_len=8, pred_len=12)
    xy = _walk(t=8, v=(0.5, 0.0), h=0.0)
    f = encode(_win(xy, has_box=False, size=(0, 0)), spec)
    # the clipped raw value is the first of each quantity's 32 numbers: 0.5 m / 0.4 s / 1.7 m
    assert f[0, -1, QUANTITIES.index("vel_x") * 32] == pytest.approx(0.5 / 0.4 / 1.7, rel=1e-5)


def test_targets_roundtrip_through_the_canonical_frame():
    spec = FeatureSpec()
    obs = _walk(t=6)
    fut = _walk(t=12, start=(obs[0, -1, 0] + 4, obs[0, -1, 1] - 2))
    fut[..., 3] *= 1.2
    win = _win(obs)
    tgt = future_targets(win, fut, spec)
    assert tgt[0, 0, 1] == pytest.approx(0.0, abs=1e-5)  # straight on: nothing across the heading
    np.testing.assert_allclose(targets_to_xywh(win, tgt, spec), fut, rtol=1e-4, atol=1e-3)


def test_prior_is_the_tuned_cv_along_the_heading():
    obs = _walk(t=6, v=(4.0, 0.0))
    obs[:, -1, 0] += 10.0  # a last-step jump: 14 px instead of 4
    win = _win(obs)
    h = 50.0
    last = velocity_prior(win, FeatureSpec(cv_steps=1), 3)
    np.testing.assert_allclose(last[0, 2, 0], 3 * 14.0 / h, rtol=1e-6)
    mean = velocity_prior(win, FeatureSpec(cv_steps=5, cv_gain=0.8), 3)
    np.testing.assert_allclose(mean[0, 0, 0], 0.8 * (5 * 4.0 + 10.0) / 5 / h, rtol=1e-6)
    np.testing.assert_allclose(mean[0, :, 1], 0.0, atol=1e-9)


def test_spread_rotates_back_to_image_axes():
    spec = FeatureSpec()
    win = _win(_walk(v=(0.0, 5.0)))  # heading straight down: along = y, across = x
    std = canonical(win, spec).std_to_source(np.tile([[[0.3, 0.1]]], (3, 1, 1)))
    np.testing.assert_allclose(std[0, 0], [0.1 * 50, 0.3 * 50], rtol=1e-6)


def test_standing_still_has_no_heading_and_finite_features():
    spec = FeatureSpec()
    f = encode(_win(_walk(v=(0.0, 0.0))), spec)
    assert np.isfinite(f).all()
    q = motion_quantities(_win(_walk(v=(0.0, 0.0))), spec)
    assert np.all(q[..., QUANTITIES.index("heading_cos")] == 0)
