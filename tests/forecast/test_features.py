import numpy as np
import pytest

from pipeline.forecast.features import (
    FEATURE_DIM,
    QUANTITIES,
    SOCIAL_QUANTITIES,
    FeatureSpec,
    Window,
    batch_neighbours,
    encode,
    future_targets,
    social_quantities,
    targets_to_xywh,
)


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
    from pipeline.forecast.features import velocity_prior

    obs = _walk(t=10, v=(4.0, 0.0))
    obs[:, -1, 0] += 10.0  # a last-step jump: 14 px instead of 4
    win = _win(obs, size=(0, 0))
    h = 50.0  # scale: the box height
    mean = velocity_prior(win, FeatureSpec(prior="mean"), 3)
    last = velocity_prior(win, FeatureSpec(prior="last"), 3)
    np.testing.assert_allclose(mean[0, 0, 0], (9 * 4.0 + 10.0) / 9 / h, rtol=1e-6)
    np.testing.assert_allclose(last[0, 0, 0], 14.0 / h, rtol=1e-6)
    np.testing.assert_allclose(last[0, 2, 0], 3 * 14.0 / h, rtol=1e-6)


def test_social_layout_is_32_quantities_of_16():
    spec = FeatureSpec(social=True)
    f = encode(_win(_walk(n=4)), spec)
    assert f.shape == (4, 10, FEATURE_DIM) and np.isfinite(f).all()
    assert (len(QUANTITIES) + len(SOCIAL_QUANTITIES)) * 16 == FEATURE_DIM


def _group_scene():
    """Four people on one time grid (metres): a walks right, b 1 m above it walks left, c 3 m below
    standing, d 30 m away (beyond the neighbourhood radius)."""
    t = np.arange(8)[:, None]
    a = np.hstack([0.5 * t, 0 * t])
    b = np.hstack([4 - 0.5 * t, 1 + 0 * t])
    c = np.hstack([0 * t + 1, -3 + 0 * t])
    d = np.hstack([0 * t + 30, 0 * t])
    xy = np.stack([a, b, c, d]).astype(float)
    return np.concatenate([xy, np.zeros_like(xy)], axis=2)


def test_batch_neighbours_are_nearest_first_with_relative_motion():
    spec = FeatureSpec(step_s=0.4, obs_len=8, social=True)
    win = _win(_group_scene(), has_box=False, size=(0, 0))
    neigh = batch_neighbours(win, spec.step_s)
    assert neigh.shape == (4, 8, 3, 4)
    np.testing.assert_allclose(neigh[0, -1, 0, :2], win.xywh[1, -1, :2])  # a's nearest at the end: b
    np.testing.assert_allclose(neigh[0, -1, 0, 2:], [-1.25, 0.0])  # b walks left at 0.5 m per 0.4 s
    q = social_quantities(win, spec)
    names = {n: i for i, n in enumerate(SOCIAL_QUANTITIES)}
    unit = spec.metric_unit_m
    assert q[0, -1, names["n0_present"]] == 1 and q[0, -1, names["n1_present"]] == 1
    assert q[0, -1, names["n2_present"]] == 0  # d is 30 m away: absent, all its numbers 0
    assert q[0, -1, names["n2_dx"]] == 0
    np.testing.assert_allclose(q[0, -1, names["n0_dvx"]], (-1.25 - 1.25) / unit)
    # at the first step b is ahead of a and they walk towards each other: closing; at the end they part
    assert q[0, 0, names["closing_speed"]] > 0 > q[0, -1, names["closing_speed"]]


def test_social_quantities_turn_with_the_scene():
    """Distances and speeds between people do not depend on the direction the camera looks."""
    spec = FeatureSpec(step_s=0.4, obs_len=8, social=True)
    xy = _group_scene()
    a = 0.7
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    turned = xy.copy()
    turned[..., :2] = xy[..., :2] @ rot.T
    q1 = social_quantities(_win(xy, has_box=False, size=(0, 0)), spec).reshape(4, 8, -1)
    q2 = social_quantities(_win(turned, has_box=False, size=(0, 0)), spec).reshape(4, 8, -1)
    for k in range(3):
        d1 = np.linalg.norm(q1[..., 5 * k : 5 * k + 2], axis=2)
        d2 = np.linalg.norm(q2[..., 5 * k : 5 * k + 2], axis=2)
        np.testing.assert_allclose(d1, d2, atol=1e-9)
    np.testing.assert_allclose(q1[..., -1], q2[..., -1], atol=1e-9)
