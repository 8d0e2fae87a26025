"""Calibration against the homographies and scales shipped with the real data (../shared/data)."""

from __future__ import annotations

import functools
import io
from collections import Counter
import json
import tarfile

import cv2
import numpy as np
import pytest
import yaml

import run
from pipeline.core.config import CameraConfig
from pipeline.core.errors import UserError
from pipeline.events.calibration import GroundMotion, camera_from_config, fit_homography
from pipeline.learning.loaders import dut as dut_loader
from pipeline.learning.loaders import gc as gc_loader
from tests.conftest import DATA, ROOT, run_cli



@functools.cache
def _gc_h() -> np.ndarray:
    """GC's shipped homography (read at first use: collecting needs no ../shared)."""
    return np.array(json.loads((DATA / "gc" / "H.json").read_text())["homog"])


def _gc_world(px: np.ndarray) -> np.ndarray:
    """GC's own mapping (SOURCES.md): H.json takes (row, column), its output x 0.8 is metres."""
    return gc_loader.to_metres(px[:, 0], px[:, 1], _gc_h())


def _gc_points(n_files: int = 40) -> np.ndarray:
    """Real annotated pedestrian positions (column, row) from the GC archive's first files."""
    pts = []
    with tarfile.open(DATA / "gc" / "GC_Annotation.tar.xz") as tar:
        for m in tar:
            if m.isfile() and m.name.endswith(".txt") and len(pts) < n_files:
                v = np.array(tar.extractfile(m).read().split(), dtype=float).reshape(-1, 3)
                pts.append(v[:, :2])
            if len(pts) >= n_files:
                break
    return np.concatenate(pts)


def test_gc_pairs_reproduce_the_shipped_homography():
    """Pairs made by pushing 6 image points through H.json; our fit maps GC's real annotations as H.json does."""
    image = np.array([[100, 100], [1800, 120], [1850, 1000], [80, 1050], [960, 540], [500, 800]], float)
    cam, report = fit_homography(image, _gc_world(image))
    assert report.inliers.all() and report.errors_m.max() < 1e-3
    pts = _gc_points()
    assert len(pts) > 1000
    ours, theirs = cam.to_ground(pts), _gc_world(pts)
    assert np.abs(ours - theirs).max() < 0.01  # metres, over an 84 m x 37 m hall
    assert np.abs(cam.to_image(theirs) - pts).max() < 0.05  # pixels, and back


def test_gc_fit_survives_an_outlier_pair_and_reports_it():
    image = np.array([[100, 100], [1800, 120], [1850, 1000], [80, 1050], [960, 540], [500, 800], [1400, 300]], float)
    world = _gc_world(image)
    world[6] += [5.0, -3.0]  # a mistyped world point
    cam, report = fit_homography(image, world, ransac_m=0.5)
    assert report.inliers.tolist() == [True] * 6 + [False]
    assert report.errors_m[6] > 4 and report.errors_m[:6].max() < 1e-3
    assert "outlier" in report.lines()[-1]


def test_sdd_scale_camera_maps_as_estimated_scales_yaml_says():
    """Stanford Drone quad/video0: box centres x the file's metres per pixel; pedestrians walk at human speed."""
    scale = yaml.safe_load((DATA / "sdd" / "estimated_scales.yaml").read_text())["quad"]["video0"]["scale"]
    cam, report = camera_from_config(CameraConfig(metres_per_pixel=scale))
    assert report is None and cam.kind == "scale"
    with tarfile.open(DATA / "sdd" / "sdd_annotations.tar.xz") as tar:
        member = next(m for m in tar if m.name.endswith("quad/video0/annotations.txt"))
        text = tar.extractfile(member).read().decode()
    rows = [ln.split() for ln in text.splitlines() if ln.endswith('"Pedestrian"') and ln.split()[6] == "0"]  # in view
    a = np.array([r[:6] for r in rows], float)  # id, xmin, ymin, xmax, ymax, frame
    centres = np.stack([(a[:, 1] + a[:, 3]) / 2, (a[:, 2] + a[:, 4]) / 2], axis=1)
    np.testing.assert_allclose(cam.to_ground(centres), centres * scale)
    speeds = []
    for tid in np.unique(a[:, 0]):
        t = a[a[:, 0] == tid]
        d = np.linalg.norm(np.diff(cam.to_ground(centres[a[:, 0] == tid]), axis=0), axis=1).sum()
        if t[-1, 5] - t[0, 5] > 90:
            speeds.append(d / ((t[-1, 5] - t[0, 5]) / 30.0))
    moving = [v for v in speeds if v > 0.2]  # some stand still all video long
    assert len(moving) >= 3 and 0.8 < float(np.median(moving)) < 1.8  # metres per second: a walking pace


def test_dut_ratio_camera_maps_as_the_ratio_file_says():
    """DUT roundabout_05: raw pixels / pixels-per-metre; the same metres as the DUT loader reads."""
    with tarfile.open(DATA / "dut" / "DUT_filtered_ratios.tar.xz") as tar:
        ratio = float(tar.extractfile("data/ratios/roundabout_05_ratio_pixel2meter.txt").read())
        raw = np.loadtxt(io.BytesIO(tar.extractfile("data/trajectories/roundabout_05_traj_ped.csv").read()),
                         delimiter=",", skiprows=1, usecols=(0, 1, 2, 3))
    assert ratio == pytest.approx(23.0809, abs=1e-4)  # SOURCES.md
    cam, _ = camera_from_config(CameraConfig(pixels_per_metre=ratio))
    ours = cam.to_ground(raw[:, 1:3])
    np.testing.assert_allclose(ours, raw[:, 1:3] / ratio)
    loaded = [t for t in dut_loader.load(DATA / "dut", Counter()) if t.key.startswith("dut/roundabout_05:")
              and not t.key.split(":")[1].startswith("veh")]
    theirs = {(t.key.split(":")[1], round(float(x), 6)) for t in loaded for x in t.xywh[:, 0]}
    mine = {(str(int(i)), round(float(x), 6)) for i, x in zip(raw[:, 0], ours[:, 0])}
    assert len(mine & theirs) >= 0.99 * len(theirs)  # the loader's metres are ours (it may drop a few rows)


