"""Events to other programs over MQTT (`live --mqtt HOST[:PORT]`): one JSON message per event, QoS 1.

Why MQTT: home-automation and alarm systems (Home Assistant, Node-RED, Frigate's consumers) already listen to a
broker, and QoS 1 with a reconnecting client is the usual way to hand them events that must not be lost.

Why an own outbox in front of paho: the pipeline thread only appends to a bounded deque (never a network call,
never a lock the network thread holds while it waits), and a sender thread hands paho at most `window`
messages awaiting their PUBACK. After a reconnect, new messages wait until paho has resent (and the broker
acknowledged) those that were in flight, so the broker receives them exactly in order; paho's own queue
(max_queued_messages) would send a message published while it reconnects ahead of those it still has to resend,
and refuses the newest when full where the outbox drops the oldest.

Predicted alerts carry a life cycle like Frigate's frigate/events: `new` when raised, `update` when their
expected time or probability moved by more than set amounts, `end` when they came true, were withdrawn, expired
or the run stopped. The events stage says which alerts it still holds (`AlertSource`); everything else is
derived here from what each frame shows.
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Protocol

import paho.mqtt.client as paho

from pipeline.core.errors import UserError
from pipeline.events.scoring import key_of
from pipeline.events.types import PREDICTED, Event, EventFrame

QOS = 1  # at least once: the broker acknowledges each message, unacknowledged ones are resent
DEFAULT_PORT = 1883
END_REASONS = ("came_true", "withdrawn", "expired", "stopped")
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?")


@dataclass(frozen=True)
class MqttTarget:
    """A broker address; the credentials are used to log in and never shown (`str()` is host:port)."""

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_target(value: str) -> MqttTarget:
    """`--mqtt` as HOST, HOST:PORT, [IPV6]:PORT, USER:PASSWORD@HOST:PORT or mqtt://...; a malformed value is a
    one-line UserError that never repeats the credentials."""
    rest = value.strip()
    scheme, sep, after = rest.partition("://")
    if sep:
        rest = after
    userinfo, at, hostport = rest.rstrip("/").rpartition("@")
    shown = ("***@" if at else "") + hostport  # what error messages may show
    usage = "give HOST[:PORT], e.g. --mqtt 127.0.0.1:1883 (a user name and password go before the host, then '@')"
    if sep and scheme.lower() not in ("mqtt", "tcp"):
        raise UserError(f"--mqtt {shown}: only plain MQTT (mqtt://) is supported, not {scheme}://; {usage}")
    user, has_password, password = userinfo.partition(":")
    if at and not user:
        raise UserError(f"--mqtt {shown}: no user name before '@'; {usage}")
    if hostport.startswith("["):  # [IPv6]:PORT
        host, closed, tail = hostport[1:].partition("]")
        ok = bool(closed) and re.fullmatch(r"[0-9A-Fa-f:.]+", host) is not None and tail[:1] in ("", ":")
        has_port, port_text = tail.startswith(":"), tail[1:]
    else:
        host, colon, port_text = hostport.partition(":")
        ok, has_port = _HOST.fullmatch(host) is not None, bool(colon)
    if not ok:
        raise UserError(f"--mqtt {shown}: '{host or hostport}' is not a host name or address; {usage}")
    if has_port and not (port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise UserError(f"--mqtt {shown}: the port must be a number from 1 to 65535; {usage}")
    return MqttTarget(host, int(port_text) if has_port else DEFAULT_PORT, user if at else None,
                      password if at and has_password else None)


def camera_name(source: int | str) -> str:
    """A topic-safe name for a source: camera0, cam.local_554_stream1 for rtsp://user:pass@cam.local:554/stream1,
    street for street.mp4. Never its credentials or query (tokens live there), never + # / (MQTT syntax)."""
    if isinstance(source, int):
        return f"camera{source}"
    s = str(source).strip()
    if "://" in s:
        rest = s.split("://", 1)[1]
        at = rest.rfind("@")  # whatever stands before the last '@' may be credentials
        if re.search(r"[?#]", rest[:max(at, 0)]):  # an '@' in the query, or a password with ? or #: cannot tell
            return "camera"
        raw = re.split(r"[?#]", rest[at + 1:], maxsplit=1)[0].replace(":", "_").replace("/", "_")
    else:
        raw = Path(s).stem or s
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_.-")[:64]
    return name or "camera"


def default_topic(camera: str) -> str:
    return f"trajpred/{camera}/events"


