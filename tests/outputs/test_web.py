"""`live --serve`: the web server alone with a fake publisher, the page in a real browser, and a real live run.

No assertion here depends on how fast this machine is: waits are generous deadlines for something to appear,
and "never blocks" is shown by a publishing loop that finishes all its frames while a client reads nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipeline.core.errors import UserError
from pipeline.events.types import Event
from pipeline.outputs.web import PAGE, LiveServer, parse_serve
from tests.conftest import DETECTOR, ROOT, VIDEOS, run_cli

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "t0k3n-7f3a9c"  # distinctive: searched for in the run's outputs and logs
CROSSWALK = VIDEOS / "yellow_crosswalk_640x360.mp4"
ZONES = ROOT / "configs" / "zones_yellow_crosswalk.yaml"
SCREENSHOT = ROOT / "docs" / "gallery" / "live_page.png"


def _wait(cond: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll `cond` until it is truthy (a generous deadline, never a speed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"waited {timeout:g} s for {what or cond}")


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout)


def _code(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with _get(url, headers) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _read_jpeg(stream: Any) -> bytes:
    """The first whole JPEG of a multipart stream, by its Content-Length."""
    while True:
        line = stream.readline()
        assert line, "the stream ended before a JPEG"
        m = re.match(rb"Content-Length: (\d+)", line)
        if m:
            assert stream.readline() == b"\r\n"
            return stream.read(int(m[1]))


def _sse_data(stream: Any) -> dict[str, Any]:
    """The next `data:` message of an event stream, as JSON."""
    while True:
        line = stream.readline()
        assert line, "the event stream ended"
        if line.startswith(b"data: "):
            return json.loads(line[6:])


def _frame(i: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    img = np.full((size[1], size[0], 3), (i * 37 % 256, 90, 255 - i * 37 % 256), np.uint8)
    cv2.putText(img, str(i), (20, size[1] // 2), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return img


STATUS = {"fps": 9.5, "latency_s": 0.12, "tracks": 3, "dropped": 4, "reconnects": 1, "uptime_s": 12.0,
          "counts": ["counts line centre: 3 in, 1 out (person 4)"]}


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with LiveServer("127.0.0.1", 0) as srv:
        yield srv


def test_serve_spec_and_the_token_rule():
    assert parse_serve("8000") == ("127.0.0.1", 8000)
    assert parse_serve("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_serve("[::1]:8000") == ("::1", 8000)
    for bad in ("", "x", ":80", "host:", "1.2.3.4:70000", "::1:80"):
        with pytest.raises(UserError, match="--serve"):
            parse_serve(bad)
    for host in ("0.0.0.0", "192.168.1.5", "::", "camera-box"):
        with pytest.raises(UserError, match="--serve-token"):
            LiveServer(host, 8000)
        LiveServer(host, 8000, token="secret")  # allowed with a token (nothing is bound until entered)
    for host in ("127.0.0.1", "localhost", "::1"):
        LiveServer(host, 8000)
    with pytest.raises(UserError, match="empty"):
        LiveServer("127.0.0.1", 8000, token=" ")


@pytest.mark.parametrize(("args", "match"), [
    (["--serve", "0.0.0.0:8000"], "add --serve-token"),
    (["--serve-token", TOKEN], "--serve-token needs --serve"),
    (["--serve", "80:80:80"], "give PORT or HOST:PORT"),
])
def test_cli_refuses_before_opening_anything(tmp_path, args, match):
    proc = run_cli("live", "--weights", str(DETECTOR), "--no-show", "--source", "7", "--out", str(tmp_path / "o"), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], proc.stderr
    assert TOKEN not in proc.stderr and not (tmp_path / "o").exists()


def test_a_taken_port_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"127.0.0.1:{port}.*already in use") as info:
            with LiveServer("127.0.0.1", port):
                pass
    assert "\n" not in str(info.value)


def test_status_json(server):
    server.set_status("cam-a", STATUS)
    with _get(server.url + "api/status") as r:
        assert r.headers["Content-Type"].startswith("application/json")
        body = json.load(r)
    assert body["cameras"] == {"cam-a": STATUS}
    assert body["server"]["stream_clients"] == 0 and body["server"]["uptime_s"] >= 0


def test_page_is_self_contained(server):
    with _get(server.url) as r:
        page = r.read().decode()
    assert page == PAGE and "/stream.mjpg" in page and "/events" in page and "/api/status" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page), "the page must not fetch anything outside"


def test_sse_delivers_a_published_event(server):
    ev = Event(12, 3.25, 7, "zone_enter_predicted", "door", eta_s=1.5, probability=0.8, direction="in")
    with _get(server.url + "events") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        _wait(lambda: server.stats()["event_clients"] == 1, what="the page's event stream")
        server.publish_events("cam-a", [ev])
        assert _sse_data(stream) == {**ev.as_dict(), "camera": "cam-a"}
    # a page opened later gets the recent events at once; a reconnecting one only what it missed
    server.publish_events("cam-a", [Event(13, 3.5, 8, "line_cross", "centre")])
    with _get(server.url + "events") as stream:
        assert [_sse_data(stream)["frame"] for _ in range(2)] == [12, 13]
    with _get(server.url + "events", {"Last-Event-ID": "1"}) as stream:
        assert _sse_data(stream)["frame"] == 13


def test_mjpeg_delivers_jpegs_of_the_camera_asked_for(server):
    for i in range(3):  # nobody watches yet: nothing is encoded
        server.publish_frame("cam-a", _frame(i))
    server.publish_frame("cam-b", _frame(0, (160, 120)))
    assert server.stats()["frames_encoded"] == 0 and not server.streaming
    for query, size in (("", (240, 320)), ("?camera=cam-b", (120, 160))):
        with _get(server.url + "stream.mjpg" + query) as stream:
            assert stream.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
            _wait(lambda: server.streaming, what="the stream client")
            server.publish_frame("cam-a", _frame(5))
            server.publish_frame("cam-b", _frame(5, (160, 120)))
            img = cv2.imdecode(np.frombuffer(_read_jpeg(stream), np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape[:2] == size
        _wait(lambda: not server.streaming, what="the closed stream to be noticed")
    assert _code(server.url + "stream.mjpg?camera=nope") == 404


def test_a_client_that_never_reads_does_not_hold_up_the_publisher_nor_the_stop(caplog):
    """Far more frames than any socket buffer holds: each publish_frame returns, the stalled client's are dropped."""
    with socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        with LiveServer("127.0.0.1", 0) as server:
            stalled.connect(("127.0.0.1", server.port))
            stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and then never reads
            _wait(lambda: server.streaming, what="the stalled client")
            noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)  # ~200 kB a JPEG
            n, published = 300, []

            def publish() -> None:
                for i in range(n):
                    noise[0, :8] = i % 256
                    server.publish_frame("cam-a", noise)
                    published.append(i)

            t = threading.Thread(target=publish, daemon=True)
            t.start()
            t.join(120)  # a blocking publisher would stop after a few frames, whatever the deadline
            assert len(published) == n
            stats = server.stats()
            assert stats["frames_encoded"] == n and stats["frames_dropped"] >= n // 2, stats
        # stopped with the client still stalled: cut off, not waited for, nothing logged as an error
        assert not any(t.name == "live-web-server" for t in threading.enumerate())
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