@pytest.mark.parametrize("image, world, why", [
    ([[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 0], [0, 1]], "at least 4"),
    ([[0, 0], [100, 0], [0, 100], [100, 100]], [[0, 0], [1, 0], [0, 1]], "4 image points but 3 world points"),
    ([[0, 0], [100, 0], [0, 100], [0, 100]], [[0, 0], [1, 0], [0, 1], [1, 1]], "image points 3 and 4 are the same"),
    ([[0, 0], [100, 0], [200, 0], [300, 0], [400, 0]], [[0, 0], [1, 0], [0, 1], [1, 1], [2, 2]], "all image points lie on one line"),
    ([[0, 0], [100, 0], [200, 0], [0, 100]], [[0, 0], [1, 0], [0, 1], [1, 1]], "three of the 4 image points"),
    ([[0, 0], [100, 0], [0, 100], [100, 100]], [[0, 0], [1, 1], [2, 2], [3, 3]], "world points lie on one line"),
])
def test_degenerate_point_sets_are_refused_with_a_reason(image, world, why):
    with pytest.raises(UserError, match=why) as err:
        fit_homography(np.array(image, float), np.array(world, float))
    assert "\n" not in str(err.value)


def test_calibrate_cli_prints_the_error_in_metres_and_refuses_bad_files(tmp_path, capsys):
    image = np.array([[100, 100], [1800, 120], [1850, 1000], [80, 1050], [960, 540]], float)
    good = tmp_path / "gc.yaml"
    good.write_text(yaml.safe_dump({"image_points": image.tolist(), "world_points": _gc_world(image).tolist()}))
    assert run.main(["calibrate", "--camera", str(good)]) == 0
    out = capsys.readouterr().out
    assert "homography from 5 point pairs (5 inliers): reprojection error RMS 0.000 m" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_points: [[0, 0], [1, 1], [2, 2], [3, 3]]\nworld_points: [[0, 0], [1, 0], [0, 1], [1, 1]]\n")
    assert run.main(["calibrate", "--camera", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: camera:") and "one line" in err[0]
    bad.write_text("metres_per_pixel: 0.05\nfocal: 3\n")
    assert run.main(["calibrate", "--camera", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --camera {bad}: unknown config key 'focal'; valid keys: image_points, metres_per_pixel, "
                   "pixels_per_metre, ransac_threshold_m, world_points"]


def test_ground_speed_is_smoothed_over_the_window():
    """1.5 m/s with +-5 cm foot-point jitter at 30 fps reads 1.5 m/s (5.4 km/h) within 0.1 m/s."""
    rng = np.random.default_rng(1)
    motion = GroundMotion(window_s=0.5)
    for k in range(60):
        t = k / 30
        speed = motion.update(t, np.array([7]), np.array([[1.5 * t, 0.0]]) + rng.normal(0, 0.05, (1, 2)))
    assert speed[0] == pytest.approx(1.5, abs=0.1)
    assert "median 5." in motion.summary_line()


def test_leave_one_out_shows_the_wrong_pair_that_the_fit_hides(tmp_path):
    from pipeline.events.calibration import fit_homography

    H = np.array([[0.02, 0.001, -3.0], [0.0005, -0.03, 9.0], [0.0001, 0.002, 1.0]])
    image = np.array([[u, v] for v in (120, 210, 300) for u in (100, 300, 500)], float)  # 9 pairs over the view
    world = np.array([(lambda q: q[:2] / q[2])(H @ [u, v, 1.0]) for u, v in image])
    world[4] += [0.0, 0.8]  # the middle pair measured 0.8 m off
    cam, report = fit_homography(image, world, ransac_m=5.0)  # everything an inlier: the fit absorbs the error
    assert report.loo_m is not None
    assert int(np.argmax(report.loo_m)) == 4 and report.loo_m[4] > 2 * np.delete(report.loo_m, 4).max()
    assert report.errors_m[4] < report.loo_m[4]
    four, r4 = fit_homography(image[[0, 2, 6, 8]], world[[0, 2, 6, 8]])
    assert r4.loo_m is None and "check nothing" in "\n".join(r4.lines())


def test_calibrate_draws_the_grid_on_a_frame_and_never_over_an_input(tmp_path):
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.full((360, 640, 3), 60, np.uint8))
    cam = ROOT / "configs" / "camera_street_traffic.yaml"
    proc = run_cli("calibrate", "--camera", str(cam), "--image", str(frame))
    assert proc.returncode == 0, proc.stderr
    drawn = cv2.imread(str(tmp_path / "frame_calibration.png"))
    assert drawn is not None and (drawn != 60).any(axis=2).mean() > 0.01  # a grid and the pairs were drawn
    bad = run_cli("calibrate", "--camera", str(cam), "--image", str(frame), "--out", str(frame))
    assert bad.returncode != 0 and "is an input" in bad.stderr and "Traceback" not in bad.stderr
    assert (cv2.imread(str(frame)) == 60).all()
