"""The drawing: each mark is told apart by its style, labels stay in the frame, colours follow the track id."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.outputs.render import Annotator, color_for, cone_polygon, legend_patch, put_label
from pipeline.core.types import Forecasts, Tracks

GREY = 128


def _scene(std: bool = True, boxes: bool = True) -> tuple[np.ndarray, Tracks, dict[int, np.ndarray], Forecasts]:
    """One person at (200, 180) who came from the left and is forecast to walk right, 40 px/s for 2 s."""
    image = np.full((360, 640, 3), GREY, np.uint8)
    tracks = Tracks(np.array([[180, 140, 220, 220]]), np.array([0.9]), np.array([0]), np.array([7]))
    trails = {7: np.stack([np.linspace(100, 200, 21), np.full(21, 180.0)], 1)}
    t = np.arange(1, 6) * 0.4
    centers = np.stack([200 + 40 * t, np.full(5, 180.0)], 1)[None]
    fc = Forecasts(np.array([7]), t, centers,
                   boxes=np.concatenate([centers - [20, 40], centers + [20, 40]], 2) if boxes else None,
                   std=np.repeat((10 * t)[None, :, None], 2, 2) if std else None)
    return image, tracks, trails, fc


def _is(px: np.ndarray, col: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.all(np.abs(px.astype(int) - col) <= tol))


def test_trail_is_solid_and_the_forecast_is_dashed():
    image, tracks, trails, fc = _scene()
    out = Annotator({0: "person"}).draw(image, tracks, trails, fc)
    col = color_for(7)
    newest = [_is(out[180, x], col) for x in range(170, 179)]  # the newest third of the trail, left of the box
    assert all(newest)
    along = [_is(out[180, x], col) for x in range(225, 275)]  # the forecast, right of the box
    runs = np.flatnonzero(np.diff(np.array(along, int)))
    assert any(along) and not all(along) and len(runs) >= 4, "the forecast must be dashed"


def test_old_trail_fades():
    image, tracks, trails, fc = _scene()
    out = Annotator({0: "person"}).draw(image, tracks, trails, fc).astype(int)
    col = np.array(color_for(7))
    old, new = out[180, 105], out[180, 175]
    assert np.abs(old - GREY).sum() < np.abs(new - GREY).sum()
    assert np.abs(new - col).sum() < np.abs(old - col).sum()


def test_cone_comes_from_std_and_no_end_box_by_default():
    image, tracks, trails, fc = _scene()
    out = Annotator({0: "person"}).draw(image, tracks, trails, fc)
    end = (280, 180)
    assert not _is(out[end[1] - 12, end[0]], (GREY, GREY, GREY), 2), "inside the cone near the end: tinted"
    assert _is(out[end[1] - 40, end[0]], (GREY, GREY, GREY), 0), "no end box above the forecast end"
    plain = Annotator({0: "person"}).draw(*_scene(std=False))
    assert _is(plain[end[1] - 12, end[0]], (GREY, GREY, GREY), 0), "no std, no cone"


def test_cone_widens_with_std():
    path = np.stack([np.linspace(0, 100, 6), np.zeros(6)], 1)
    std = np.repeat(np.linspace(0, 20, 6)[:, None], 2, 1)
    poly = cone_polygon(path, std)
    assert np.allclose(np.abs(poly[:6, 1]), std[:, 0]) and np.allclose(poly[:6, 0], path[:, 0])


@pytest.mark.parametrize("x,y", [(630, 5), (-20, 355), (300, -10), (600, 400)])
def test_labels_stay_inside_the_frame(x, y):
    out = np.zeros((360, 640, 3), np.uint8)
    x1, y1, x2, y2 = put_label(out, "person #123 0.87", x, y, (255, 0, 0), (255, 255, 255), 0.45)
    assert 0 <= x1 < x2 < 640 and 0 <= y1 < y2 < 360


def test_colours_are_stable_per_track_and_differ_for_ids_seen_together():
    assert color_for(18) == color_for(18)
    assert color_for(18) != color_for(118)
    assert len({color_for(i) for i in range(1, 11)}) >= 8


def test_legend_is_drawn_in_the_bottom_left_corner():
    image, tracks, trails, fc = _scene()
    out = Annotator({0: "person"}).draw(image, tracks, trails, fc)
    patch = legend_patch(1, "+2 s")
    assert patch.shape[0] < 100 and patch.shape[1] < 260
    corner = out[360 - patch.shape[0]:, :patch.shape[1]]
    assert corner.mean() < GREY - 40


def test_disjoint_groups_never_overlap_and_cover_every_rectangle():
    from pipeline.outputs.render import disjoint_groups

    rng = np.random.default_rng(0)
    xy = rng.integers(0, 1800, (60, 2))
    rects = np.hstack([xy, xy + rng.integers(5, 200, (60, 2))])
    groups = disjoint_groups(rects)
    assert sorted(np.concatenate(groups).tolist()) == list(range(60)) and 1 < len(groups) < 60
    bounds = np.array([[rects[g, 0].min(), rects[g, 1].min(), rects[g, 2].max(), rects[g, 3].max()] for g in groups])
    for i in range(len(bounds)):
        for j in range(i + 1, len(bounds)):
            a, b = bounds[i], bounds[j]
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
    chain = np.array([[0, 0, 10, 10], [8, 0, 20, 10], [18, 0, 30, 10], [100, 100, 110, 110]])
    assert sorted(sorted(g.tolist()) for g in disjoint_groups(chain)) == [[0, 1, 2], [3]]


def test_blending_only_where_drawn_gives_the_same_frame_as_one_whole_frame_blend(monkeypatch):
    """Real vtest frames, tracks and forecasts: per-group blending is pixel-identical to one big blend."""
    from pipeline.apps.processing import FrameProcessor
    from pipeline.core.config import DetectorConfig, PredictorConfig, TrackRunConfig
    from pipeline.io.frames import VideoFileSource
    from pipeline.outputs import render
    from tests.conftest import DETECTOR, VTEST

    cfg = TrackRunConfig(detector=DetectorConfig(weights=str(DETECTOR)), predictor=PredictorConfig(kind="kalman"))
    src = VideoFileSource(VTEST)
    proc = FrameProcessor(cfg, src.info.fps, (src.info.width, src.info.height))
    results = [proc.update(f, proc.detector.detect(f.image)) for f, _ in zip(src, range(60))]
    last = results[-1]
    assert len(last.tracks) >= 5 and len(last.shown) >= 4
    fast = proc.annotator.draw(last.frame.image, last.tracks, last.trails, last.shown)
    monkeypatch.setattr(render, "disjoint_groups", lambda rects: [np.arange(len(rects))])
    whole = proc.annotator.draw(last.frame.image, last.tracks, last.trails, last.shown)
    assert np.array_equal(fast, whole)
    assert not np.array_equal(whole, last.frame.image)


def test_a_note_such_as_the_speed_lengthens_only_the_objects_label():
    image, tracks, trails, fc = _scene()
    plain = Annotator({0: "person"}).draw(image, tracks, trails, fc).astype(int)
    noted = Annotator({0: "person"}).draw(image, tracks, trails, fc, {7: "31 km/h"}).astype(int)
    changed = np.argwhere(np.abs(noted - plain).sum(axis=2) > 0)
    assert len(changed)
    ys, xs = changed[:, 0], changed[:, 1]
    assert ys.max() < 140 and xs.min() >= 180  # above the box, right of its left edge: the label grew
    assert xs.max() > 180 + 60  # by the width of the text


def test_the_cone_is_the_80_percent_region_of_the_published_spread():
    image, tracks, trails, fc = _scene()
    gauss = Annotator({0: "person"}).draw(image, tracks, trails, fc)
    heavy = Forecasts(fc.track_id, fc.t_future_s, fc.centers, boxes=fc.boxes, std=fc.std, std2=3 * fc.std)
    wide = Annotator({0: "person"}).draw(image, tracks, trails, heavy)
    tinted = [(np.abs(img.astype(int) - GREY).sum(axis=2) > 3).sum() for img in (gauss, wide)]
    assert tinted[1] > tinted[0]  # heavier tails (std2 = 3 std): a wider 80 % region


def test_the_conflict_map_marks_each_place_by_severity():
    from pipeline.outputs.plots import RunPictures

    pics = RunPictures((320, 240))
    pics.add_image(0, np.full((240, 320, 3), 90, np.uint8))
    out = pics.conflict_map([(100.0, 120.0, "serious"), (220.0, 60.0, "potential")])
    assert _is(out[120, 100], (40, 40, 230), 10) and _is(out[60, 220], (0, 160, 255), 10)
    assert not _is(out[200, 40], (40, 40, 230), 60)
