"""Loaders on the real shared files, and the evaluation protocols reproducing published/measured figures."""

import dataclasses

import numpy as np
import pytest

from pipeline.learning.datasets import load, load_ethucy, load_jaad, load_mot, load_tracks_csv, make_windows
from pipeline.errors import UserError
from pipeline.learning.evaluation import PROTOCOLS, baselines, evaluate
from tests.conftest import DATA

ETH = DATA / "ethucy"
JAAD = DATA / "jaad" / "jaad_annotations.tar.xz"


def test_ethucy_counts_and_units():
    trajs = load_ethucy(ETH / "eth" / "test" / "biwi_eth.txt")
    assert len(trajs) == 360  # pedestrians, as SOURCES.md says
    assert sum(len(t.times) for t in trajs) == 5492
    steps = np.concatenate([np.diff(t.times) for t in trajs if len(t.times) > 1])
    assert np.median(steps) == pytest.approx(0.4)  # 2.5 Hz
    assert not trajs[0].has_box
    zara = load_ethucy(ETH / "zara1" / "test" / "crowds_zara01.txt")
    speeds = np.concatenate([np.linalg.norm(np.diff(t.xywh[:, :2], axis=0), axis=1) / 0.4 for t in zara if len(t.times) > 1])
    assert 0.8 < np.median(speeds) < 1.8  # walking speed in metres per second


# Schoeller et al. 2020, strict constant velocity (last displacement), ADE/FDE in metres.
CV_PUBLISHED = {
    "eth": (["eth/test/biwi_eth.txt"], 1.08, 2.28),
    "univ": (["univ/test/students001.txt", "univ/test/students003.txt"], 0.52, 1.17),
    "zara1": (["zara1/test/crowds_zara01.txt"], 0.43, 0.95),
    "zara2": (["zara2/test/crowds_zara02.txt"], 0.32, 0.72),
}


@pytest.mark.parametrize("scene", sorted(CV_PUBLISHED))
def test_ethucy_protocol_reproduces_published_constant_velocity(scene):
    files, ade, fde = CV_PUBLISHED[scene]
    trajs = [t for f in files for t in load_ethucy(ETH / f)]
    proto = PROTOCOLS["ethucy"]
    res, n = evaluate(trajs, proto, {"cv": baselines(proto, has_box=False)["cv"]})
    assert n > 300
    assert res["cv"]["ade"] == pytest.approx(ade, abs=0.01)
    assert res["cv"]["fde"] == pytest.approx(fde, abs=0.01)


@pytest.fixture(scope="module")
def jaad_test():
    return load_jaad(JAAD, "test")


def test_jaad_test_windows_and_cv_figures(jaad_test):
    assert all("p" not in t.key.split("_")[-1] for t in jaad_test)  # groups skipped
    assert min(len(t.times) for t in jaad_test) >= 61
    proto = PROTOCOLS["jaad"]
    res, n = evaluate(jaad_test, proto, {"cv": baselines(proto, has_box=True)["cv"]})
    assert n == pytest.approx(13600, rel=0.01)
    measured = {"mse_15": 125, "mse_30": 563, "mse_45": 1771, "c_mse": 1644, "cf_mse": 6594}
    for k, v in measured.items():
        assert res["cv"][k] == pytest.approx(v, rel=0.02), k


def test_mot_gt_in_pixels():
    trajs = load_mot(DATA / "mot15_tud_gt")
    assert sum(len(t.times) for t in trajs) == 1156 + 359
    assert all(t.has_box for t in trajs)
    hs = np.concatenate([t.xywh[:, 3] for t in trajs])
    assert 50 < np.median(hs) < 480  # pedestrian box heights in a 640x480 frame


def test_windows_require_presence_throughout():
    from pipeline.learning.datasets import Trajectory
    from pipeline.forecast.features import FeatureSpec

    t = np.array([0, 0.4, 0.8, 1.2, 2.8, 3.2, 3.6, 4.0])  # a 1.6 s hole in the middle
    tr = Trajectory("a:1", t, np.zeros((8, 4)), False)
    spec = FeatureSpec(step_s=0.4, obs_len=2, pred_len=2)
    win, fut, keys = make_windows([tr], spec)
    assert len(keys) == 2  # only [0..1.2] and [2.8..4.0]


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown data format"):
        load("kitti", tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(UserError, match="empty"):
        load_ethucy(empty)
    junk = tmp_path / "junk.txt"
    junk.write_text("this is not\na trajectory file\n")
    with pytest.raises(UserError, match="not an ETH/UCY file"):
        load_ethucy(junk)
    bad_csv = tmp_path / "tracks.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="not a tracks.csv"):
        load_tracks_csv(bad_csv)
    with pytest.raises(UserError, match="not a readable JAAD"):
        load_jaad(junk)


def test_neighbours_are_real_people_of_the_same_recording_seen_so_far():
    """Social windows on ZARA1: each neighbour is another person's annotated position at that very time, and
    cutting every trajectory after a window's last observed step leaves its neighbours unchanged."""
    from pipeline.forecast.features import FeatureSpec

    trajs = load_ethucy(ETH / "zara1" / "test")
    spec = FeatureSpec(step_s=0.4, obs_len=8, pred_len=12, social=True)
    win, fut, keys = make_windows(trajs, spec, stride=5)
    assert win.neigh.shape == (len(keys), 8, 3, 4)
    present = np.isfinite(win.neigh[..., 0])
    assert present[:, -1, 0].mean() > 0.9  # ZARA is a busy street: almost everyone has someone around
    rows = {(round(t, 3), round(x, 4), round(y, 4)) for tr in trajs for t, (x, y) in zip(tr.times, tr.xywh[:, :2])}
    by_key = {tr.key: tr for tr in trajs}
    rng = np.random.default_rng(0)
    for i in rng.choice(len(keys), 40, replace=False):
        own = by_key[keys[i]]
        t0 = own.times[np.argmin(np.abs(own.xywh[:, 0] - win.xywh[i, 0, 0]) + np.abs(own.xywh[:, 1] - win.xywh[i, 0, 1]))]
        times = t0 + spec.step_s * np.arange(8)
        for s in range(8):
            for k in np.flatnonzero(present[i, s]):
                x, y = win.neigh[i, s, k, :2]
                assert (round(times[s], 3), round(x, 4), round(y, 4)) in rows
                assert not np.allclose([x, y], win.xywh[i, s, :2])  # never the person itself
        # the same window with everybody else cut after "now" (the person keeps one future step so that a
        # 9-step window exists): identical neighbours
        now = times[-1] + 1e-6
        ends = {tr.key: now + (spec.step_s if tr.key == keys[i] else 0.0) for tr in trajs}
        cut = [type(tr)(tr.key, tr.times[tr.times <= ends[tr.key]], tr.xywh[tr.times <= ends[tr.key]], tr.has_box,
                        tr.frame_size) for tr in trajs if (tr.times <= ends[tr.key]).any()]
        cut_win, _, cut_keys = make_windows(cut, dataclasses.replace(spec, pred_len=1), stride=1)
        match = [j for j, kk in enumerate(cut_keys) if kk == keys[i] and np.allclose(cut_win.xywh[j], win.xywh[i])]
        assert match, "window lost after cutting the future"
        np.testing.assert_allclose(cut_win.neigh[match[0]], win.neigh[i], equal_nan=True)
