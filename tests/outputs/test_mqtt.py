"""`live --mqtt`: events to a real mosquitto broker the tests start on a free loopback port, read back with paho.

No assertion depends on how fast this machine is: waits are for messages (with generous safety limits), and
"never blocks" is shown by counting what the outbox holds while no broker exists.
"""

from __future__ import annotations

import getpass
import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from pipeline.core.errors import UserError
from pipeline.events.types import EVENT_COLUMNS, Alert, ConflictMark, Event, EventFrame, Overlay
from pipeline.outputs.mqtt import (END_REASONS, AlertLifecycle, LifecycleSettings, MqttPublisher, MqttSettings, MqttTarget,
                                   camera_name, check_options, parse_target, topic_for)
from tests.apps.test_live import _finish, _live, stream  # noqa: F401 (the fixture)
from tests.conftest import ROOT, VIDEOS, run_cli

MOSQUITTO = Path("/usr/sbin/mosquitto")
CROSSWALK = VIDEOS / "yellow_crosswalk_640x360.mp4"
ZONES = ROOT / "configs" / "zones_yellow_crosswalk.yaml"
WAIT_S = 60.0  # safety limit for a wait on messages (never a measured figure)
FAST = MqttSettings(reconnect_min_s=0.1, reconnect_max_s=0.5, flush_s=10.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on 127.0.0.1:port; persistent, so a subscriber's session survives a restart as on a real broker."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {folder}/\nuser {getpass.getuser()}\n")
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: saves its sessions, as a broker restarted by its service manager does
            self.proc.wait(timeout=WAIT_S)

    def freeze(self) -> None:
        """SIGSTOP: it accepts nothing more, so what the publisher sends now stays unacknowledged."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def crash(self) -> None:
        """SIGKILL: gone without a goodbye (the publisher sees its connection reset)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=WAIT_S)


@pytest.fixture
def broker(tmp_path):
    if not MOSQUITTO.exists():
        pytest.skip("needs Debian's mosquitto broker at /usr/sbin/mosquitto (make setup installs it)")
    b = Broker(tmp_path).start()
    yield b
    b.stop()


