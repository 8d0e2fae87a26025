"""VideoFileSource on a small video written here: sizes, frame numbers, times, --vid-stride and bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.core.errors import UserError
from pipeline.io.frames import VideoFileSource

W, H, FPS, N = 64, 48, 10.0, 20


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N frames whose brightness tells their number (10 * i)."""
    path = tmp_path_factory.mktemp("frames") / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (W, H))
    for i in range(N):
        vw.write(np.full((H, W, 3), 10 * i, np.uint8))
    vw.release()
    return path


def test_every_frame_comes_with_its_number_and_time(clip: Path) -> None:
    src = VideoFileSource(clip)
    assert (src.info.width, src.info.height, src.info.fps, src.info.frame_count) == (W, H, FPS, N)
    frames = list(src)
    assert [f.index for f in frames] == list(range(N))
    assert [f.time_s for f in frames] == pytest.approx([i / FPS for i in range(N)])
    assert [f.size for f in frames] == [(W, H)] * N
    assert [round(float(f.image.mean()) / 10) for f in frames] == list(range(N))  # in order, none repeated
    assert src.frames_read == N


def test_stride_keeps_the_containers_frame_numbers_and_times(clip: Path) -> None:
    src = VideoFileSource(clip, stride=3)
    assert src.info.fps == pytest.approx(FPS / 3) and src.info.frame_count == 7  # ceil(20 / 3)
    frames = list(src)
    assert [f.index for f in frames] == [0, 3, 6, 9, 12, 15, 18]
    assert [f.time_s for f in frames] == pytest.approx([i / FPS for i in range(0, N, 3)])
    assert [round(float(f.image.mean()) / 10) for f in frames] == list(range(0, N, 3))


@pytest.mark.parametrize("stride", [0, -1, 1.5])
def test_a_stride_below_one_or_fractional_is_refused(clip: Path, stride) -> None:
    with pytest.raises(UserError, match="--vid-stride"):
        VideoFileSource(clip, stride=stride)


def test_files_that_are_not_videos_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="video not found"):
        VideoFileSource(tmp_path / "nope.mp4")
    with pytest.raises(UserError, match="is a directory"):
        VideoFileSource(tmp_path)
    still = tmp_path / "still.mp4"
    cv2.imwrite(str(tmp_path / "still.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "still.png").rename(still)
    with pytest.raises(UserError, match="still image"):
        VideoFileSource(still)
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n")
    with pytest.raises(UserError, match="cannot be opened as a video"):
        VideoFileSource(text)