def topic_for(template: str | None, camera: str) -> str:
    """--mqtt-topic with `{camera}` replaced by the camera's name (a topic without it is the same for every
    camera: the payloads say which); none given: trajpred/<camera>/events."""
    return template.replace("{camera}", camera) if template else default_topic(camera)


def check_topic(topic: str) -> str:
    """A topic we may publish to: not empty, no wildcards, not a broker's own $ topic."""
    if not topic or any(c in topic for c in "+#\0") or topic.startswith("$") or len(topic.encode()) > 65535:
        raise UserError(f"--mqtt-topic {topic!r} cannot be published to: give a topic without + and # that does not "
                        "start with $, e.g. trajpred/gate/events")
    return topic


def check_options(mqtt: str | None, topic: str | None) -> None:
    """The `live` flags, checked before any model loads (fail fast)."""
    if topic is not None and not mqtt:
        raise UserError("--mqtt-topic needs --mqtt HOST[:PORT] (the broker to publish to)")
    if mqtt:
        parse_target(mqtt)
    if topic is not None:
        check_topic(topic)


@dataclass(frozen=True)
class MqttSettings:
    """How messages reach the broker."""

    outbox: int = 10_000  # messages kept while the broker is away (a few MB); beyond it the oldest go, counted
    window: int = 32  # messages handed to paho awaiting their PUBACK (in order; resent after a reconnect)
    reconnect_min_s: float = 0.5  # paho's reconnect backoff: first wait, doubling up to ...
    reconnect_max_s: float = 10.0  # ... this
    connect_timeout_s: float = 3.0  # one TCP connect attempt (in paho's thread, never the pipeline's)
    keepalive_s: int = 30  # a silently dead broker is noticed after 1.5 times this
    flush_s: float = 3.0  # on close, wait at most this for the broker to acknowledge what is left

    def __post_init__(self) -> None:
        if self.outbox < 1 or not 1 <= self.window <= 1000:
            raise UserError("mqtt: outbox must be >= 1 and window 1..1000")


@dataclass(frozen=True)
class LifecycleSettings:
    """When a predicted alert gets an `update` or an `end` (README: "Send events to other programs")."""

    eta_change_s: float = 0.5  # update: the expected time of the event moved more than this since the last message
    probability_change: float = 0.1  # ... or its probability changed more than this
    expire_margin_s: float = 1.0  # end (expired): this long after the expected time and nothing came of it
    # end (withdrawn): this long after the events stage let the alert go without its event. Not at once: the
    # forecast stops predicting an entry as soon as the foot point is across, but the real event counts only
    # once it is past the hysteresis margin, a moment later; an alert let go after its expected time expired
    withdraw_after_s: float = 1.0


class AlertSource(Protocol):
    """What the events stage says about its alerts after each frame (EventEngine provides both)."""

    conflict_starts: list[tuple[int, int]]  # pairs whose real conflict began at this frame: their alert came true

    def open_alerts(self) -> set[tuple]:
        """Scoring keys (pipeline.events.scoring.key_of) of the alerts still held: raised, not yet happened,
        withdrawn or past their horizon."""
        ...


@dataclass
class _Open:
    """One raised alert: as raised, its id, what the last message said and what is known now."""

    event: Event
    alert_id: int
    said_at: float  # expected time of the event (time_s + eta_s) in the last message
    said_p: float | None
    expected: float  # latest expected time of the event (said or not)
    probability: float | None
    distance: float | None
    let_go: float | None = None  # when the events stage stopped holding it


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


