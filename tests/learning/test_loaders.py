"""The five trajectory source loaders on the real shared data (facts from SOURCES.md and the data READMEs), and
their handling of malformed inputs written to tmp_path."""

from __future__ import annotations

import csv
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import UserError
from pipeline.forecast.features import FeatureSpec
from pipeline.learning.datasets import Trajectory, make_windows
from pipeline.learning.loaders import load
from tests.conftest import DATA

SDD, GC, DUT, TPP, EDI = DATA / "sdd", DATA / "gc", DATA / "dut", DATA / "trajnetpp", DATA / "edinburgh"
PEDESTRIAN = {"pedestrian", "ped"}


def _load(fmt: str, path: Path) -> tuple[list[Trajectory], Counter[str]]:
    skipped: Counter[str] = Counter()
    return load(fmt, path, skipped=skipped), skipped


@pytest.fixture(scope="module")
def sdd():
    return _load("sdd", SDD)


@pytest.fixture(scope="module")
def gc():
    return _load("gc", GC)


@pytest.fixture(scope="module")
def dut():
    return _load("dut", DUT)


@pytest.fixture(scope="module")
def tpp():
    return _load("trajnetpp", TPP)


@pytest.fixture(scope="module")
def edinburgh():
    return _load("edinburgh", EDI)


def _recording(tr: Trajectory) -> str:
    return tr.key.rsplit(":", 1)[0]


def _track(tr: Trajectory) -> str:
    """The key without a gap piece suffix (`:17.1` -> `:17`): one annotated track."""
    rec, oid = tr.key.rsplit(":", 1)
    return f"{rec}:{oid.split('.')[0]}"


def _points(trajs: list[Trajectory]) -> int:
    return sum(len(t.times) for t in trajs)


def _walking_speed(trajs: list[Trajectory]) -> float:
    """Median step speed (m/s) of pedestrians who move at least 2 m overall (standing people would pull it to 0)."""
    walkers = [t for t in trajs
               if t.label.lower() in PEDESTRIAN and np.linalg.norm(t.xywh[-1, :2] - t.xywh[0, :2]) >= 2]
    return float(np.median(np.concatenate([
        np.linalg.norm(np.diff(t.xywh[:, :2], axis=0), axis=1) / np.diff(t.times) for t in walkers
    ])))


def _check_points(trajs: list[Trajectory], max_gap_s: float = 1.0) -> None:
    """Metre point data, finite, times strictly increasing, no gap over the split threshold inside a trajectory."""
    for t in trajs:
        assert not t.has_box and t.frame_size == (0.0, 0.0)
        assert np.isfinite(t.xywh).all() and not t.xywh[:, 2:].any()
        assert np.all(np.diff(t.times) > 0) and np.all(np.diff(t.times) <= max_gap_s + 1e-9)


def _video_index() -> list[dict[str, str]]:
    with (SDD / "sdd_video_index.tsv").open(newline="") as fh:
        return [r for r in csv.DictReader(fh, delimiter="\t") if r["annotations_present"] == "yes"]


# --- SDD ---------------------------------------------------------------------------------------------------------

def test_sdd_videos_rows_and_skips(sdd):
    trajs, skipped = sdd
    index = _video_index()
    assert {_recording(t) for t in trajs} == {f"sdd/{r['scene']}/{r['video']}" for r in index}  # 19 videos
    assert len(index) == 19
    # every row of the index is either loaded or skipped for a counted reason
    assert _points(trajs) + sum(skipped.values()) == sum(int(r["rows"]) for r in index)
    assert skipped["lost"] == 267_772 and skipped["occluded"] > 0 and skipped["subsampled to 10 Hz"] > 0
    tracks = {_track(t) for t in trajs}
    assert 0.9 * sum(int(r["tracks"]) for r in index) < len(tracks) <= sum(int(r["tracks"]) for r in index)
    assert any(t.key != _track(t) for t in trajs)  # tracks re-entering after > 1 s are split
    _check_points(trajs)


