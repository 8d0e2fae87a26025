"""The annotated video's encoders: H.264 that browsers play, mp4v only as a fallback that says so."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipeline.outputs import video
from pipeline.core.config import OutputConfig
from pipeline.core.errors import UserError
from pipeline.io.writers import VideoSink
from tests.conftest import VTEST


def _real_frames(n: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(VTEST))
    frames = [cap.read()[1] for _ in range(n)]
    cap.release()
    return [cv2.resize(f, size) if size else f for f in frames]


def _probe(path: Path) -> tuple[str, str, int, tuple[int, int]]:
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        n = sum(1 for _ in c.decode(st))
        return st.codec_context.name, st.codec_context.pix_fmt, n, (st.codec_context.width, st.codec_context.height)


def test_h264_video_is_browser_playable_and_holds_every_frame(tmp_path):
    """yuv420p H.264 in mp4 (what Chrome/Firefox/Safari decode); frames held back by x264 are flushed on exit."""
    path = tmp_path / "a.mp4"
    with VideoSink(path, 10.0, (480, 360)) as sink:
        for f in _real_frames(40):
            sink.write(f)
    assert _probe(path) == ("h264", "yuv420p", 40, (480, 360))


def test_h264_is_much_smaller_than_mp4v_at_the_default_quality(tmp_path):
    frames = _real_frames(40)
    for codec in ("h264", "mp4v"):
        with VideoSink(tmp_path / f"{codec}.mp4", 10.0, (480, 360), codec) as sink:
            for f in frames:
                sink.write(f)
    assert (tmp_path / "h264.mp4").stat().st_size < 0.5 * (tmp_path / "mp4v.mp4").stat().st_size


def test_crf_trades_size_for_quality(tmp_path):
    frames = _real_frames(20)
    sizes = {}
    for crf in (18, 30):
        with VideoSink(tmp_path / f"{crf}.mp4", 10.0, (480, 360), crf=crf) as sink:
            for f in frames:
                sink.write(f)
        sizes[crf] = (tmp_path / f"{crf}.mp4").stat().st_size
    assert sizes[30] < 0.6 * sizes[18]


def test_odd_frame_sizes_are_padded_to_what_4_2_0_needs(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoSink(path, 29.97, (321, 241)) as sink:
        for f in _real_frames(5, (321, 241)):
            sink.write(f)
    name, _, n, size = _probe(path)
    assert (name, n, size) == ("h264", 5, (322, 242))


def test_without_h264_the_video_falls_back_to_mp4v_with_one_warning(tmp_path, monkeypatch, capsys):
    def broken(*_a: object, **_k: object) -> None:
        raise av.error.EncoderNotFoundError(0, "libx264 not found\nsecond line")

    monkeypatch.setattr(video, "H264Encoder", broken)
    path = tmp_path / "fallback.mp4"
    with VideoSink(path, 10.0, (480, 360)) as sink:
        for f in _real_frames(5):
            sink.write(f)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: cannot write H.264") and "mp4v" in err[0]
    assert _probe(path)[0] == "mpeg4" and _probe(path)[2] == 5


def test_the_reserve_covers_what_x264_holds_back(tmp_path):
    """Until the stop, room for every frame x264 holds plus a raw frame: the index always fits when finalised."""
    enc = video.H264Encoder(tmp_path / "r.mp4", 10.0, (480, 360), 23, "veryfast")
    for f in _real_frames(30):
        enc.write(f)
    held = enc.frames_in - enc.packets_out
    before = (tmp_path / "r.mp4").stat().st_size
    reserve = enc.pending_bytes()
    enc.close()
    assert held > 0 and (tmp_path / "r.mp4").stat().st_size - before < reserve


@pytest.mark.parametrize("key,value", [("crf", 52), ("crf", -1), ("crf", 2.5), ("preset", "quick"), ("codec", "x26")])
def test_bad_output_settings_are_one_line_errors(key, value):
    with pytest.raises(UserError, match=f"output.{key}"):
        OutputConfig(**{key: value})


def test_auto_preset_trades_size_for_speed_only_above_720p(tmp_path):
    assert video.resolve_preset("auto", (1280, 720)) == "veryfast"
    assert video.resolve_preset("auto", (1920, 1080)) == "ultrafast"
    assert video.resolve_preset("medium", (1920, 1080)) == "medium"
    enc = video.H264Encoder(tmp_path / "big.mp4", 25.0, (1920, 1080), 26, "auto")
    enc.write(np.zeros((1080, 1920, 3), np.uint8))
    enc.close()
    with av.open(str(tmp_path / "big.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.video[0].frames == 1