class AlertLifecycle:
    """Turns each frame's events into message payloads: real events as they are, predicted alerts with `type`
    new / update / end (and `alert_id`, the same for all messages of one alert; `end_reason` on end)."""

    def __init__(self, settings: LifecycleSettings = LifecycleSettings()) -> None:
        self.settings = settings
        self._open: dict[tuple, _Open] = {}
        self._ids = 0
        self._last = (0, 0.0)  # frame, time of the last step

    @property
    def open(self) -> int:
        return len(self._open)

    def step(self, frame: int, t: float, ev: EventFrame, source: AlertSource | None = None) -> list[dict[str, object]]:
        """Payloads for one frame, in events.csv order, then the updates and ends it brought. Without a `source`
        alerts end only when they came true or expired."""
        self._last = (frame, t)
        out: list[dict[str, object]] = []
        for e in ev.events:
            key = key_of(e)
            if e.event in PREDICTED:
                if key in self._open:  # raised again: the events stage let the old one go (or pass its horizon)
                    out.append(self._end(key, frame, t, "expired" if t >= self._open[key].expected else "withdrawn"))
                self._ids += 1
                self._open[key] = _Open(e, self._ids, e.time_s + (e.eta_s or 0.0), e.probability,
                                        e.time_s + (e.eta_s or 0.0), e.probability, e.distance)
                out.append(e.as_dict() | {"type": "new", "alert_id": self._ids})
                continue
            out.append(e.as_dict())
            if key in self._open:
                out.append(self._end(key, frame, t, "came_true"))
        began = {("conflict", min(a, b), max(a, b)) for a, b in (source.conflict_starts if source else ())}
        held = source.open_alerts() if source is not None else set(self._open)
        now: dict[tuple, tuple[float, float | None, float | None]] = {
            (a.track_id, a.name): (a.eta_s, a.probability, None) for a in ev.overlay.alerts}
        now.update({(min(m.a, m.b), max(m.a, m.b)): (m.ttc_s, None, m.distance) for m in ev.overlay.conflicts})
        for key in list(self._open):
            st = self._open[key]
            if key in began:
                out.append(self._end(key, frame, t, "came_true"))
                continue
            if key not in held and st.let_go is None:
                st.let_go = t
            if st.let_go is not None and t - st.let_go >= self.settings.withdraw_after_s:
                out.append(self._end(key, frame, t, "expired" if st.let_go >= st.expected else "withdrawn"))
            elif t > st.expected + self.settings.expire_margin_s:
                out.append(self._end(key, frame, t, "expired"))
            elif st.let_go is not None:
                continue
            elif key[1:] in now and _finite(now[key[1:]][0]):
                upd = self._update(st, frame, t, *now[key[1:]])
                if upd is not None:
                    out.append(upd)
        return out

    def finish(self) -> list[dict[str, object]]:
        """`end` (stopped) for every alert still open when the run stops, so consumers can close them."""
        frame, t = self._last
        return [self._end(key, frame, t, "stopped") for key in list(self._open)]

    def _update(self, st: _Open, frame: int, t: float, eta: float, p: float | None,
                distance: float | None) -> dict[str, object] | None:
        st.expected = t + eta
        st.probability = p if _finite(p) else st.probability
        st.distance = distance if _finite(distance) else st.distance
        s = self.settings
        moved = abs(st.expected - st.said_at) > s.eta_change_s
        changed = p is not None and st.said_p is not None and abs(p - st.said_p) > s.probability_change
        if not (moved or changed):
            return None
        st.said_at, st.said_p = st.expected, st.probability
        return self._message(st, frame, t, "update")

    def _end(self, key: tuple, frame: int, t: float, reason: str) -> dict[str, object]:
        return self._message(self._open.pop(key), frame, t, "end") | {"end_reason": reason}

    @staticmethod
    def _message(st: _Open, frame: int, t: float, kind: str) -> dict[str, object]:
        """The alert as of now: eta_s counts from this message's time_s (negative once the expected time passed)."""
        e = replace(st.event, frame=frame, time_s=t, eta_s=st.expected - t, probability=st.probability,
                    distance=st.distance)
        return e.as_dict() | {"type": kind, "alert_id": st.alert_id}