def test_sdd_labels_times_and_metres(sdd):
    trajs, _ = sdd
    labels = Counter(t.label for t in trajs)
    assert set(labels) <= {"Pedestrian", "Biker", "Skater", "Cart", "Car", "Bus"}
    assert labels["Pedestrian"] > 400 and labels["Biker"] > 300
    steps = np.concatenate([np.diff(t.times) for t in trajs])
    assert np.median(steps) == pytest.approx(0.1)  # 30 fps, every 3rd frame
    assert np.allclose(np.round(steps * 10), steps * 10)
    for r in _video_index():  # inside the reference image, in metres
        xy = np.concatenate([t.xywh[:, :2] for t in trajs if _recording(t) == f"sdd/{r['scene']}/{r['video']}"])
        scale = float(r["est_scale_m_per_px"])
        assert xy.min() >= 0
        assert xy[:, 0].max() <= int(r["reference_jpg_width_px"]) * scale + 1
        assert xy[:, 1].max() <= int(r["reference_jpg_height_px"]) * scale + 1
    peds = [t for t in trajs if t.label == "Pedestrian"]
    assert 0.8 < _walking_speed([Trajectory(t.key, t.times, t.xywh, False, label="pedestrian") for t in peds]) < 1.8


def test_sdd_unpacked_folder_matches_archive(sdd, tmp_path):
    with tarfile.open(SDD / "sdd_annotations.tar.xz") as tar:
        text = tar.extractfile("quad/video3/annotations.txt").read()
    (tmp_path / "quad" / "video3").mkdir(parents=True)
    (tmp_path / "quad" / "video3" / "annotations.txt").write_bytes(text)
    (tmp_path / "estimated_scales.yaml").write_text((SDD / "estimated_scales.yaml").read_text())
    got, _ = _load("sdd", tmp_path)
    want = [t for t in sdd[0] if _recording(t) == "sdd/quad/video3"]
    assert [t.key for t in got] == [t.key for t in want] and [t.label for t in got] == [t.label for t in want]
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a.xywh, b.xywh) and np.array_equal(a.times, b.times)


