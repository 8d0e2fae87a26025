"""Live mode against a real MJPEG stream served on 127.0.0.1 from the shared videos."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.io.capture import LatestFrameReader, mask_url, parse_source
from pipeline.core.config import LiveConfig
from pipeline.io.writers import PREDICTION_COLUMNS, TRACK_COLUMNS
from tests.conftest import DETECTOR, ROOT, VTEST

SERVER = ROOT / "tests" / "mjpeg_server.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stream:
    """The MJPEG server as a separate process, so a test can kill it like a dropped camera."""

    def __init__(self, video: Path, loop: bool = True, port: int | None = None) -> None:
        self.video, self.loop, self.port = video, loop, port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}/video.mjpg"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Stream:
        args = [sys.executable, str(SERVER), str(self.video), str(self.port)] + (["--loop"] if self.loop else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def stream():
    streams: list[Stream] = []

    def make(video: Path = VTEST, **kw) -> Stream:
        s = Stream(video, **kw).start()
        streams.append(s)
        return s

    yield make
    for s in streams:
        s.kill()


def _video_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            return frames
        frames.append(img)


def _live(*args: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "run.py"), "live", "--weights", str(DETECTOR), *args]
    full_env = {**os.environ, "YOLO_OFFLINE": "1", **(env or {})}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=ROOT)


def _finish(p: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """A run started with `_live` that stops by itself: its stdout and stderr (killed if it hangs)."""
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise


def _summary(stdout: str) -> dict[str, float]:
    m = re.search(r"processed (\d+) of (\d+) captured frames in ([\d.]+) s \(([\d.]+) fps\), dropped (\d+), reconnects (\d+)", stdout)
    lat = re.search(r"median (\d+) ms, p95 (\d+) ms, max (\d+) ms", stdout)
    assert m and lat, stdout
    keys = ["processed", "captured", "seconds", "fps", "dropped", "reconnects"]
    return {**dict(zip(keys, map(float, m.groups()))), "lat_med": float(lat[1]), "lat_p95": float(lat[2]), "lat_max": float(lat[3])}


def _csv_rows(path: Path, header: list[str]) -> list[list[str]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == header
    assert all(len(r) == len(header) for r in rows[1:])
    return rows[1:]


def _frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.slow
def test_headless_stream_writes_csvs_with_capture_clock_times(stream, tmp_path):
    s = stream(VTEST)  # 10 fps
    out = tmp_path / "live"
    p = _live("--source", s.url, "--no-show", "--save", "--out", str(out), "--max-seconds", "8")
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    fig = _summary(stdout)
    print(f"\nlive at native 10 fps: {fig}")
    assert "--max-seconds 8 reached" in stdout  # a time limit is said, never silent
    # No figure here depends on how fast this machine processes frames (only that it processed a few).
    assert fig["processed"] >= 2 and fig["captured"] >= fig["processed"]
    rows = _csv_rows(out / "tracks.csv", TRACK_COLUMNS)
    times, frames = [float(r[1]) for r in rows], [int(r[0]) for r in rows]
    span = times[-1] - times[0]
    assert times == sorted(times) and 0 < span < 8.0 + 2 * fig["lat_max"] / 1000 + 0.5  # within --max-seconds
    # capture-clock time: the server paces 10 fps (0.1 s per frame, more if it lags), although FFmpeg
    # reports 25 fps for it; index / header fps would give 0.04 s
    assert (times[-1] - times[0]) / (frames[-1] - frames[0]) > 0.08
    assert len({r[2] for r in rows}) >= 2
    _csv_rows(out / "predictions.csv", PREDICTION_COLUMNS)
    n = _frames(out / "annotated.mp4")
    assert n >= fig["processed"]  # paced by capture time: dropped frames are filled, playback is real time
    html = (out / "report.html").read_text(encoding="utf-8")  # the run's pictures, as `track` writes them
    assert "annotated.mp4" in html or "<video" in html
    for png in ("trajectories.png", "heatmap.png"):
        assert (out / png).stat().st_size > 1000 and f"wrote {out / png}" in stdout


class FakeCapture:
    """A frame source the test steps by hand: each `read()` returns a frame only after `release(n)`.

    Entering `read()` for the (k+1)-th time proves the reader has stored frame k, so the test knows
    exactly how many frames the reader holds without looking at any clock.
    """

    def __init__(self) -> None:
        self._permits = threading.Semaphore(0)
        self._entered = threading.Semaphore(0)
        self._done = False
        self._waiting_for_first = True
        self.sent = 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        self._entered.release()
        self._permits.acquire()
        if self._done:
            return False, None
        image = np.full((4, 4, 3), self.sent % 256, np.uint8)
        self.sent += 1
        return True, image

    def release_frames(self, n: int) -> None:
        """Let the reader capture n more frames and wait until it has stored all of them."""
        if self._waiting_for_first:  # the reader's first read() call, before any frame
            assert self._entered.acquire(timeout=30), "reader thread did not start"
            self._waiting_for_first = False
        for _ in range(n):
            self._permits.release()
        for _ in range(n):
            assert self._entered.acquire(timeout=30), "reader thread did not take the frame"

    def end(self) -> None:
        self._done = True
        self._permits.release()

    def get(self, _prop: int) -> float:
        return 25.0

    def release(self) -> None:
        pass


def test_slow_processing_drops_frames_instead_of_queueing():
    """A consumer slower than the source gets only the newest frame; the stale ones are dropped, not queued."""
    ticks = iter(range(1000))
    cam = FakeCapture()
    reader = LatestFrameReader(lambda: cam, LiveConfig(reconnect_s=0.0), clock=lambda: float(next(ticks)))
    reader.start()
    cam.release_frames(1)  # the reader is now blocked in its next read(): frame 0 is stored
    first = reader.get(timeout=0)
    assert first is not None and first.index == 0 and first.captured_at == 0.0
    # The consumer is "busy" while the camera delivers 5 frames: only the newest survives.
    cam.release_frames(5)
    newest = reader.get(timeout=0)
    assert newest is not None and newest.index == 5 and newest.captured_at == 5.0
    assert int(newest.image[0, 0, 0]) == 5
    assert (reader.captured, reader.dropped) == (6, 4)
    assert reader.get(timeout=0) is None  # nothing queued behind it
    cam.release_frames(3)
    assert reader.get(timeout=0).index == 8 and reader.dropped == 6
    cam.end()
    reader.stop()
    assert reader.ended and reader.end_reason.startswith("stream lost")


@pytest.mark.slow
def test_stream_dropped_mid_run_reconnects_then_stops_cleanly(stream, tmp_path):
    s = stream(VTEST)
    out = tmp_path / "live"
    p = _live("--source", s.url, "--no-show", "--save", "--out", str(out), "--reconnect", "2")
    deadline = time.time() + 90
    while time.time() < deadline and not ((out / "tracks.csv").exists() and (out / "tracks.csv").stat().st_size > 2000):
        time.sleep(0.2)
    s.kill()
    t_kill = time.time()
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 4, stderr
    assert time.time() - t_kill < 20
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: stream lost; gave up after reconnecting for 2 s"), stderr
    fig = _summary(stdout)
    assert "stopped early: stream lost" in stdout
    rows = _csv_rows(out / "tracks.csv", TRACK_COLUMNS)
    assert rows and _frames(out / "annotated.mp4") >= fig["processed"] > 0


def _wait_for_rows(csv_path: Path, more_than: int, proc: subprocess.Popen) -> int:
    """Wait (events, not a fixed time) until the live run has written more than `more_than` bytes of rows."""
    deadline = time.time() + 120  # a hang guard only
    while time.time() < deadline and proc.poll() is None:
        if csv_path.exists() and csv_path.stat().st_size > more_than:
            return csv_path.stat().st_size
        time.sleep(0.1)
    raise AssertionError(f"{csv_path} did not grow past {more_than} bytes")


@pytest.mark.slow
def test_stream_that_comes_back_is_reconnected(stream, tmp_path):
    s = stream(VTEST)
    out = tmp_path / "o"
    p = _live("--source", s.url, "--no-show", "--save", "--out", str(out), "--reconnect", "30")
    _wait_for_rows(out / "tracks.csv", 2000, p)  # streaming for real
    s.kill()
    time.sleep(1.5)  # down for a while (any time under --reconnect)
    size = (out / "tracks.csv").stat().st_size
    stream(VTEST, port=s.port)
    _wait_for_rows(out / "tracks.csv", size + 500, p)  # rows from frames after the reconnect
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=90)
    assert p.returncode == 0, stderr
    fig = _summary(stdout)
    assert fig["reconnects"] >= 1


def test_missing_camera_names_the_ones_that_open(tmp_path):
    p = _live("--source", "7", "--no-show", "--out", str(tmp_path / "o"))
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 2
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and re.match(r"error: camera 7 does not exist or is busy; (cameras that open: [\d, ]+|no camera opens)", lines[0])


def test_unopenable_stream_masks_credentials(tmp_path):
    url = f"http://admin:hunter2@127.0.0.1:{_free_port()}/video.mjpg"
    p = _live("--source", url, "--no-show", "--out", str(tmp_path / "o"))
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 2
    assert "hunter2" not in stderr and "http://***@127.0.0.1" in stderr
    assert [ln for ln in stderr.splitlines() if ln.strip()][0].startswith("error: cannot open stream")


def test_show_without_display_suggests_no_show(stream, tmp_path):
    s = stream(VTEST)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    cmd = [sys.executable, str(ROOT / "run.py"), "live", "--source", s.url, "--out", str(tmp_path / "o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "YOLO_OFFLINE": "1"}, timeout=60)
    assert proc.returncode == 2 and "--no-show" in proc.stderr


def test_url_helpers():
    assert mask_url("rtsp://user:pa:ss@10.0.0.2:554/stream") == "rtsp://***@10.0.0.2:554/stream"
    assert mask_url("http://cam.local/video.mjpg") == "http://cam.local/video.mjpg"
    assert parse_source("1") == 1 and parse_source("rtsp://x/y") == "rtsp://x/y"


@pytest.fixture
def xvfb():
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        pytest.fail("Xvfb and xdotool are needed (make setup installs them)")
    read_fd, write_fd = os.pipe()  # -displayfd: Xvfb writes its display number here once it accepts clients
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_fd,))
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        number = fh.readline().strip()
    assert number and proc.poll() is None, "Xvfb did not start"
    yield f":{number}"
    proc.kill()
    proc.wait()


@pytest.mark.slow
def test_window_shows_annotated_frames_and_keys_work(stream, tmp_path, xvfb):
    from PIL import ImageGrab

    s = stream(VTEST)
    out = tmp_path / "live"
    p = _live("--source", s.url, "--save", "--out", str(out), env={"DISPLAY": xvfb})  # runs until q
    _wait_for_rows(out / "tracks.csv", 3000, p)
    env = {**os.environ, "DISPLAY": xvfb}
    deadline = time.time() + 60  # a hang guard only
    win = subprocess.CompletedProcess([], 1, "")
    while time.time() < deadline and not win.stdout.strip():
        win = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "trajectory forecast"],
                             capture_output=True, text=True, env=env)
    assert win.stdout.strip(), "no window found"
    wid = win.stdout.split()[0]
    subprocess.run(["xdotool", "windowactivate", "--sync", wid], env=env, capture_output=True)
    subprocess.run(["xdotool", "key", "--window", wid, "s"], env=env, check=True)
    deadline = time.time() + 60  # a hang guard only
    while time.time() < deadline and not (out / "snapshot_1.png").exists():
        time.sleep(0.1)
    time.sleep(0.5)  # the PNG written whole
    shot = cv2.cvtColor(np.asarray(ImageGrab.grab(xdisplay=xvfb)), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "screen.png"), shot)
    subprocess.run(["xdotool", "key", "--window", wid, "q"], env=env, check=True)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr  # q stopped it: without q it would run until communicate() timed out
    snap = cv2.imread(str(out / "snapshot_1.png"))
    assert snap is not None and snap.shape[:2] == (360, 480)
    # the window shows the annotated frames that were recorded (the one on screen may lag the snapshot by a few
    # frames: the window repaints when it gets to it), and the snapshot is one of them too
    recorded = _video_frames(out / "annotated.mp4")
    on_screen = max(cv2.matchTemplate(shot, f[40:, :], cv2.TM_CCOEFF_NORMED).max() for f in recorded)
    snapped = max(cv2.matchTemplate(snap, f, cv2.TM_CCOEFF_NORMED).max() for f in recorded)
    print(f"screenshot vs best recorded frame {on_screen:.3f}, snapshot vs best recorded frame {snapped:.3f}")
    assert on_screen > 0.9 and snapped > 0.9, (on_screen, snapped)
    raw = cv2.VideoCapture(str(VTEST)).read()[1]
    assert cv2.matchTemplate(snap, raw[100:300, 100:400], cv2.TM_CCOEFF_NORMED).max() > 0.5  # the scene itself
    bar = snap[2:18, 2:200]
    assert (bar < 40).mean() > 0.5 and (bar > 200).any()  # the status overlay: white text on black
