"""Loaders on the real shared files, and the evaluation protocols reproducing published/measured figures."""

import dataclasses

import numpy as np
import pytest

from pipeline.learning.datasets import make_windows
from pipeline.learning.loaders import load
from pipeline.learning.loaders.ethucy import load_ethucy
from pipeline.learning.loaders.jaad import load_jaad
from pipeline.learning.loaders.mot import load_mot
from pipeline.learning.loaders.tracks import load_tracks_csv
from pipeline.core.errors import UserError
from pipeline.forecast.predictors import ConstantVelocityPredictor
from pipeline.learning.evaluation import ETHUCY, evaluate
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
    res, n = evaluate(trajs, ETHUCY, {"cv": ConstantVelocityPredictor(0.4, 8, 12, cv_steps=1)})
    assert n > 300
    assert res["cv"]["ade"] == pytest.approx(ade, abs=0.01)
    assert res["cv"]["fde"] == pytest.approx(fde, abs=0.01)


@pytest.fixture(scope="module")
def jaad_test():
    return load_jaad(JAAD, "test")


def test_jaad_test_tracks(jaad_test):
    assert all("p" not in t.key.split("_")[-1] for t in jaad_test)  # groups skipped
    assert min(len(t.times) for t in jaad_test) >= 61
    assert all(t.has_box and t.frame_size == (1920.0, 1080.0) for t in jaad_test)


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


def test_no_window_feature_sees_the_future():
    """Cutting a trajectory right after a window's "now" leaves that window's observed part and features equal."""
    from pipeline.forecast.features import FeatureSpec, encode
    from pipeline.learning.datasets import Trajectory, track_windows

    trajs = load_ethucy(ETH / "zara1" / "test")
    spec = FeatureSpec(step_s=0.4, obs_len=8, pred_len=12)
    rng = np.random.default_rng(0)
    checked = 0
    for tr in rng.choice(np.array(trajs, dtype=object), 30, replace=False):
        if len(tr.times) < 21:
            continue
        now = tr.times[8:-12]
        win, _, ok = track_windows(tr, now, spec)
        for i in np.flatnonzero(ok)[:5]:
            keep = tr.times <= now[i] + 1e-9
            past = Trajectory(tr.key, tr.times[keep], tr.xywh[keep], tr.has_box)
            cut, _, _ = track_windows(past, now[i : i + 1], dataclasses.replace(spec, pred_len=1))
            np.testing.assert_allclose(cut.xywh[0], win.xywh[i])
            np.testing.assert_allclose(cut.gap_s[0], win.gap_s[i])
            np.testing.assert_allclose(encode(cut, spec), encode(win.take(np.array([i])), spec))
            checked += 1
    assert checked > 50


def test_non_finite_rows_are_skipped_and_counted(tmp_path):
    from collections import Counter

    eth = tmp_path / "scene.txt"
    eth.write_text("0\t1\t1.0\t2.0\n10\t1\t1.5\t2.0\n20\t1\tnan\t2.0\n30\t1\t2.5\tinf\n40\t1\t3.0\t2.0\n")
    skipped: Counter[str] = Counter()
    trajs = load("ethucy", eth, skipped=skipped)
    assert skipped == {"non-finite (scene.txt)": 2}
    assert len(trajs[0].times) == 3 and np.isfinite(trajs[0].xywh).all()
    csv_path = tmp_path / "tracks.csv"
    head = "frame,time_s,track_id,class_name,confidence,x1,y1,x2,y2,cx,cy\n"
    csv_path.write_text(head + "0,0.0,1,person,0.9,1,2,3,4,2,3\n1,0.1,1,person,0.9,nan,2,3,4,2,3\n")
    skipped = Counter()
    assert len(load("tracks", csv_path, skipped=skipped)[0].times) == 1 and sum(skipped.values()) == 1
    csv_path.write_text(head + "0,0.0,1,person,0.9,1,2,3,4,2,3\n1,0.1,1,person,0.9,oops,2,3,4,2,3\n")
    with pytest.raises(UserError, match="tracks.csv line 3: time_s, x1"):
        load("tracks", csv_path)
