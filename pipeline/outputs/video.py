"""Video encoders behind `writers.VideoSink`: H.264 through PyAV, OpenCV's FourCC writer as the fallback.

H.264 because browsers play it (report.html embeds the video) and it is several times smaller than mp4v;
PyAV because its wheel carries FFmpeg with libx264, so nothing else needs installing. Each encoder says how
many bytes it may still write when finalised (`pending_bytes`), so VideoSink can stop a run while the
file still has room for its index and stays playable.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.errors import UserError

H264 = "h264"
INDEX_BYTES_PER_FRAME = 16  # the mp4 index (stts/stsz/stco...) takes ~12 bytes per frame
MUXER_BYTES = 64 * 1024  # moov header, muxer buffers


AUTO_PRESET = "auto"
LARGE_FRAME = 1280 * 720  # pixels: above this, `auto` trades size for speed


def resolve_preset(preset: str, size: tuple[int, int]) -> str:
    """x264 preset for `auto`: veryfast up to 720p; ultrafast above, where veryfast took 33 ms of CPU for an
    annotated 1080p frame and limited the whole run on 2 cores (superfast 22 ms, ultrafast 13 ms; the file
    2.7x veryfast's, still 0.6x mp4v's). Measured on oxford 1080p, whole process against the model.track loop:
    ultrafast 1.59x, superfast 1.46x."""
    if preset != AUTO_PRESET:
        return preset
    return "veryfast" if size[0] * size[1] <= LARGE_FRAME else "ultrafast"


def yuv_bytes(size: tuple[int, int]) -> int:
    """One raw 4:2:0 frame: the upper bound of what a codec that does not buffer writes for one frame."""
    return size[0] * size[1] * 3 // 2


class OpenCvEncoder:
    """OpenCV's VideoWriter with a FourCC (mp4v): always available, no buffering, ~10x bigger than H.264."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], fourcc: str) -> None:
        self._vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
        if not self._vw.isOpened():
            raise UserError(f"cannot open video writer for {path} with codec {fourcc!r}; try output.codec: mp4v")
        self.frames_in = 0
        self.reserve = 2 * yuv_bytes(size)  # the next frame, encoded, is at most a raw frame

    def write(self, image: np.ndarray) -> None:
        self._vw.write(image)
        self.frames_in += 1

    def pending_bytes(self) -> int:
        """Bytes the next frame and finalising may still add (the index is counted by VideoSink)."""
        return self.reserve

    def close(self) -> None:
        self._vw.release()


class H264Encoder:
    """libx264 through PyAV into an mp4: yuv420p (what browsers decode), constant quality `crf`.

    x264 holds frames back (look-ahead, B-frames: ~11 at preset veryfast) and writes them when finalised, so
    `pending_bytes` counts a raw frame, twice the largest keyframe (a scene cut may be among them) and every
    frame held back at twice the largest other packet seen; before any packet came out, a tenth of a raw frame
    each. Odd widths or heights get one black pixel of padding (4:2:0 needs even sizes).
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], crf: int, preset: str) -> None:
        import av

        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30)
        self._pad = (size[0] % 2, size[1] % 2)
        self._out = av.open(str(path), "w", format="mp4")
        try:
            opts = {"crf": str(crf), "preset": resolve_preset(preset, size)}
            st = self._out.add_stream("libx264", rate=rate, options=opts)
            st.width, st.height = size[0] + self._pad[0], size[1] + self._pad[1]
            st.pix_fmt = "yuv420p"
            st.codec_context.time_base = 1 / rate
            st.codec_context.open()
        except BaseException:
            self._out.close()
            raise
        self._st, self._tb = st, 1 / rate
        self.frames_in = self.packets_out = self.max_key = self.max_other = 0
        self._raw = yuv_bytes(size)

    def write(self, image: np.ndarray) -> None:
        import av

        if any(self._pad):
            image = cv2.copyMakeBorder(image, 0, self._pad[1], 0, self._pad[0], cv2.BORDER_CONSTANT)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts, frame.time_base = self.frames_in, self._tb
        self.frames_in += 1
        self._mux(self._st.encode(frame))

    def _mux(self, packets: list) -> None:
        for p in packets:
            if p.is_keyframe:
                self.max_key = max(self.max_key, p.size)
            else:
                self.max_other = max(self.max_other, p.size)
            self.packets_out += 1
            self._out.mux(p)

    def pending_bytes(self) -> int:
        """Bytes the frames held in the encoder, plus the next one, may add when written."""
        held = self.frames_in - self.packets_out + 1
        if not self.packets_out:
            return self._raw + held * (self._raw // 10)
        return self._raw + 2 * self.max_key + held * 2 * max(self.max_other, self._raw // 100)

    def close(self) -> None:
        try:
            self._mux(self._st.encode(None))  # flush the frames x264 held back
        finally:
            self._out.close()


def open_encoder(path: Path, fps: float, size: tuple[int, int], codec: str, crf: int,
                 preset: str) -> H264Encoder | OpenCvEncoder:
    """H.264 when asked and PyAV can make it; otherwise OpenCV's mp4v with a one-line warning."""
    if codec != H264:
        return OpenCvEncoder(path, fps, size, codec)
    try:
        return H264Encoder(path, fps, size, crf, preset)
    except Exception as exc:  # no PyAV, no libx264 in its FFmpeg, an encoder that refuses the options
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"warning: cannot write H.264 with PyAV ({why[:160]}); writing mp4v with OpenCV instead "
              "(bigger, and browsers do not play it)", file=sys.stderr)
        return OpenCvEncoder(path, fps, size, "mp4v")
