"""`track`, `live --save` and `batch` write the same files for the same clip: one run loop, one set of sinks.

A short real clip (the crosswalk, with its zones: events, counts and every table) goes through each verb. What
each writes must agree byte for byte: the CSVs, their Parquet copies, tracks.txt, the pictures; run.json
wherever the verbs should agree (not its times, machine or the verbs' own figures); never the video bytes (live
paces its video by the capture clock) nor report.html (it holds timings and the video).

`live` on a file reads as fast as it can and drops frames by the wall clock, so which frames it processes and
their times depend on the machine. Here its frame reader is replaced by `EveryFrameReader`, which hands over
every frame of the clip with its container time as the capture time, and the first frame twice (live warms
the detector on the first frame it gets and processes the frames after it). Everything after the reader is
live's own code.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from pipeline.core.types import Frame
from pipeline.io.capture import CapturedFrame
from pipeline.io.frames import VideoFileSource
from tests.conftest import DETECTOR, ROOT, VIDEOS, run_cli

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

CROSSWALK = VIDEOS / "yellow_crosswalk_640x360.mp4"
ZONES = ROOT / "configs" / "zones_yellow_crosswalk.yaml"
FRAMES = 75  # 2.5 s: people enter the lane and cross the line, predicted alerts too
TABLES = ("tracks", "predictions", "events", "counts", "conflicts", "track_summary", "forecast_scores", "event_scores")
PICTURES = ("trajectories.png", "heatmap.png")
SAME_EVERYWHERE = [f"{t}.{ext}" for t in TABLES for ext in ("csv", "parquet")] + list(PICTURES)
RUN_JSON_SAME = ("program", "config", "weights")  # run.json's parts every verb writes alike
RUN_JSON_TIMING = ("started", "ended", "wall_seconds")
SUMMARY_TIMING = ("seconds", "fps")
COMMON = ("--weights", str(DETECTOR), "--zones", str(ZONES), "--format", "both", "--quiet")


def _clip(path: Path, frames: int = FRAMES) -> Path:
    """The crosswalk's first frames as an MJPG .avi (decodes exactly, fast to write)."""
    src = cv2.VideoCapture(str(CROSSWALK))
    fps = src.get(cv2.CAP_PROP_FPS)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 360))
    for _ in range(frames):
        ok, image = src.read()
        assert ok
        out.write(image)
    out.release()
    src.release()
    return path


class EveryFrameReader:
    """Stands in for live's LatestFrameReader: every frame of a video file in order, none dropped, with its
    container time as the capture time (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self._source = VideoFileSource(path)
        self.reported_fps = self._source.info.fps
        self._frames: Iterator[Frame] = iter(())
        self.captured = self.dropped = self.reconnects = 0
        self.ended, self.end_reason = False, ""

    def start(self) -> EveryFrameReader:
        frames = iter(self._source)
        first = next(frames)
        self._frames = itertools.chain([first, first], frames)  # the first one only warms up the detector
        return self

    def get(self, timeout: float) -> CapturedFrame | None:
        frame = next(self._frames, None)
        if frame is None:
            self.ended = True
            return None
        self.captured += 1
        return CapturedFrame(frame.index, frame.time_s, frame.image)

    def stop(self) -> None:
        self._source.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each verb's folder for the same clip: track, batch's video folder, live --save."""
    base = tmp_path_factory.mktemp("same")
    videos = base / "videos"
    videos.mkdir()
    clip = _clip(videos / "crosswalk.avi").resolve()  # resolved: batch records its inputs resolved
    track = run_cli("track", "--source", str(clip), *COMMON, "--save-txt", "--out", str(base / "track"))
    assert track.returncode == 0, track.stderr
    batch = run_cli("batch", "--source", str(videos), *COMMON, "--save-txt", "--workers", "1",
                    "--out", str(base / "batch"))
    assert batch.returncode == 0, batch.stdout + batch.stderr
    return {"track": base / "track", "batch": base / "batch" / "crosswalk", "live": _live(clip, base / "live"),
            "clip": clip}


def _live(clip: Path, out: Path) -> Path:
    """live --save on the clip in this process, its reader replaced by EveryFrameReader."""
    from pipeline.apps import cli, live_run

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(live_run, "LatestFrameReader", lambda opener, cfg: EveryFrameReader(clip))
        mp.setenv("YOLO_OFFLINE", "1")
        assert cli.main(["live", "--source", str(clip), *COMMON, "--no-show", "--save", "--out", str(out)]) == 0
    return out


def _run_json(folder: Path) -> dict[str, Any]:
    record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    for key in RUN_JSON_TIMING:
        record.pop(key)
    for key in SUMMARY_TIMING:
        record["summary"].pop(key, None)
    record.pop("machine")  # the same machine, but memory and such are read anew
    return record


@pytest.mark.parametrize("other", ["batch", "live"])
def test_tables_and_pictures_are_byte_identical_to_track(runs: dict[str, Path], other: str) -> None:
    for name in SAME_EVERYWHERE:
        a, b = runs["track"] / name, runs[other] / name
        assert a.is_file() and b.is_file(), name
        assert a.read_bytes() == b.read_bytes(), f"{other}'s {name} differs from track's"
    rows = (runs["track"] / "tracks.csv").read_text().splitlines()
    assert max(int(r.split(",")[0]) for r in rows[1:]) == FRAMES - 1  # every frame, also in live
    assert len((runs["track"] / "events.csv").read_text().splitlines()) > 5  # events were compared, not just headers


def test_batch_writes_what_track_writes(runs: dict[str, Path]) -> None:
    """A batch video is a track run: also tracks.txt, the same files and the whole of run.json but its times."""
    track, batch = runs["track"], runs["batch"]
    assert (track / "tracks.txt").read_bytes() == (batch / "tracks.txt").read_bytes()
    assert sorted(p.name for p in track.iterdir()) == sorted(p.name for p in batch.iterdir())
    assert _run_json(track) == _run_json(batch)


def test_live_run_json_agrees_where_it_should(runs: dict[str, Path]) -> None:
    live, track = _run_json(runs["live"]), _run_json(runs["track"])
    track["config"]["output"]["save_txt"] = False  # live has no --save-txt
    for key in RUN_JSON_SAME:
        assert live[key] == track[key], key
    assert live["input"]["path"] == track["input"]["path"] == str(runs["clip"])
    assert live["summary"]["frames_processed"] == track["summary"]["frames_processed"] == FRAMES
    assert not os.path.exists(runs["live"] / "tracks.txt")