def test_with_a_token_every_request_needs_it():
    with LiveServer("127.0.0.1", 0, token=TOKEN) as srv:
        for path in ("", "api/status", "stream.mjpg", "events"):
            url = srv.url + path
            assert _code(url) == 401, path
            assert _code(url + "?token=wrong") == 401, path
            assert _code(url, {"Authorization": "Bearer wrong"}) == 401, path
            assert _code(f"{url}?token={TOKEN}") == 200, path
            assert _code(url, {"Authorization": f"Bearer {TOKEN}"}) == 200, path


def test_closing_ends_open_streams_and_the_thread():
    srv = LiveServer("127.0.0.1", 0)
    with srv:
        stream, events = _get(srv.url + "stream.mjpg"), _get(srv.url + "events")
        _wait(lambda: srv.stats()["stream_clients"] == srv.stats()["event_clients"] == 1, what="both clients")
    assert not any(t.name == "live-web-server" for t in threading.enumerate())
    stream.read(), events.read()  # both end (no hang: the server closed them)
    stream.close(), events.close()
    with pytest.raises(urllib.error.URLError):
        _get(srv.url + "api/status", timeout=2)


@contextmanager
def _browser(problems: list[str]) -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never a downloaded browser), a page that records what went wrong."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("response", lambda r: problems.append(f"{r.status} {r.url[:60]}") if r.status >= 400 else None)
            yield page
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make setup installs it)")
def test_page_shows_the_stream_events_and_status_in_chromium():
    problems: list[str] = []
    with LiveServer("127.0.0.1", 0, token=TOKEN) as srv, _browser(problems) as page:
        stop = threading.Event()

        def publisher() -> None:  # a fake pipeline: a new picture every 50 ms
            i = 0
            while not stop.is_set():
                srv.publish_frame("cam-a", _frame(i))
                srv.set_status("cam-a", {**STATUS, "uptime_s": float(i)})
                i += 1
                time.sleep(0.05)

        t = threading.Thread(target=publisher, daemon=True)
        t.start()
        try:
            page.goto(f"{srv.url}?token={TOKEN}", wait_until="load")  # the page passes its token on
            img = page.locator("#stream")
            page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=20_000)
            first = img.screenshot()
            _wait(lambda: img.screenshot() != first, what="the <img> to show a newer frame")
            page.locator("#status td", has_text="cam-a").wait_for(timeout=20_000)
            page.locator("#counts li", has_text="counts line centre").wait_for(timeout=20_000)
            _wait(lambda: srv.stats()["event_clients"] == 1, what="the page's event stream")
            srv.publish_events("cam-a", [Event(40, 4.0, 42, "line_cross", "centre", direction="in")])
            page.locator("#events li", has_text="line_cross").wait_for(timeout=2_000)
            assert "#42" in page.locator("#events li").first.inner_text()
        finally:
            stop.set()
            t.join(10)
    assert problems == []


