"""`live --source cameras.yaml`: three real MJPEG cameras as Ray actors, one page, one camera killed midway.

No assertion depends on how fast this machine is: waits are generous deadlines for something to appear.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import run
from pipeline.apps.multi_live import Forwarder, read_cameras
from pipeline.events.types import Event
from pipeline.io.writers import PREDICTION_COLUMNS, TRACK_COLUMNS
from pipeline.outputs.web import LiveServer
from tests.apps.test_live import Stream, _csv_rows, _frames, _free_port, stream  # noqa: F401 (the fixture)
from tests.conftest import DETECTOR, ROOT, VIDEOS

CROSSWALK = VIDEOS / "yellow_crosswalk_640x360.mp4"
ZONES = ROOT / "configs" / "zones_yellow_crosswalk.yaml"
MOSQUITTO = Path("/usr/sbin/mosquitto")
CHROMIUM = Path("/usr/bin/chromium")
NAMES = ("north", "south", "east")


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `cond` until it is truthy (a hang guard, never a speed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout:g} s for {what}")


def _status(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url + "api/status", timeout=5) as r:
            return json.load(r)["cameras"]
    except (urllib.error.URLError, ConnectionError):
        return {}


def _jpeg(url: str) -> np.ndarray:
    """The first JPEG of an MJPEG stream."""
    with urllib.request.urlopen(url, timeout=60) as resp:
        while True:
            line = resp.readline()
            assert line, "the stream ended before a JPEG"
            m = re.match(rb"Content-Length: (\d+)", line)
            if m:
                resp.readline()
                img = cv2.imdecode(np.frombuffer(resp.read(int(m[1])), np.uint8), cv2.IMREAD_COLOR)
                assert img is not None
                return img


def _broker(tmp_path: Path) -> subprocess.Popen | None:
    """mosquitto on a free loopback port, when installed (make setup installs it)."""
    if not MOSQUITTO.exists():
        return None
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.port = port  # type: ignore[attr-defined]
    return proc


def _cameras_yaml(folder: Path, urls: list[str]) -> Path:
    """north with its own zones file (a path relative to the YAML), south only people, east as the command says."""
    shutil.copy(ZONES, folder / "north_zones.yaml")
    path = folder / "cameras.yaml"
    path.write_text("cameras:\n"
                    f"  - {{name: north, source: '{urls[0]}', zones: north_zones.yaml}}\n"
                    f"  - {{name: south, source: '{urls[1]}', classes: person}}\n"
                    f"  - {{name: east, source: '{urls[2]}'}}\n", encoding="utf-8")
    return path


def test_three_cameras_one_killed_the_others_go_on_and_every_file_is_whole(stream, tmp_path):  # noqa: F811
    streams = [stream(CROSSWALK) for _ in NAMES]
    broker = _broker(tmp_path)
    out, web = tmp_path / "out", _free_port()
    url = f"http://127.0.0.1:{web}/"
    cmd = [sys.executable, str(ROOT / "run.py"), "live", "--source", str(_cameras_yaml(tmp_path, [s.url for s in streams])),
           "--weights", str(DETECTOR), "--no-show", "--save", "--out", str(out), "--zones", str(ZONES),
           "--reconnect", "2", "--max-seconds", "240", "--serve", f"127.0.0.1:{web}", "--events-jsonl"]
    cmd += ["--mqtt", f"127.0.0.1:{broker.port}"] if broker else []  # type: ignore[attr-defined]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env={**os.environ, "YOLO_OFFLINE": "1"})
    try:
        running = lambda: all(c.get("state") == "running" for c in _status(url).values())  # noqa: E731
        _wait(lambda: p.poll() is not None or len(_status(url)) == 3 and running(), 150, "three running cameras")
        assert p.poll() is None, p.communicate()[1]
        assert list(_status(url)) == list(NAMES)  # in the file's order
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"/stream.mjpg" in r.read()
        for name in NAMES:  # each camera's own stream, drawn and encoded because this client watches it
            assert _jpeg(f"{url}stream.mjpg?camera={name}").shape == (360, 640, 3)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{url}stream.mjpg?camera=nope", timeout=10)
        streams[1].kill()  # south's camera goes away for good
        _wait(lambda: _status(url).get("south", {}).get("state", "").startswith("failed"), 90, "south to fail")
        sizes = {n: (out / n / "tracks.csv").stat().st_size for n in ("north", "east")}
        _wait(lambda: all((out / n / "tracks.csv").stat().st_size > sizes[n] for n in sizes), 60,
              "north and east to go on after south failed")
        assert all(_status(url)[n]["state"] == "running" for n in ("north", "east"))
        p.send_signal(signal.SIGINT)  # Ctrl-C: every camera finishes its files
        t_stop = time.monotonic()
        events, report = p.communicate(timeout=120)  # --events-jsonl: events on stdout, the summary on stderr
        print(f"\nstarted, failed, went on, stopped; the stop took {time.monotonic() - t_stop:.1f} s\n{report}")
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        if broker:
            broker.kill()
    assert p.returncode == 0, report  # two cameras worked: not every camera failed
    assert "Traceback" not in report
    jsonl = [json.loads(ln) for ln in events.splitlines()]
    assert re.search(r"^camera south: FAILED: stream lost; gave up after reconnecting for 2 s", report, re.M), report
    for name in ("north", "east"):
        assert f"camera {name}: stopped: stopped by Ctrl-C or SIGTERM" in report
    assert "cameras: 3, 2 ran until stopped, 1 failed (south)" in report
    for name in NAMES:  # one folder per camera with what a single-camera live --save writes, whole
        folder = out / name
        rows = _csv_rows(folder / "tracks.csv", TRACK_COLUMNS)
        _csv_rows(folder / "predictions.csv", PREDICTION_COLUMNS)
        processed = int(re.search(rf"^camera {name}: .*\n  live: .*?processed (\d+) of", report, re.M)[1])
        assert rows and _frames(folder / "annotated.mp4") >= processed > 0
        for f in ("run.json", "report.html", "trajectories.png", "events.csv"):
            assert (folder / f).is_file(), folder / f
        assert json.loads((folder / "run.json").read_text())["summary"]["frames_processed"] == processed
        got = [(e["frame"], e["event"], e["track_id"]) for e in jsonl if e["camera"] == name]
        want = [(int(r[0]), r[4], int(r[2])) for r in list(csv.reader((folder / "events.csv").read_text().splitlines()))[1:]]
        assert got == want  # every event, in order, also on stdout
        if broker:
            assert re.search(rf"  mqtt: \d+ messages to 127.0.0.1:\d+ topic trajpred/{name}/events", report), report
    south = {r[3] for r in _csv_rows(out / "south" / "tracks.csv", TRACK_COLUMNS)}
    assert south <= {"person"}  # its own classes


@pytest.mark.parametrize(("body", "match"), [
    ("cameras:\n  - {name: a, source: 0, zone: z.yaml}\n", r"camera .a.: unknown key\(s\) zone; allowed: name, source"),
    ("cameras:\n  - {name: a, source: 0}\n  - {name: A, source: 1}\n", "camera name 'A' is used twice"),
    ("cameras:\n  - {name: a}\n", "camera 'a': no source"),
    ("cameras:\n  - {source: 0}\n", r"cameras\[0\]: no name"),
    ("cameras:\n  - {name: a, source: 0, zones: nowhere.yaml}\n", "camera 'a': zones file .*nowhere.yaml does not exist"),
    ("cameras:\n  - {name: a, source: gone.mp4}\n", "camera 'a': source file .*gone.mp4 does not exist"),
    ("cameras:\n  - {name: a/b, source: 0}\n", "name 'a/b' must be 1-64 letters"),
    ("cameras:\n  - {name: .., source: 0}\n", "name '..' must be"),
    ("cameras: {a: 0}\n", "must be a non-empty list"),
    ("cameras: []\n", "must be a non-empty list"),
    ("camera:\n  - {name: a, source: 0}\n", "unknown key.s. camera; it holds only `cameras:`"),
    ("cameras: [\n", "is not a readable YAML file"),
    ("- a\n", "must hold `cameras:`"),
    ("cameras:\n  - {name: a, source: 0, classes: [person, 3]}\n", "classes must be class names"),
])
def test_a_bad_cameras_file_is_refused_in_one_line(tmp_path, capsys, body, match):
    path = tmp_path / "cameras.yaml"
    path.write_text(body, encoding="utf-8")
    code = run.main(["live", "--source", str(path), "--no-show", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(match, lines[0]), lines[0]
    assert not (tmp_path / "o").exists()  # refused before anything was started or written


def test_command_line_rules_of_a_cameras_file(tmp_path, capsys):
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  - {name: a, source: 'http://127.0.0.1:9/x.mjpg'}\n", encoding="utf-8")
    for args, match in ((["--show"], "add --no-show"), (["--no-show", "--mqtt", "localhost"], "camera a has none"),
                        (["--no-show", "--mqtt", "localhost", "--mqtt-topic", "t/#"], "cannot be published to"),
                        (["--no-show", "--serve", "0.0.0.0:8000"], "--serve-token")):
        assert run.main(["live", "--source", str(path), *args, "--out", str(tmp_path / "o")]) == 2
        assert re.search(match, capsys.readouterr().err)
    assert run.main(["live", "--source", "0", "--no-show", "--address", "auto"]) == 2
    assert "cameras.yaml" in capsys.readouterr().err
    specs = read_cameras(str(path))
    assert specs[0].name == "a" and specs[0].source == "http://127.0.0.1:9/x.mjpg"


def test_every_camera_failing_exits_1_with_each_reason(tmp_path):
    path = tmp_path / "cameras.yaml"
    path.write_text("".join(["cameras:\n"] + [f"  - {{name: c{i}, source: 'http://127.0.0.1:{_free_port()}/v.mjpg'}}\n"
                                              for i in range(2)]), encoding="utf-8")
    p = subprocess.run([sys.executable, str(ROOT / "run.py"), "live", "--source", str(path), "--no-show",
                        "--weights", str(DETECTOR), "--out", str(tmp_path / "o"), "--reconnect", "1"],
                       capture_output=True, text=True, timeout=180, cwd=ROOT, env={**os.environ, "YOLO_OFFLINE": "1"})
    assert p.returncode == 1, p.stderr
    for i in range(2):
        assert re.search(rf"camera c{i}: FAILED: cannot open stream http://127.0.0.1:\d+/v.mjpg; check the URL, "
                         "network and credentials; gave up after retrying for 1 s", p.stdout), p.stdout
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: every camera failed (c0, c1); each one's reason is in the summary above"], p.stderr
    assert "Traceback" not in p.stderr


def test_forwarder_keeps_the_newest_frame_encodes_only_when_watched_and_never_waits():
    fw = Forwarder("a")
    img = np.zeros((48, 64, 3), np.uint8)
    fw.publish_frame("a", img)  # nobody watches: nothing encoded
    fw.set_status("a", {"fps": 1.0})
    upd = fw.take(0.0)
    assert upd.jpeg is None and upd.status == {"fps": 1.0}
    fw.watching = True
    for i in range(5):
        img[0, 0] = i
        fw.publish_frame("a", img)
    fw.publish_events("a", [Event(i, i / 10, 1, "line_cross", "c") for i in range(1200)])
    upd = fw.take(0.0)
    assert cv2.imdecode(np.frombuffer(upd.jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)
    assert fw.frames_replaced == 4 and len(upd.events) == 1000 and fw.events_dropped == 200
    assert upd.events[-1].frame == 1199 and upd.status is None
    t0 = time.monotonic()
    assert fw.take(0.2).jpeg is None and time.monotonic() - t0 >= 0.15  # nothing new: the poll waited
    threading.Timer(0.1, fw.publish_frame, ("a", img)).start()
    assert fw.take(30).jpeg is not None  # returns as soon as something comes


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make setup installs it)")
def test_the_page_tiles_every_camera_and_a_click_shows_one():
    from tests.outputs.test_web import _browser

    problems: list[str] = []
    with LiveServer("127.0.0.1", 0) as srv, _browser(problems) as page:
        stop = threading.Event()

        def publisher() -> None:  # three fake cameras, a new picture each every 50 ms
            i = 0
            while not stop.is_set():
                for k, name in enumerate(NAMES):
                    img = np.full((90, 160, 3), (40 * k, 90, i % 256), np.uint8)
                    srv.publish_frame(name, img)
                    srv.set_status(name, {"fps": 5.0, "latency_s": 0.1, "state": "running"})
                i += 1
                time.sleep(0.05)

        t = threading.Thread(target=publisher, daemon=True)
        t.start()
        try:
            page.goto(srv.url, wait_until="load")
            page.wait_for_function("document.querySelectorAll('#view figure img').length === 3 && "
                                   "[...document.querySelectorAll('#view figure img')].every(i => i.naturalWidth > 0)",
                                   timeout=30_000)
            assert page.locator("#view figcaption").all_inner_texts() == list(NAMES)
            assert all(srv.watching(n) for n in NAMES)
            page.locator("#view figure", has_text="east").click()
            page.wait_for_function("document.getElementById('stream') && "
                                   "document.getElementById('stream').naturalWidth > 0", timeout=30_000)
            _wait(lambda: not srv.watching("north") and not srv.watching("south"), 30, "the tiles' streams to end")
            assert srv.watching("east")
            page.locator("#view button", has_text="all cameras").click()
            _wait(lambda: all(srv.watching(n) for n in NAMES), 30, "the tiles again")
        finally:
            stop.set()
            t.join(10)
    assert problems == []


def test_a_camera_down_at_the_start_is_retried_and_runs_once_it_comes_up(tmp_path):
    late = _free_port()
    path = tmp_path / "cameras.yaml"
    path.write_text(f"cameras:\n  - {{name: late, source: 'http://127.0.0.1:{late}/video.mjpg'}}\n", encoding="utf-8")
    web = _free_port()
    url = f"http://127.0.0.1:{web}/"
    p = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "live", "--source", str(path), "--no-show", "--save",
                          "--weights", str(DETECTOR), "--out", str(tmp_path / "o"), "--reconnect", "120",
                          "--max-seconds", "3", "--serve", f"127.0.0.1:{web}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env={**os.environ, "YOLO_OFFLINE": "1"})
    cam = None
    try:  # the page says it retries while the camera is down; it comes up later and the camera runs
        _wait(lambda: p.poll() is not None or _status(url).get("late", {}).get("state", "").startswith("retrying"),
              120, "the camera to be retried")
        assert p.poll() is None, p.communicate()[1]
        cam = Stream(CROSSWALK, port=late).start()
        out, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        if cam:
            cam.kill()
    assert p.returncode == 0, err
    assert "camera late: stopped: --max-seconds 3 reached" in err + out, err + out
    assert _csv_rows(tmp_path / "o" / "late" / "tracks.csv", TRACK_COLUMNS)