def _sdd_folder(tmp_path: Path, lines: list[str]) -> Path:
    video = tmp_path / "gates" / "video2"
    video.mkdir(parents=True)
    (video / "annotations.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "estimated_scales.yaml").write_text("gates:\n   video2:\n      scale: 0.05\n      certainty: 1.0\n")
    return video / "annotations.txt"


GOOD = ['1 10 10 20 20 0 0 0 0 "Pedestrian"', '1 13 10 23 20 3 0 0 1 "Pedestrian"', '1 16 10 26 20 6 0 0 1 "Pedestrian"']


def test_sdd_nonfinite_lost_and_occluded_rows_are_counted(tmp_path):
    lines = [*GOOD, '1 nan 10 29 20 9 0 0 1 "Pedestrian"', '1 19 10 29 20 12 1 0 1 "Pedestrian"',
             '1 19 10 29 20 15 0 1 1 "Pedestrian"', '1 19 10 29 20 16 0 0 1 "Pedestrian"',
             '1 22 10 32 20 18 0 0 0 "Pedestrian"']
    _sdd_folder(tmp_path, lines)
    trajs, skipped = _load("sdd", tmp_path)
    assert skipped == Counter({"non-finite": 1, "lost": 1, "occluded": 1, "subsampled to 10 Hz": 1})
    assert [t.key for t in trajs] == ["sdd/gates/video2:1"] and trajs[0].label == "Pedestrian"
    assert np.allclose(trajs[0].times, [0, 0.1, 0.2, 0.6])
    assert np.allclose(trajs[0].xywh[:, :2], [[0.75, 0.75], [0.9, 0.75], [1.05, 0.75], [1.35, 0.75]])  # centre x 0.05 m


@pytest.mark.parametrize("bad, why", [
    ('1 10 oops 20 20 9 0 0 0 "Pedestrian"', "'oops' is not a number"),
    ("1 10 10 20 20 9 0 0 0", "9 columns, expected 10"),
])
def test_sdd_malformed_line_names_file_and_line(tmp_path, bad, why):
    f = _sdd_folder(tmp_path, [*GOOD, bad])
    with pytest.raises(UserError, match="line 4") as err:
        _load("sdd", tmp_path)
    assert str(f) in str(err.value) and why in str(err.value) and "\n" not in str(err.value)


def test_sdd_malformed_archive_member_is_named(tmp_path):
    f = _sdd_folder(tmp_path, [*GOOD, "1 10 10 20 20 9 0 0 0"])
    archive = tmp_path / "sdd_annotations.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(f, arcname="gates/video2/annotations.txt")
    f.unlink()
    with pytest.raises(UserError, match=f"{archive}:gates/video2/annotations.txt line 4: 9 columns, expected 10"):
        _load("sdd", tmp_path)  # the folder holding the archive: the archive is read, in place


def test_sdd_without_scales_says_what_is_missing(tmp_path):
    _sdd_folder(tmp_path, GOOD)
    (tmp_path / "estimated_scales.yaml").unlink()
    with pytest.raises(UserError, match="estimated_scales.yaml"):
        _load("sdd", tmp_path / "gates")


# --- Grand Central -----------------------------------------------------------------------------------------------

def test_gc_counts_steps_and_walking_speed(gc):
    trajs, skipped = gc
    assert len({_track(t) for t in trajs}) == 12_684  # pedestrians
    assert len(trajs) == 19_508  # pieces after splitting at the gaps (SOURCES.md)
    assert _points(trajs) == 456_410 and sum(skipped.values()) == 0
    assert {_recording(t) for t in trajs} == {"gc/concourse"}
    steps = np.concatenate([np.diff(t.times) for t in trajs])
    assert np.allclose(steps, 0.8)  # every 20th frame of 25 fps
    assert _walking_speed(trajs) == pytest.approx(1.1, abs=0.1)  # what SOURCES.md says H.json x 0.8 gives
    xy = np.concatenate([t.xywh[:, :2] for t in trajs])
    span = xy.max(axis=0) - xy.min(axis=0)
    assert (30 < span).all() and (span < 90).all()  # of the order of the 84 m x 37 m hall (approximate H)
    _check_points(trajs)


def test_gc_homography_takes_row_column_and_scales_by_0_8(tmp_path):
    (tmp_path / "Annotation").mkdir()
    (tmp_path / "Annotation" / "000007.txt").write_bytes(b"100\r\n50\r\n20\r\n110\r\n50\r\n40\r\n")
    (tmp_path / "H.json").write_text(json.dumps({"homog": np.eye(3).tolist()}))
    (trajs, _) = _load("gc", tmp_path / "Annotation")
    assert [t.key for t in trajs] == ["gc/concourse:7"]
    assert np.allclose(trajs[0].xywh[:, :2], [[40, 80], [40, 88]])  # (row, col) x 0.8
    assert np.allclose(trajs[0].times, [0.8, 1.6])


def test_gc_malformed_file_names_member_and_line(tmp_path):
    (tmp_path / "Annotation").mkdir()
    (tmp_path / "Annotation" / "000001.txt").write_text("100\n50\n2x0\n")
    (tmp_path / "H.json").write_text(json.dumps({"homog": np.eye(3).tolist()}))
    with pytest.raises(UserError, match=r"000001.txt line 3: '2x0' is not a number"):
        _load("gc", tmp_path)
    (tmp_path / "Annotation" / "000001.txt").write_text("100\n50\n20\n7\n")
    with pytest.raises(UserError, match=r"000001.txt line 4: 4 numbers, not a multiple of 3"):
        _load("gc", tmp_path)


# --- DUT ---------------------------------------------------------------------------------------------------------

def test_dut_tracks_clips_and_units(dut):
    trajs, skipped = dut
    tracks = {_track(t): t.label for t in trajs}
    raw = {k for k in tracks if k.startswith("dut/roundabout_05:")}
    assert sum(lab == "ped" for k, lab in tracks.items() if k not in raw) == 1_190  # filtered files (SOURCES.md)
    assert sum(lab == "veh" for lab in tracks.values()) == 69
    assert sum(lab == "ped" for k, lab in tracks.items() if k in raw) > 100  # the raw pixel file fills roundabout_05
    assert len({_recording(t) for t in trajs}) == 28  # 17 intersection + 11 roundabout clips
    assert sum(skipped.values()) == 0
    steps = np.concatenate([np.diff(t.times) for t in trajs])
    assert np.allclose(steps, 1001 / 24000)  # every frame at 23.976 fps
    assert 0.8 < _walking_speed(trajs) < 1.8
    assert 0.8 < _walking_speed([t for t in trajs if _recording(t) == "dut/roundabout_05"]) < 1.8  # pixels / ratio
    xy = np.concatenate([t.xywh[:, :2] for t in trajs])
    assert xy.min() > 0 and xy.max() < 70  # metres of a drone view of 1920x1080 px at 23-28 px/m
    _check_points(trajs)


def test_dut_bad_header_and_raw_file_ratio(tmp_path):
    data = tmp_path / "data"
    (data / "trajectories").mkdir(parents=True)
    (data / "ratios").mkdir()
    (data / "ratios" / "roundabout_05_ratio_pixel2meter.txt").write_text("2.000e+01\n")
    raw = data / "trajectories" / "roundabout_05_traj_ped.csv"
    raw.write_text("id,x,y,frame,label\n3,20,40,1,ped\n3,40,40,13,ped\n")
    (trajs, _) = _load("dut", tmp_path)
    assert [t.key for t in trajs] == ["dut/roundabout_05:3"] and trajs[0].label == "ped"
    assert np.allclose(trajs[0].xywh[:, :2], [[1, 2], [2, 2]]) and np.allclose(np.diff(trajs[0].times), 12 / 23.976)
    raw.write_text("id,px,py,frame,label\n3,20,40,1,ped\n")
    with pytest.raises(UserError, match=r"roundabout_05_traj_ped.csv line 1: .*lacks x, y"):
        _load("dut", tmp_path)


# --- TrajNet++ ---------------------------------------------------------------------------------------------------

def test_trajnetpp_pedestrians_rows_and_frame_rates(tpp):
    trajs, skipped = tpp
    for name, peds, rows, step, last_s in (("wildtrack", 313, 9_518, 0.5, 199.5), ("lcas", 304, 9_610, 0.4, 362.4)):
        part = [t for t in trajs if _recording(t) == f"trajnetpp/{name}"]
        assert len({_track(t) for t in part}) == peds and _points(part) == rows
        assert np.median(np.concatenate([np.diff(t.times) for t in part])) == pytest.approx(step)
        assert max(t.times[-1] for t in part) == pytest.approx(last_s)  # last frame 1995 (x 0.1 s) / 906 (x 0.4 s)
        assert 0.8 < _walking_speed(part) < 1.8
    assert sum(skipped.values()) == 0
    _check_points(trajs)


def _ndjson(tmp_path: Path, lines: list[str]) -> Path:
    f = tmp_path / "mini.ndjson"
    f.write_text("\n".join(lines) + "\n")
    return f


SCENE = '{"scene": {"id": 0, "p": 1, "s": 0, "e": 100, "fps": 2, "tag": [1, []]}}'


def test_trajnetpp_repeats_and_nonfinite_are_counted(tmp_path):
    rows = ['{"track": {"f": 0, "p": 1, "x": 1.0, "y": 2.0}}', '{"track": {"f": 5, "p": 1, "x": 1.5, "y": 2.0}}',
            '{"track": {"f": 5, "p": 1, "x": 1.5, "y": 2.0}}', '{"track": {"f": 10, "p": 1, "x": NaN, "y": 2.0}}',
            '{"track": {"f": 10, "p": 1, "x": 2.0, "y": 2.0}}']
    trajs, skipped = _load("trajnetpp", _ndjson(tmp_path, [SCENE, *rows]))
    assert skipped == Counter({"repeated track row": 1, "non-finite": 1})
    assert [t.key for t in trajs] == ["trajnetpp/mini:1"] and np.allclose(trajs[0].times, [0, 0.5, 1.0])


def test_trajnetpp_broken_line_names_file_and_line(tmp_path):
    f = _ndjson(tmp_path, [SCENE, '{"track": {"f": 0, "p": 1, "x": 1.0, "y": 2.0}}', '{"track": {"f": 5, "p": 1'])
    with pytest.raises(UserError, match="line 3") as err:
        _load("trajnetpp", f)
    assert str(f) in str(err.value) and "expected one JSON record per line" in str(err.value)
    f = _ndjson(tmp_path, ['{"track": {"f": 0, "p": 1, "x": 1.0, "y": 2.0}}'])
    with pytest.raises(UserError, match="no scene records"):
        _load("trajnetpp", f)


# --- Edinburgh ---------------------------------------------------------------------------------------------------

def test_edinburgh_tracks_points_and_units(edinburgh):
    trajs, skipped = edinburgh
    assert len({_track(t) for t in trajs}) == 1_262
    assert _points(trajs) + skipped["duplicate time"] == 111_230 and skipped["duplicate time"] > 0
    assert {_recording(t) for t in trajs} == {"edinburgh/01Jul"}
    xy = np.concatenate([t.xywh[:, :2] for t in trajs])
    assert xy.min() >= 0 and xy[:, 0].max() <= 640 * 0.0247 and xy[:, 1].max() <= 480 * 0.0247
    steps = np.concatenate([np.diff(t.times) for t in trajs])
    assert np.median(steps) == pytest.approx(1 / 9)  # one capture frame at about 9 fps
    assert 0.8 < _walking_speed(trajs) < 1.8
    _check_points(trajs)


def test_edinburgh_bad_syntax_names_file_and_line(tmp_path):
    f = tmp_path / "tracks.02Jul.txt"
    good = "Properties.R1=[2 5 6 1 2 3];\n TRACK.R1=[[10 20 5];[12 20 6]];\n"
    f.write_text("% Total number of trajectories in file are  1 \n\n" + good)
    (trajs, _) = _load("edinburgh", f)
    assert [t.key for t in trajs] == ["edinburgh/02Jul:1"]
    assert np.allclose(trajs[0].xywh[1, :2], [12 * 0.0247, 20 * 0.0247]) and np.allclose(trajs[0].times, [5 / 9, 6 / 9])
    f.write_text("% Total number of trajectories in file are  1 \n\n" + good.replace("[12 20 6]", "[12 20]"))
    with pytest.raises(UserError, match=r"tracks.02Jul.txt line 4: TRACK points must be \[x y t\]"):
        _load("edinburgh", f)
    f.write_text("% Total number of trajectories in file are  2 \n\n" + good)
    with pytest.raises(UserError, match="says 2 trajectories but holds 1"):
        _load("edinburgh", f)


# --- all sources ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["sdd", "gc", "dut", "trajnetpp", "edinburgh"])
def test_missing_path_is_named(tmp_path, fmt):
    with pytest.raises(UserError, match=str(tmp_path / "nowhere")):
        _load(fmt, tmp_path / "nowhere")


@pytest.mark.realdata  # the fixtures are looked up by name: not seen by the automatic marking
@pytest.mark.parametrize("source", ["sdd", "gc", "dut", "tpp", "edinburgh"])
def test_every_source_cuts_windows(request, source):
    trajs, _ = request.getfixturevalue(source)
    _, fut, keys = make_windows(trajs[:3000], FeatureSpec(step_s=0.4, obs_len=8, pred_len=12))
    assert len(keys) > 100 and fut.shape == (len(keys), 12, 4) and np.isfinite(fut).all()


def test_one_registry_names_every_loader_module() -> None:
    """Every format is a module of pipeline/learning/loaders with the registry's `load`, and nothing else is."""
    import importlib
    import inspect

    from pipeline.learning import loaders

    modules = {p.stem for p in Path(loaders.__file__).parent.glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(loaders.FORMATS)
    for fmt in loaders.FORMATS:
        params = list(inspect.signature(importlib.import_module(f"pipeline.learning.loaders.{fmt}").load).parameters)
        assert params == ["path", "skipped", *(["split"] if fmt in loaders.SPLIT_FORMATS else [])], fmt