def _status(url: str) -> dict[str, Any] | None:
    try:
        with _get(f"{url}api/status?token={TOKEN}", timeout=5) as r:
            body = json.load(r)
        return body if body["cameras"] else None
    except (urllib.error.URLError, ConnectionError):
        return None


def test_live_run_serves_its_stream_and_status(tmp_path):
    """`run.py live --serve` on a real MJPEG camera stream (the crosswalk video with its zones): status and a JPEG."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        cam_port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        web_port = s.getsockname()[1]
    cam = subprocess.Popen([sys.executable, str(ROOT / "tests" / "mjpeg_server.py"), str(CROSSWALK), str(cam_port),
                            "--loop"], stdout=subprocess.PIPE, text=True)
    try:
        assert cam.stdout.readline().strip() == "ready"
        out = tmp_path / "live"
        cmd = [sys.executable, str(ROOT / "run.py"), "live", "--weights", str(DETECTOR), "--no-show",
               "--source", f"http://127.0.0.1:{cam_port}/video.mjpg", "--zones", str(ZONES), "--out", str(out),
               "--serve", f"127.0.0.1:{web_port}", "--serve-token", TOKEN, "--max-seconds", "300"]
        live = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env={**os.environ, "YOLO_OFFLINE": "1"})
        url = f"http://127.0.0.1:{web_port}/"
        try:
            status = _wait(lambda: live.poll() is None and _status(url) or live.poll() is not None, 180,
                           "the live run's status")
            assert live.poll() is None, live.communicate()[1]
            cam_status = next(iter(status["cameras"].values()))
            assert {"fps", "latency_s", "tracks", "dropped", "reconnects", "uptime_s", "counts"} <= set(cam_status)
            assert _code(url + "api/status") == 401
            with _get(f"{url}stream.mjpg?token={TOKEN}", timeout=30) as stream:
                img = cv2.imdecode(np.frombuffer(_read_jpeg(stream), np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape == (360, 640, 3)
            with _get(f"{url}events?token={TOKEN}") as events:
                assert events.readline() == b"retry: 2000\n"
            if os.environ.get("SAVE_SCREENSHOT") == "1":  # the README's picture: a real run in the page
                _screenshot(url)
        finally:
            if live.poll() is None:
                live.send_signal(signal.SIGINT)  # a clean stop, as Ctrl-C
            stdout, stderr = live.communicate(timeout=120)
    finally:
        cam.kill()
        cam.wait()
    assert live.returncode == 0, stderr
    assert f"serving {url}" in stderr and "processed" in stdout
    run_json = (out / "run.json").read_text(encoding="utf-8")
    assert TOKEN not in stdout + stderr + run_json


def _screenshot(url: str) -> None:
    problems: list[str] = []
    with _browser(problems) as page:
        page.goto(f"{url}?token={TOKEN}", wait_until="load")
        page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=20_000)
        _wait(lambda: page.locator("#events li").count() >= 12, 60, "a dozen events on the page")
        page.locator("#counts li", has_text="counts line").wait_for(timeout=20_000)
        time.sleep(2)  # the first batch of events past its highlight: only the newest flash
        page.screenshot(path=str(SCREENSHOT))
    assert problems == []