class MqttPublisher:
    """Publishes event payloads to one topic, QoS 1, in order, without ever blocking the caller.

    `publish` (pipeline thread) only appends to the bounded outbox; a sender thread hands paho up to `window`
    messages awaiting their PUBACK; paho's own thread connects and reconnects with backoff. `close` flushes for
    at most `flush_s` and says how many messages were not delivered.
    """

    def __init__(self, target: MqttTarget, topic: str, camera: str, settings: MqttSettings = MqttSettings(),
                 lifecycle: LifecycleSettings = LifecycleSettings()) -> None:
        self.target, self.topic, self.camera, self.settings = target, check_topic(topic), camera, settings
        self.lifecycle = AlertLifecycle(lifecycle)
        self.seq = 0  # messages given to the outbox (each carries its number as `seq`: consumers drop duplicates)
        self.dropped = 0  # oldest messages pushed out of the full outbox
        self.delivered = 0  # acknowledged by the broker
        self.report = ""  # the closing line (after close)
        self._outbox: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._inflight = 0  # handed to paho, not yet acknowledged
        self._connected = False
        self._resending = False  # reconnected with messages in flight: paho resends them before anything new
        self._closing = self._stopped = False
        self._down_said = False  # the outage note is printed once per outage
        self._ever_connected = False
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if target.username is not None:
            c.username_pw_set(target.username, target.password)
        c.max_inflight_messages_set(settings.window)
        c.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)  # type: ignore[arg-type]  # floats work
        c.connect_timeout = settings.connect_timeout_s
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_connect_fail, c.on_publish = self._on_connect_fail, self._on_publish
        self._client = c
        c.connect_async(target.host, target.port, settings.keepalive_s)
        c.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()

    @classmethod
    def for_source(cls, mqtt: str, topic: str | None, source: int | str,
                   settings: MqttSettings = MqttSettings(), camera: str | None = None) -> MqttPublisher:
        """The publisher `live --mqtt` uses: topic trajpred/<camera>/events unless given (camera: named after the
        source unless named)."""
        camera = camera or camera_name(source)
        return cls(parse_target(mqtt), topic_for(topic, camera), camera, settings)

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker (outbox + in flight)."""
        with self._cond:
            return len(self._outbox) + self._inflight

    def publish(self, frame: int, t: float, ev: EventFrame, alerts: AlertSource | None = None) -> None:
        """One frame's events (and the life-cycle messages it brings); returns at once."""
        self.send(self.lifecycle.step(frame, t, ev, alerts))

    def send(self, payloads: Iterable[dict[str, object]]) -> None:
        """Queue payloads (each gets `camera` and `seq`); the oldest are dropped, and counted, when the outbox is full."""
        with self._cond:
            if self._closing:
                return
            for p in payloads:
                self.seq += 1
                self._outbox.append(json.dumps(p | {"camera": self.camera, "seq": self.seq}).encode())
                if len(self._outbox) > self.settings.outbox:
                    self._outbox.popleft()
                    self.dropped += 1
            self._cond.notify_all()

    def close(self) -> str:
        """End the open alerts (stopped), wait at most `flush_s` for the broker to acknowledge everything, stop;
        returns (and keeps in `report`) one line saying what was delivered."""
        if self._stopped:
            return self.report
        self.send(self.lifecycle.finish())
        deadline = time.monotonic() + self.settings.flush_s
        with self._cond:
            self._closing = True
            while (self._outbox or self._inflight) and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            lost = len(self._outbox) + self._inflight
            self._stopped = True
            self._cond.notify_all()
        self._client.disconnect()
        self._client.loop_stop()
        self._sender.join(timeout=5)
        line = f"mqtt: {self.seq} messages to {self.target} topic {self.topic}"
        line += f"; {lost} not delivered (not acknowledged within {self.settings.flush_s:g} s)" if lost else \
            ", all delivered" if self.seq else ""
        if self.dropped:
            line += f"; {self.dropped} dropped from the full outbox ({self.settings.outbox} messages)"
        self.report = line
        return line

    # -- the sender thread and paho's callbacks (paho's network thread) --

    def _send_loop(self) -> None:
        """Hand paho the oldest messages while connected and the window has room; after a reconnect, only once
        the messages in flight before it were resent and acknowledged (so the order holds)."""
        while True:
            with self._cond:
                while not self._stopped and not (self._connected and not self._resending and self._outbox
                                                 and self._inflight < self.settings.window):
                    self._cond.wait()
                if self._stopped:
                    return
                body = self._outbox.popleft()
                self._inflight += 1
            try:  # outside our lock: paho's may be held by its network thread, which calls into us
                self._client.publish(self.topic, body, qos=QOS)
            except (ValueError, TypeError) as exc:  # cannot happen with a checked topic: counted, never raised
                with self._cond:
                    self._inflight -= 1
                    self.dropped += 1
                self._note(f"mqtt: paho refused a message ({exc})")

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: paho.ReasonCode,
                    properties: object) -> None:
        if reason.is_failure:
            self._note(f"mqtt: the broker at {self.target} refused the connection ({reason}); retrying")
            return
        with self._cond:
            self._connected, self._down_said = True, False
            self._cond.notify_all()
        if self._ever_connected:
            self._note(f"mqtt: reconnected to {self.target}")
        self._ever_connected = True

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object, reason: paho.ReasonCode,
                       properties: object) -> None:
        with self._cond:
            self._connected = False
            self._resending = self._inflight > 0
            closing = self._closing
        if not closing:
            self._outage(f"lost the broker at {self.target}")

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        self._outage(f"cannot reach the broker at {self.target}")

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, reason: paho.ReasonCode,
                    properties: object) -> None:
        with self._cond:
            self._inflight -= 1
            self.delivered += 1
            if self._inflight == 0:
                self._resending = False
            self._cond.notify_all()

    def _outage(self, what: str) -> None:
        if not self._down_said and not self._closing:
            self._down_said = True
            self._note(f"mqtt: {what}; reconnecting, events are kept (up to {self.settings.outbox} messages)")

    @staticmethod
    def _note(line: str) -> None:
        print(line, file=sys.stderr, flush=True)