class Subscriber:
    """A QoS 1 subscriber with a persistent session; keeps every message in arrival order."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[dict] = []
        self.topics: set[str] = set()
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}", clean_session=False)
        c.on_connect = lambda cl, *_: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *_: self._subscribed.set()
        c.on_message = self._on_message
        c.reconnect_delay_set(0.1, 0.5)
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        assert self._subscribed.wait(WAIT_S), "no SUBACK from the broker"

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(json.loads(msg.payload))
            self.topics.add(msg.topic)
            self._cond.notify_all()

    def unique(self) -> list[dict]:
        """First arrival of each seq (QoS 1 may deliver a message twice)."""
        with self._cond:
            seen: set[int] = set()
            return [m for m in self.messages if not (m["seq"] in seen or seen.add(m["seq"]))]

    def wait_for(self, n: int) -> list[dict]:
        deadline = time.monotonic() + WAIT_S
        with self._cond:
            while len({m["seq"] for m in self.messages}) < n and self._cond.wait(max(deadline - time.monotonic(), 0)):
                pass
        got = self.unique()
        assert len(got) >= n, f"{len(got)} of {n} messages arrived"
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _real(n: int) -> list[Event]:
    """n real events of every kind, numbered by frame."""
    kinds = [dict(event="zone_enter", name="lane", direction="in"), dict(event="line_cross", name="centre",
             direction="out"), dict(event="zone_exit", name="lane", direction="out", dwell_s=1.25),
             dict(event="conflict", other_id=9, eta_s=0.4, distance=0.8)]
    return [Event(i, i / 10, i % 7, **kinds[i % 4]) for i in range(n)]  # type: ignore[arg-type]


def _payload(e: Event, camera: str, seq: int) -> dict:
    return e.as_dict() | {"camera": camera, "seq": seq}


# ---- the --mqtt value, the camera name, the topic (no broker needed) ----

def test_mqtt_option_parsing_and_errors_never_show_credentials():
    assert parse_target("broker") == MqttTarget("broker", 1883)
    assert parse_target("10.0.0.5:8883") == MqttTarget("10.0.0.5", 8883)
    assert parse_target("[::1]:1884") == MqttTarget("::1", 1884)
    t = parse_target("mqtt://alice:s3cr:et@broker.local:1885")
    assert (t.host, t.port, t.username, t.password) == ("broker.local", 1885, "alice", "s3cr:et")
    assert "s3cr" not in repr(t) and "s3cr" not in str(t) and str(t) == "broker.local:1885"
    for bad in ("", "host:0", "host:70000", "host:abc", "host:", "a b", "::1:1883", "http://h", "alice:pw@",
                ":pw@host", "host/x", "[::1]x"):
        with pytest.raises(UserError) as err:
            check_options(bad if bad else " ", None)
        assert "\n" not in str(err.value) and "pw" not in str(err.value), bad
    with pytest.raises(UserError, match="no host|not a host"):
        parse_target("alice:hunter2@:1883")
    with pytest.raises(UserError, match="needs --mqtt"):
        check_options(None, "a/b")
    for topic in ("a/+/b", "a/#", "$SYS/x", ""):
        with pytest.raises(UserError, match="--mqtt-topic"):
            check_options("host", topic)
    check_options("host", "site/gate/events")


def test_malformed_mqtt_fails_in_one_line_before_any_model_loads():
    proc = run_cli("live", "--source", "rtsp://bob:topsecret@cam/x", "--no-show", "--zones", str(ZONES),
                   "--mqtt", "alice:hunter2@broker:99999")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: --mqtt ***@broker:99999: the port")
    assert "hunter2" not in proc.stderr and "topsecret" not in proc.stderr


def test_camera_name_is_topic_safe_and_never_holds_credentials():
    assert camera_name(0) == "camera0"
    assert camera_name("rtsp://user:pa/ss@cam.local:554/stream1?token=abc") == "cam.local_554_stream1"
    assert camera_name("http://127.0.0.1:8080/video.mjpg") == "127.0.0.1_8080_video.mjpg"
    assert camera_name("/data/street cam #2.mp4") == "street_cam_2"
    assert camera_name("rtsp://u:p@/") == "camera"
    assert camera_name("rtsp://cam/x+y#frag") == "cam_x_y"
    for unclear in ("rtsp://a+b:c#d@h/x", "http://h/x?mail=a@b.com&token=zz", "x/+/#.mp4"):
        assert camera_name(unclear) == "camera"


def test_the_topic_names_the_camera_where_asked():
    assert topic_for(None, "gate") == "trajpred/gate/events"
    assert topic_for("site1/{camera}/alerts", "gate") == "site1/gate/alerts"
    assert topic_for("site1/events", "gate") == "site1/events"  # one topic for every camera: payloads say which
    for template, topic in (("a/{camera}", "a/camera0"), (None, "trajpred/camera0/events")):
        with MqttPublisher.for_source("127.0.0.1:9", template, 0) as pub:  # no broker there: it never waits
            assert pub.topic == topic


# ---- the life cycle of predicted alerts, on a constructed sequence (no broker needed) ----

class Held:
    """What the events stage says it still holds (a stand-in for EventEngine)."""

    def __init__(self) -> None:
        self.keys: set[tuple] = set()
        self.conflict_starts: list[tuple[int, int]] = []

    def open_alerts(self) -> set[tuple]:
        return set(self.keys)


def _frame(*events: Event, alerts: tuple[Alert, ...] = (), marks: tuple[ConflictMark, ...] = ()) -> EventFrame:
    return EventFrame(events, overlay=Overlay(alerts=alerts, conflicts=marks))


def _mark(a: int, b: int, ttc: float, d: float = 0.5) -> ConflictMark:
    import numpy as np

    return ConflictMark(a, b, ttc, d, np.zeros((2, 2)))


def test_alert_life_cycle_new_update_end():
    life, held = AlertLifecycle(LifecycleSettings(eta_change_s=0.5, probability_change=0.1, expire_margin_s=1.0)), Held()
    zone = Event(1, 0.1, 4, "zone_enter_predicted", "lane", eta_s=2.0, probability=0.6, direction="in")
    held.keys = {("zone_enter", 4, "lane")}
    out = life.step(1, 0.1, _frame(zone, alerts=(Alert(4, "lane", 2.0, 0.6),)), held)
    assert out == [zone.as_dict() | {"type": "new", "alert_id": 1}]
    # the expected time (time_s + eta_s = 2.1) moved 0.3 s and the probability 0.05: nothing to say
    assert life.step(2, 0.2, _frame(alerts=(Alert(4, "lane", 2.2, 0.65),)), held) == []
    [upd] = life.step(3, 0.3, _frame(alerts=(Alert(4, "lane", 2.5, 0.65),)), held)  # expected 2.8: moved 0.7 s
    assert (upd["type"], upd["alert_id"], upd["frame"], upd["time_s"], upd["eta_s"], upd["probability"]) == \
        ("update", 1, 3, 0.3, 2.5, 0.65)
    [upd] = life.step(4, 0.4, _frame(alerts=(Alert(4, "lane", 2.4, 0.8),)), held)  # probability +0.15
    assert (upd["type"], upd["probability"]) == ("update", 0.8)
    # no overlay entry this frame (below the alert threshold) but still held: nothing
    assert life.step(5, 0.5, _frame(), held) == []
    # it came true: the real entry, then the alert's end
    enter = Event(6, 0.58, 4, "zone_enter", "lane", direction="in")
    held.keys = set()
    real, end = life.step(6, 0.6, _frame(enter), held)
    assert real == enter.as_dict() and "type" not in real
    assert (end["type"], end["end_reason"], end["alert_id"], end["event"], end["frame"]) == \
        ("end", "came_true", 1, "zone_enter_predicted", 6)

    # let go by the events stage (the foot point is across the line, so the forecast no longer crosses it) and the
    # crossing counts a moment later, once past the hysteresis margin: it came true, it was not withdrawn
    line = Event(7, 0.7, 5, "line_cross_predicted", "centre", eta_s=1.5, probability=0.7, direction="out")
    held.keys = {("line_cross", 5, "centre")}
    [new] = life.step(7, 0.7, _frame(line), held)
    held.keys = set()
    assert life.step(8, 0.8, _frame(), held) == []
    cross = Event(9, 0.85, 5, "line_cross", "centre", direction="out")
    real, end = life.step(9, 0.9, _frame(cross), held)
    assert (new["alert_id"], real, end["alert_id"], end["end_reason"]) == (2, cross.as_dict(), 2, "came_true")

    # withdrawn: let go before its expected time (2.6), and nothing came of it for withdraw_after_s (1 s)
    line = Event(10, 1.1, 5, "line_cross_predicted", "centre", eta_s=1.5, probability=0.7, direction="in")
    held.keys = {("line_cross", 5, "centre")}
    life.step(10, 1.1, _frame(line), held)
    held.keys = set()
    assert life.step(11, 1.2, _frame(alerts=(Alert(5, "centre", 1.0, 0.9),)), held) == []  # no updates once let go
    assert life.step(12, 2.1, _frame(), held) == []
    [end] = life.step(13, 2.2, _frame(), held)
    assert (end["alert_id"], end["end_reason"], end["direction"], end["eta_s"]) == (3, "withdrawn", "in", 0.4)

    # expired: still held, but its expected time (1.0 + 0.5) plus the margin (1 s) passed without the event
    zone2 = Event(10, 1.0, 6, "zone_enter_predicted", "lane", eta_s=0.5, probability=0.9, direction="in")
    held.keys = {("zone_enter", 6, "lane")}
    life.step(10, 1.0, _frame(zone2), held)
    assert life.step(20, 2.5, _frame(), held) == []
    [end] = life.step(21, 2.6, _frame(), held)
    assert (end["alert_id"], end["end_reason"], end["eta_s"]) == (4, "expired", pytest.approx(-1.1))

    # a conflict comes true when the pair's real conflict begins (its conflict row only follows when it ends)
    conf = Event(30, 3.0, 2, "conflict_predicted", "", other_id=8, eta_s=1.0, probability=0.6, distance=0.4)
    held.keys = {("conflict", 2, 8)}
    life.step(30, 3.0, _frame(conf, marks=(_mark(2, 8, 1.0),)), held)
    [upd] = life.step(31, 3.1, _frame(marks=(_mark(8, 2, 1.6, 0.3),)), held)  # ttc: expected 4.0 -> 4.7
    assert (upd["type"], upd["distance"], upd["other_id"]) == ("update", 0.3, 8)
    held.conflict_starts = [(2, 8)]
    [end] = life.step(32, 3.2, _frame(), held)
    assert (end["end_reason"], end["event"]) == ("came_true", "conflict_predicted")

    # raised again by the events stage (it fell below half the alert probability and rose again): a new one begins
    held.conflict_starts, held.keys = [], {("zone_enter", 9, "lane")}
    first = Event(40, 4.0, 9, "zone_enter_predicted", "lane", eta_s=3.0, probability=0.6, direction="in")
    again = Event(50, 5.0, 9, "zone_enter_predicted", "lane", eta_s=2.0, probability=0.7, direction="in")
    life.step(40, 4.0, _frame(first), held)
    end, new = life.step(50, 5.0, _frame(again), held)
    assert (end["type"], end["end_reason"], end["alert_id"], new["type"], new["alert_id"]) == \
        ("end", "withdrawn", 6, "new", 7)
    # the run stops: every open alert ends
    [end] = life.finish()
    assert (end["end_reason"], end["alert_id"], life.open) == ("stopped", 7, 0)


def test_the_engine_says_which_alerts_it_holds_and_their_life_cycle_follows():
    """The real EventEngine on constructed walks: one person into a zone, two walkers head-on (a conflict)."""
    import numpy as np

    from pipeline.core.config import EventsConfig, ZoneConfig
    from pipeline.core.types import Forecasts, Tracks
    from pipeline.events.engine import EventEngine

    cfg = EventsConfig(zones=[ZoneConfig("lane", [[0, 200], [640, 200], [640, 260], [0, 260]])],
                       conflict_pairs=["all"], samples=1, recalibrate=False)
    engine = EventEngine(cfg, (640, 480), 2.0, {0: "person"})
    life, seen, messages = AlertLifecycle(), [], []
    start = np.array([[100.0, 100.0], [300.0, 400.0], [500.0, 400.0]])  # foot points of tracks 1, 2, 3
    vel = np.array([[0.0, 50.0], [60.0, 0.0], [-60.0, 0.0]])  # pixels per second
    horizon = np.array([0.4, 0.8, 1.2, 1.6, 2.0])
    for k in range(30):  # 10 fps
        t = k / 10
        feet = start + vel * t
        boxes = np.column_stack([feet[:, 0] - 10, feet[:, 1] - 50, feet[:, 0] + 10, feet[:, 1]])
        tracks = Tracks(boxes, np.ones(3), np.zeros(3), [1, 2, 3])
        future = feet[:, None] + vel[:, None] * horizon[None, :, None] - [0.0, 25.0]  # box centres
        ev = engine.update(k, t, tracks, Forecasts([1, 2, 3], horizon, future))
        seen.append((engine.open_alerts(), list(engine.conflict_starts)))
        messages += life.step(k, t, ev, engine)
    raised = [i for i, (held, _) in enumerate(seen) if ("zone_enter", 1, "lane") in held]
    assert raised and ("conflict", 2, 3) in seen[raised[0]][0]  # both raised at once, held until their event
    assert any((2, 3) in starts for _, starts in seen)
    kinds = [(m["event"], m.get("type"), m.get("end_reason")) for m in messages]
    assert kinds.count(("zone_enter_predicted", "new", None)) == 1 and kinds.count(("conflict_predicted", "new", None)) == 1
    assert ("zone_enter_predicted", "end", "came_true") in kinds and ("conflict_predicted", "end", "came_true") in kinds
    assert kinds.index(("zone_enter", None, None)) + 1 == kinds.index(("zone_enter_predicted", "end", "came_true"))
    assert life.open == 0


# ---- through the broker ----

def test_events_arrive_in_order_as_the_events_csv_json(broker):
    sub = Subscriber(broker.port, "trajpred/+/events")
    events = _real(40)
    with MqttPublisher.for_source(f"127.0.0.1:{broker.port}", None, "rtsp://u:secret@gate.local/cam", FAST) as pub:
        for k in range(0, 40, 5):
            pub.publish(k, k / 10, _frame(*events[k:k + 5]))
    got = sub.wait_for(40)
    sub.close()
    assert sub.topics == {"trajpred/gate.local_cam/events"}
    assert got == [_payload(e, "gate.local_cam", i + 1) for i, e in enumerate(events)]
    assert list(got[0])[:len(EVENT_COLUMNS)] == EVENT_COLUMNS and got[3]["other_id"] == 9 and got[0]["eta_s"] is None
    assert pub.report == f"mqtt: 40 messages to 127.0.0.1:{broker.port} topic trajpred/gate.local_cam/events, " \
                         "all delivered"


def test_nothing_is_lost_across_a_broker_restart(broker):
    sub = Subscriber(broker.port, "site/gate")
    events = _real(600)
    pub = MqttPublisher(MqttTarget("127.0.0.1", broker.port), "site/gate", "gate", FAST)
    on_connect = pub._client.on_connect  # widened: paho resends what was in flight only after on_connect returns,
    pub._client.on_connect = lambda *a: (on_connect(*a), time.sleep(0.2))  # and nothing new may overtake it
    pub.send(e.as_dict() for e in events[:100])
    sub.wait_for(100)
    # a clean restart: the broker takes what was sent, saves its sessions and goes
    pub.send(e.as_dict() for e in events[100:200])
    broker.stop()
    pub.send(e.as_dict() for e in events[200:300])  # while it is down
    broker.start()
    pub.send(e.as_dict() for e in events[300:400])  # while the publisher reconnects
    sub.wait_for(400)
    # a crash with messages in flight: they were never acknowledged, so they are resent first, then the rest
    broker.freeze()
    pub.send(e.as_dict() for e in events[400:500])
    broker.crash()
    pub.send(e.as_dict() for e in events[500:550])
    broker.start()  # the subscriber's session is in the file its clean stop saved
    pub.send(e.as_dict() for e in events[550:])
    got = sub.wait_for(600)
    pub.close()
    sub.close()
    assert [m["seq"] for m in got] == list(range(1, 601))  # every one, exactly in order (duplicates dropped)
    assert got == [_payload(e, "gate", i + 1) for i, e in enumerate(events)]
    assert pub.delivered == 600 and pub.pending == 0 and "all delivered" in pub.report


def test_publishing_without_a_broker_never_waits_and_the_outbox_stays_bounded(capsys):
    port = _free_port()  # nothing listens there
    settings = MqttSettings(outbox=100, reconnect_min_s=0.1, reconnect_max_s=0.2, flush_s=0.2)
    pub = MqttPublisher(parse_target(f"alice:hunter2@127.0.0.1:{port}"), "site/gate", "gate", settings)
    held = []
    for i in range(1000):
        pub.publish(i, i / 10, _frame(Event(i, i / 10, 1, "zone_enter", "lane", direction="in")))
        held.append(pub.pending)
    assert max(held) == 100 and pub.seq == 1000 and pub.dropped == 900 and pub.delivered == 0
    err, deadline = "", time.monotonic() + WAIT_S  # paho's thread has tried (and failed) to connect
    while "cannot reach" not in err and time.monotonic() < deadline:
        err += capsys.readouterr().err
        time.sleep(0.05)
    line = pub.close()
    assert line == (f"mqtt: 1000 messages to 127.0.0.1:{port} topic site/gate; 100 not delivered (not acknowledged "
                    "within 0.2 s); 900 dropped from the full outbox (100 messages)")
    err += capsys.readouterr().err
    assert f"mqtt: cannot reach the broker at 127.0.0.1:{port}" in err and "hunter2" not in err + line
    pub.publish(1, 0.1, _frame(_real(1)[0]))  # after close: ignored, never raises
    assert pub.seq == 1000


@pytest.mark.slow
def test_live_run_publishes_every_events_csv_row_and_closes_every_alert(broker, stream, tmp_path):  # noqa: F811
    s = stream(CROSSWALK)
    sub = Subscriber(broker.port, "trajpred/#")
    out = tmp_path / "live"
    p = _live("--source", s.url, "--no-show", "--save", "--zones", str(ZONES), "--out", str(out),
              "--max-seconds", "12", "--mqtt", f"127.0.0.1:{broker.port}")
    stdout, stderr = _finish(p, 180)
    assert p.returncode == 0, stderr
    import csv

    with (out / "events.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, "no events in the run: the crossing video always has people entering the lane"
    topic = f"trajpred/127.0.0.1_{s.port}_video.mjpg/events"
    line = next(ln for ln in stdout.splitlines() if ln.startswith("mqtt: "))
    sent = int(line.split()[1])
    assert line == f"mqtt: {sent} messages to 127.0.0.1:{broker.port} topic {topic}, all delivered"
    got = sub.wait_for(sent)
    sub.close()
    assert sub.topics == {topic} and [m["seq"] for m in got] == list(range(1, sent + 1))
    # the events.csv rows are the real events and the `new` messages, in the same order and with the same values
    as_rows = [{k: ("" if m[k] is None else str(m[k])) for k in EVENT_COLUMNS} for m in got if m.get("type") in (None, "new")]
    assert as_rows == [{k: (str(float(v)) if v and "." in v else v) for k, v in r.items()} for r in rows]
    # every alert raised ends once, after its new (and its updates)
    life: dict[int, list[str]] = {}
    for m in got:
        if "type" in m:
            assert m["event"].endswith("_predicted")
            life.setdefault(m["alert_id"], []).append(m["type"])
    assert life and all(t[0] == "new" and t[-1] == "end" and t.count("end") == 1 and set(t[1:-1]) <= {"update"}
                        for t in life.values())
    ends = {m["end_reason"] for m in got if m.get("type") == "end"}
    assert ends <= set(END_REASONS) and all(m["camera"] == topic.split("/")[1] for m in got)
    print(f"\nmqtt: {sent} messages, {len(rows)} events.csv rows, {len(life)} alerts, ends {sorted(ends)}")
