"""Labels in a crowd: frame 150 of the yellow crossing (14 people, 11 alerts; see make_crossing_frame.py).

No label meets another or leaves the frame, an object's alerts are lines of its own label, the legend keeps off
the people, zone and line names are readable and inside the frame, and all of it is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.types import Forecasts, Tracks
from pipeline.events.types import Alert, ConflictMark, Overlay
from pipeline.outputs import plots, render
from pipeline.outputs.render import (
    Annotator, LabelPlacer, TagLine, box_rect, clear_first, draw_event_marks, rects_meet, shade_zones, static_tags,
)

FIXTURE = Path(__file__).resolve().parent / "data" / "crossing_frame150.json"
GREY = 128


def _crossing() -> tuple[np.ndarray, Tracks, dict[int, np.ndarray], Forecasts, Overlay, dict[int, str]]:
    """The fixture as the annotator's inputs, on a plain grey frame of the video's size."""
    d = json.loads(FIXTURE.read_text())
    t, f, o = d["tracks"], d["forecasts"], d["overlay"]
    tracks = Tracks(np.array(t["xyxy"]), np.array(t["confidence"]), np.array(t["class_id"]), np.array(t["track_id"]))
    fc = Forecasts(np.array(f["track_id"]), np.array(f["t_future_s"]), np.array(f["centers"]),
                   std=None if f["std"] is None else np.array(f["std"]),
                   std2=None if f["std2"] is None else np.array(f["std2"]))
    ov = Overlay(tuple((n, np.array(p)) for n, p in o["zones"]), tuple((n, np.array(p)) for n, p in o["lines"]),
                 tuple(Alert(**a) for a in o["alerts"]),
                 tuple(ConflictMark(**{**c, "points": np.array(c["points"])}) for c in o["conflicts"]), o["unit"],
                 tuple((n, np.array(a), np.array(b)) for n, a, b in o["arrows"]))
    trails = {int(k): np.array(v) for k, v in d["trails"].items()}
    w, h = d["size"]
    return (np.full((h, w, 3), GREY, np.uint8), tracks, trails, fc, ov,
            {int(k): v for k, v in d["names"].items()})


def _draw(ov_conflicts: tuple[ConflictMark, ...] = ()) -> tuple[np.ndarray, Annotator, Tracks, Overlay]:
    image, tracks, trails, fc, ov, names = _crossing()
    if ov_conflicts:
        ov = Overlay(ov.zones, ov.lines, ov.alerts, ov_conflicts, ov.unit, ov.arrows)
    an = Annotator(names)
    out = an.draw(shade_zones(image, ov), tracks, trails, fc, None, ov)
    return out, an, tracks, ov


def _inside(r: tuple[int, int, int, int], w: int, h: int) -> bool:
    return 0 <= r[0] < r[2] <= w and 0 <= r[1] < r[3] <= h


def test_the_fixture_is_the_crowded_crossing():
    _, tracks, _, _, ov, _ = _crossing()
    assert len(tracks) >= 12 and len(ov.alerts) >= 8 and {n for n, _ in ov.zones} == {"lane"}


def test_no_two_labels_meet_and_every_label_is_inside_the_frame():
    out, an, tracks, _ = _draw()
    h, w = out.shape[:2]
    rects = [t.rect for t in an.tags]
    assert all(_inside(r, w, h) for r in rects)
    for i in range(len(rects)):
        assert not rects_meet(rects[i], an.legend_rect)
        for j in range(i + 1, len(rects)):
            assert not rects_meet(rects[i], rects[j]), (an.tags[i].key, an.tags[j].key)
    assert {t.kind for t in an.tags} == {"track", "zone", "line", "direction"}
    assert sorted(t.key for t in an.tags if t.kind == "track") == sorted(tracks.track_id.tolist())


def test_each_label_touches_its_own_box():
    _, an, tracks, _ = _draw()
    boxes = {int(t): box_rect(b) for t, b in zip(tracks.track_id, tracks.xyxy)}
    for tag in an.tags:
        if tag.kind == "track":
            assert rects_meet(tag.rect, boxes[tag.key], 1), tag.key


def test_alerts_are_the_second_line_of_their_objects_label():
    out, an, _, ov = _draw()
    labels = {t.key: t for t in an.tags if t.kind == "track"}
    for tid in {a.track_id for a in ov.alerts}:
        soonest = min((a for a in ov.alerts if a.track_id == tid), key=lambda a: a.eta_s)
        tag = labels[tid]
        assert f"#{tid}" in tag.lines[0].text
        assert tag.lines[1].text.startswith(f"-> {soonest.name} {soonest.eta_s:.1f}s")
        x0, y0, x1, y1 = tag.rect
        band = out[y0 + (y1 - y0) // len(tag.lines): y0 + 2 * (y1 - y0) // len(tag.lines), x0:x1].astype(int)
        assert (np.abs(band - render._ALERT).sum(axis=2) < 60).any(), "the alert text is drawn in the alert colour"
    quiet = [t for t in labels.values() if t.key not in {a.track_id for a in ov.alerts}]
    assert quiet and all(len(t.lines) == 1 for t in quiet)
    assert not [t for t in an.tags if t.kind == "alert"], "no separate floating alert box"


def test_the_legend_covers_no_person_when_a_corner_is_free():
    _, an, tracks, _ = _draw()
    assert not any(rects_meet(an.legend_rect, box_rect(b)) for b in tracks.xyxy)
    assert an.corner != "bottom-left", "people walk through the bottom-left corner of frame 150"


def test_the_legend_takes_the_freest_corner_and_stays_among_equals():
    image = np.full((360, 640, 3), GREY, np.uint8)
    fc = Forecasts(np.zeros(0), np.array([0.4]), np.zeros((0, 1, 2)))
    an = Annotator({0: "person"})
    bottom_left = Tracks(np.array([[20, 300, 60, 350]]), np.array([0.9]), np.array([0]), np.array([1]))
    an.draw(image, bottom_left, {}, fc)
    assert an.corner == "bottom-right"
    an.draw(image, Tracks.empty(), {}, fc)
    assert an.corner == "bottom-right", "every corner free: the legend does not move"
    everywhere = Tracks(np.array([[20, 300, 60, 350], [600, 300, 630, 350], [600, 10, 630, 50], [20, 10, 60, 50],
                                  [100, 300, 140, 350]]), np.full(5, 0.9), np.zeros(5), np.arange(1, 6))
    an.draw(image, everywhere, {}, fc)
    assert an.corner == "bottom-right", "all corners busy: one with the fewest boxes (bottom-left has two)"
    crowd = Tracks(np.vstack([everywhere.xyxy, [[560, 300, 590, 350]]]), np.full(6, 0.9), np.zeros(6),
                   np.arange(1, 7))
    an.draw(image, crowd, {}, fc)
    assert an.corner == "bottom-right", "every corner busy and none with two fewer: it stays"
    an.draw(image, Tracks(np.vstack([crowd.xyxy, [[520, 300, 550, 350]]]), np.full(7, 0.9), np.zeros(7),
                          np.arange(1, 8)), {}, fc)
    assert an.corner == "top-right", "three here, one there: it moves"


def test_placement_is_deterministic():
    first, a1, _, _ = _draw()
    again, a2, _, _ = _draw()
    assert np.array_equal(first, again) and a1.tags == a2.tags
    image, tracks, trails, fc, ov, _ = _crossing()
    twice = a1.draw(shade_zones(image, ov), tracks, trails, fc, None, ov)
    assert np.array_equal(first, twice) and a1.tags == a2.tags


def test_a_label_that_fits_nowhere_is_shortened_then_left_out():
    size = (200, 100)
    placer = LabelPlacer(size, [(90, 40, 110, 80)], blocked=[(0, 0, 200, 22), (0, 80, 200, 100)])
    col = ((0, 0, 0), (255, 255, 255))
    forms = [(TagLine("person #7 0.91", *col),), (TagLine("#7", *col),)]
    spots = render.around_box((90, 40, 110, 80))
    tag = placer.place(clear_first(forms), spots, 0.45, (20, 20, 20), "track", 7, own=0)
    assert tag is not None and tag.lines[0].text == "person #7 0.91"  # beside the box, between the blocked bands
    narrow = LabelPlacer((60, 100), [(20, 40, 40, 80)], blocked=[(0, 0, 60, 22), (0, 80, 60, 100)])
    tag = narrow.place(clear_first(forms), render.around_box((20, 40, 40, 80)), 0.45, (20, 20, 20), "track", 7, 0)
    assert tag is not None and tag.lines[0].text == "#7", "the full label is wider than the frame"
    full = LabelPlacer((60, 100), blocked=[(0, 0, 60, 100)])
    assert full.place(clear_first(forms), spots, 0.45, (20, 20, 20), "track", 7) is None and not full.tags


def test_in_a_dense_crowd_labels_are_shortened_never_stacked():
    rng = np.random.default_rng(3)
    xy = rng.uniform([0, 0], [600, 300], (60, 2))
    tracks = Tracks(np.hstack([xy, xy + [40, 60]]), np.full(60, 0.5), np.zeros(60), np.arange(1, 61))
    an = Annotator({0: "person"})
    fc = Forecasts(np.zeros(0), np.array([0.4]), np.zeros((0, 1, 2)))
    an.draw(np.full((360, 640, 3), GREY, np.uint8), tracks, {}, fc)
    rects = [t.rect for t in an.tags]
    assert any(t.lines[0].text.startswith("#") for t in an.tags), "some labels had to be cut to the id"
    assert all(_inside(r, 640, 360) and not rects_meet(r, an.legend_rect) for r in rects)
    assert not any(rects_meet(rects[i], rects[j]) for i in range(len(rects)) for j in range(i + 1, len(rects)))


def test_zone_and_line_names_are_on_dark_outlined_tags_inside_the_frame():
    ov = Overlay(zones=(("top zone", np.array([[5.0, 0], [300, 0], [300, 80], [5, 80]])),),
                 lines=(("edge line", np.array([[0.0, 200], [640, 200]])),),
                 arrows=(("in", np.array([320.0, 200]), np.array([320.0, 228])),
                         ("out", np.array([320.0, 200]), np.array([320.0, 172]))))
    white = np.full((360, 640, 3), 255, np.uint8)
    out = shade_zones(white, ov)
    tags = static_tags(ov, (640, 360))
    assert [t.key for t in tags] == ["top zone", "edge line", "in", "out"]
    for tag in tags:
        x0, y0, x1, y1 = tag.rect
        assert _inside(tag.rect, 640, 360)
        assert out[y0 + 1:y1 - 1, x0 + 1:x1 - 1].mean() < 110, "dark fill: readable on a white scene"
        assert np.array_equal(out[y0, (x0 + x1) // 2], render._ZONE), "outlined in the zone colour"
    zone, line = tags[0].rect, tags[1].rect
    assert zone[1] >= 0 and zone[0] >= 5, "the zone name sits inside the zone, not cut at its top"
    assert line[0] >= 0 and line[3] <= 200, "the line name is above the line, not clipped at the left edge"
    arrow = out[205:222, 318:323].astype(int)
    assert (np.abs(arrow - render._ZONE).sum(axis=2) < 30).any(), "the direction arrow is still drawn"


def test_a_conflict_is_labelled_apart_from_the_objects_labels():
    _, tracks, _, _, _, _ = _crossing()
    feet = np.array([[243.0, 271.8], [273.9, 292.9]])  # tracks 31 and 101
    out, an, _, _ = _draw((ConflictMark(31, 101, 1.2, 0.8, feet),))
    conflict = [t for t in an.tags if t.kind == "conflict"]
    assert len(conflict) == 1 and conflict[0].lines[0].text.startswith("TTC 1.2s")
    assert not any(rects_meet(conflict[0].rect, t.rect) for t in an.tags if t is not conflict[0])


def test_draw_event_marks_alone_still_writes_the_alerts():
    image, tracks, _, _, ov, _ = _crossing()
    out = image.copy()
    draw_event_marks(out, ov, tracks)
    assert (np.abs(out.astype(int) - render._ALERT).sum(axis=2) < 30).sum() > 500


@pytest.mark.parametrize("tid", [7, 18, 118])
def test_the_pictures_draw_a_track_in_its_stream_colour(tid):
    assert plots.color_for is render.color_for
    pics = plots.RunPictures((1280, 720))  # 720p: paths 2 px wide, so their middle has the colour itself
    pics.add_image(0, np.full((720, 1280, 3), 90, np.uint8))
    fc = Forecasts(np.zeros(0), np.array([0.4]), np.zeros((0, 1, 2)))
    for k, x in enumerate((100.0, 400.0, 700.0)):
        pics.add(k * 0.1, Tracks(np.array([[x - 20, 300, x + 20, 380]]), np.array([0.9]), np.array([0]),
                                 np.array([tid])), fc)
    path = pics.trajectories()[335:345, 250].astype(int)
    assert np.abs(path - render.color_for(tid)).sum(axis=1).min() <= 6
