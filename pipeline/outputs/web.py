"""`live --serve`: the annotated stream, the events and the status figures in a browser.

The pipeline thread must never wait for a browser: it only drops the newest JPEG and the new events into
small bounded per-client queues (the oldest item goes, and is counted, when a client falls behind) and
returns. A uvicorn server (starlette app) runs in a background thread with its own event loop and drains
those queues at whatever pace each connection takes.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol

import cv2
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.core.errors import UserError
from pipeline.events.types import Event

DEFAULT_HOST = "127.0.0.1"
FRAME_QUEUE = 2  # JPEGs waiting per stream client: one that falls behind skips to the newest
EVENT_QUEUE = 256  # events waiting per page (the oldest dropped, and counted, beyond that)
EVENT_HISTORY = 50  # the latest events a page gets when it connects
JPEG_QUALITY = 80
KEEPALIVE_S = 15.0  # an SSE comment this often: proxies keep the connection, a gone client is noticed
START_TIMEOUT_S = 10.0
STOP_GRACE_S = 1.0  # a client that has not taken the end of its stream by then never reads: cut it off
STOP_TIMEOUT_S = 10.0
BOUNDARY = b"frame"


def encode_jpeg(image: np.ndarray) -> bytes:
    """A frame as the JPEG the stream sends (done once per frame, whoever watches)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding of a {image.shape} frame failed")
    return buf.tobytes()


class FrameSink(Protocol):
    """Where a live session sends its frames, events and figures: its own LiveServer, or (one camera of many)
    a forwarder to the process that serves them all."""

    @property
    def streaming(self) -> bool: ...
    @property
    def url(self) -> str: ...
    def publish_frame(self, camera: str, image: np.ndarray) -> None: ...
    def publish_events(self, camera: str, events: Iterable[Event]) -> None: ...
    def set_status(self, camera: str, status: Mapping[str, Any]) -> None: ...
    def __enter__(self) -> FrameSink: ...
    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None: ...


def parse_serve(spec: str) -> tuple[str, int]:
    """`[HOST:]PORT` (IPv6 as `[::1]:PORT`) -> (host, port); the host defaults to loopback."""
    host, sep, port = spec.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or int(port) > 65535 or (sep and not host) or (":" in host and not spec.startswith("[")):
        raise UserError(f"--serve {spec!r}: give PORT or HOST:PORT, e.g. 8000 or 0.0.0.0:8000 ([::1]:8000 for IPv6)")
    return host or DEFAULT_HOST, int(port)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (a name other than localhost counts as reachable)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Client:
    """One open stream or event connection: a bounded queue the pipeline thread fills and the server loop drains."""

    def __init__(self, maxlen: int, camera: str | None = None) -> None:
        self.camera = camera  # stream clients: the camera asked for (None: the first one published)
        self.items: deque[bytes] = deque(maxlen=maxlen)
        self.dropped = 0
        self.closed = False
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()  # created on the server's loop
        self._wake = asyncio.Event()

    def put(self, item: bytes) -> None:
        """Any thread; never blocks (a full queue loses its oldest item)."""
        with self._lock:
            if len(self.items) == self.items.maxlen:
                self.dropped += 1
            self.items.append(item)
        self._loop.call_soon_threadsafe(self._wake.set)

    def close(self) -> None:
        """Any thread: the connection ends after what is queued."""
        self.closed = True
        self._loop.call_soon_threadsafe(self._wake.set)

    async def get(self, timeout: float | None = None) -> bytes | None:
        """The oldest queued item; None once closed; TimeoutError after `timeout` s without one."""
        while True:
            self._wake.clear()
            with self._lock:
                if self.items:
                    return self.items.popleft()
            if self.closed:
                return None
            await asyncio.wait_for(self._wake.wait(), timeout)


class _TokenGate:
    """ASGI middleware: with a token, every request needs `?token=` or `Authorization: Bearer`, else 401."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    def _allowed(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = request.query_params.get("token", "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(Request(scope)):
            deny = PlainTextResponse("401: this server needs its token (?token=... or Authorization: Bearer ...)\n",
                                     401, headers={"WWW-Authenticate": "Bearer"})
            await deny(scope, receive, send)
            return
        await self.app(scope, receive, send)


class LiveServer:
    """The web page, MJPEG stream, SSE events and status JSON of a live run; a context manager around uvicorn.

    `publish_frame`, `publish_events` and `set_status` are called from the pipeline thread and never block.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = 8000, token: str | None = None) -> None:
        if token is not None and not token.strip():
            raise UserError("--serve-token is empty; give a secret string (e.g. from `openssl rand -hex 16`)")
        if token is None and not is_loopback(host):
            raise UserError(f"--serve {host}:{port} lets other machines watch; add --serve-token TOKEN "
                            "(or serve on 127.0.0.1)")
        self.host, self.port, self.token = host, port, token
        self.started = time.monotonic()
        self._lock = threading.Lock()  # the client sets, cameras and totals: shared by both threads
        self._streams: set[_Client] = set()
        self._pages: set[_Client] = set()
        self._cameras: list[str] = []  # in the order first seen: the first is the stream's default
        self._status: dict[str, dict[str, Any]] = {}
        self._history: deque[tuple[int, bytes]] = deque(maxlen=EVENT_HISTORY)
        self._event_id = 0
        self._dropped = {"frames": 0, "events": 0}  # of clients already gone
        self._frames_encoded = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    @classmethod
    def from_spec(cls, spec: str, token: str | None = None) -> LiveServer:
        """From `--serve [HOST:]PORT` and `--serve-token`."""
        return cls(*parse_serve(spec), token)

    @property
    def url(self) -> str:
        """The page's address, without the token (what may be printed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def streaming(self) -> bool:
        """Whether any browser is watching the stream (else there is nothing to draw or encode for it)."""
        return bool(self._streams)

    # --- pipeline side (never blocks) ---

    def _note_camera(self, camera: str) -> None:
        if camera not in self._cameras:
            with self._lock:
                if camera not in self._cameras:
                    self._cameras.append(camera)

    def _watchers(self, camera: str) -> list[_Client]:
        default = self._cameras[0] if self._cameras else camera  # a stream without ?camera= shows the first one
        with self._lock:
            return [c for c in self._streams if (c.camera or default) == camera]

    def watching(self, camera: str) -> bool:
        """Whether a browser watches `camera` (else its frames need not be drawn nor encoded)."""
        return bool(self._watchers(camera))

    def add_camera(self, camera: str) -> None:
        """Make `camera` known before its first frame: listed, and its ?camera= stream accepted."""
        self._note_camera(camera)

    def publish_frame(self, camera: str, image: np.ndarray) -> None:
        """The newest annotated frame of `camera`: JPEG-encoded once, only when someone watches that camera."""
        self._raise_error()
        self._note_camera(camera)
        if self.watching(camera):
            self.publish_jpeg(camera, encode_jpeg(image))

    def publish_jpeg(self, camera: str, jpg: bytes) -> None:
        """A frame already JPEG-encoded (by a camera in another process) to whoever watches `camera`."""
        self._raise_error()
        self._note_camera(camera)
        targets = self._watchers(camera)
        if not targets:
            return
        part = b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n--%s\r\n" % (len(jpg), jpg, BOUNDARY)
        self._frames_encoded += 1
        for c in targets:
            c.put(part)

    def publish_events(self, camera: str, events: Iterable[Event]) -> None:
        """Events as events.csv's fields plus `camera`, to every open page (and the short history for new ones)."""
        self._note_camera(camera)
        for e in events:
            with self._lock:
                self._event_id += 1
                msg = b"id: %d\ndata: %s\n\n" % (self._event_id, json.dumps({**e.as_dict(), "camera": camera}).encode())
                self._history.append((self._event_id, msg))
                targets = list(self._pages)
            for c in targets:
                c.put(msg)

    def set_status(self, camera: str, status: Mapping[str, Any]) -> None:
        """The figures /api/status shows for `camera` (fps, latency_s, tracks, dropped, reconnects, uptime_s...)."""
        self._raise_error()
        self._note_camera(camera)
        self._status[camera] = dict(status)

    def stats(self) -> dict[str, Any]:
        """The server's own figures: clients connected, items dropped for slow clients, frames encoded."""
        with self._lock:
            return {"stream_clients": len(self._streams), "event_clients": len(self._pages),
                    "frames_dropped": self._dropped["frames"] + sum(c.dropped for c in self._streams),
                    "events_dropped": self._dropped["events"] + sum(c.dropped for c in self._pages),
                    "frames_encoded": self._frames_encoded, "uptime_s": round(time.monotonic() - self.started, 3)}

    # --- server side (on the server's event loop) ---

    def _join(self, clients: set[_Client], client: _Client) -> None:
        with self._lock:
            clients.add(client)
        if self._closing:  # connected while the server stops: end it at once
            client.close()

    def _leave(self, clients: set[_Client], client: _Client, kind: str) -> None:
        with self._lock:
            if client in clients:
                clients.discard(client)
                self._dropped[kind] += client.dropped

    async def _page(self, request: Request) -> Response:
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    async def _status_json(self, request: Request) -> Response:
        return JSONResponse({"cameras": dict(self._status), "server": self.stats()},
                            headers={"Cache-Control": "no-store"})

    async def _stream(self, request: Request) -> Response:
        camera = request.query_params.get("camera")
        if camera is not None and self._cameras and camera not in self._cameras:
            return PlainTextResponse(f"404: no camera {camera!r}; cameras: {', '.join(self._cameras)}\n", 404)
        client = _Client(FRAME_QUEUE, camera)

        async def parts() -> AsyncIterator[bytes]:
            self._join(self._streams, client)
            try:
                yield b"--%s\r\n" % BOUNDARY
                while (part := await client.get()) is not None:
                    yield part
            finally:
                self._leave(self._streams, client, "frames")

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}",
                                 headers={"Cache-Control": "no-store"})

    async def _events(self, request: Request) -> Response:
        last = request.headers.get("last-event-id", "")
        since = int(last) if last.isdigit() else 0  # a reconnecting page gets only what it missed
        client = _Client(EVENT_QUEUE)

        async def messages() -> AsyncIterator[bytes]:
            with self._lock:  # the history and the joining at once: no event is missed or sent twice
                backlog = [m for i, m in self._history if i > since]
                self._pages.add(client)
            if self._closing:
                client.close()
            try:
                yield b"retry: 2000\n\n" + b"".join(backlog)
                while True:
                    try:
                        msg = await client.get(KEEPALIVE_S)
                    except TimeoutError:
                        msg = b": keep-alive\n\n"
                    if msg is None:
                        return
                    yield msg
            finally:
                self._leave(self._pages, client, "events")

        return StreamingResponse(messages(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def app(self) -> ASGIApp:
        """The ASGI app (token check around the routes)."""
        routes = [Route("/", self._page), Route("/stream.mjpg", self._stream), Route("/events", self._events),
                  Route("/api/status", self._status_json)]
        return _TokenGate(Starlette(routes=routes), self.token)

    # --- lifetime ---

    def _bind(self) -> socket.socket:
        """The listening socket, bound here (in the caller's thread) so a taken port is a plain error now."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart rebinds past TIME_WAIT connections
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            why = "the port is already in use; choose another" if exc.errno == errno.EADDRINUSE else \
                exc.strerror or str(exc)
            raise UserError(f"--serve {self.host}:{self.port}: cannot listen there: {why}") from None
        self.port = sock.getsockname()[1]  # port 0: the one the system chose
        return sock

    async def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[sock])

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # handed to the pipeline thread: raised by publish_frame, set_status and close
            self._error = exc
        finally:
            sock.close()

    async def _cut_stalled(self) -> None:
        """Abort connections still open after the grace: a stalled browser must not hold up the stop."""
        await asyncio.sleep(STOP_GRACE_S)
        assert self._server is not None
        for conn in list(self._server.server_state.connections):
            conn.transport.abort()

    def __enter__(self) -> LiveServer:
        sock = self._bind()
        # access log off: request lines would carry ?token=; errors still reach stderr through logging
        config = uvicorn.Config(self.app(), log_config=None, log_level="warning", access_log=False, lifespan="off",
                                ws="none", timeout_graceful_shutdown=3)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="live-web-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(0.02)
        if not self._server.started:
            err, self._error = self._error, None
            self.close()
            raise RuntimeError(f"web server on {self.url} did not start within {START_TIMEOUT_S:g} s"
                               + (f": {err!r}" if err else "")) from err
        return self

    def _raise_error(self) -> None:
        """What the server thread died of, raised in the pipeline thread (once)."""
        if self._error is not None:
            err, self._error = self._error, None
            raise RuntimeError(f"web server on {self.url} failed: {err!r}") from err

    def close(self) -> None:
        """End every open connection, stop uvicorn and join its thread; raises what the server thread raised."""
        with self._lock:
            self._closing = True
            clients = list(self._streams) + list(self._pages)
        for c in clients:  # the streams end, so uvicorn's graceful shutdown has nothing to wait for
            c.close()
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._cut_stalled(), self._loop)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                raise RuntimeError(f"web server on {self.url} did not stop within {STOP_TIMEOUT_S:g} s")
            self._thread = None
        with self._lock:  # normally empty by now; a closed loop must never be handed anything
            self._streams.clear()
            self._pages.clear()
        self._raise_error()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trajectory forecast (live)</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>
body{margin:0;font:14px system-ui,sans-serif;background:#111;color:#ddd}
header{padding:8px 14px;background:#222;display:flex;gap:16px;align-items:baseline}
h1{font-size:16px;margin:0;color:#fff} #conn{font-size:12px;color:#888}
main{display:flex;gap:14px;padding:14px;align-items:flex-start;flex-wrap:wrap}
#view{flex:1 1 560px;min-width:320px} #view img{width:100%;background:#000;display:block;min-height:120px}
#view.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:8px;align-content:start}
#view figure{margin:0;cursor:pointer} #view figcaption{font-size:12px;color:#aaa;padding:2px 0}
#view>button{margin-top:6px;background:#333;color:#ddd;border:0;padding:4px 10px;cursor:pointer}
aside{flex:0 1 490px;min-width:300px;overflow-x:auto} h2{font-size:13px;text-transform:uppercase;color:#999;margin:14px 0 6px}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{text-align:right;padding:3px 5px;border-bottom:1px solid #333;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
td button{background:none;border:0;color:#8cf;cursor:pointer;padding:0;font:inherit;max-width:11em;
overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom} td button.on{color:#fff;font-weight:bold}
#events{list-style:none;margin:0;padding:0;max-height:60vh;overflow:auto;font:12px ui-monospace,monospace}
#events li{padding:3px 4px;border-bottom:1px solid #2a2a2a;animation:flash 1s ease-out}
@keyframes flash{from{background:#2a4a32}to{background:transparent}}
#counts{margin:0;padding-left:16px;font-size:12px}
</style></head><body>
<header><h1>trajectory forecast (live)</h1><span id="conn">connecting...</span></header>
<main><section id="view"></section>
<aside><h2>cameras</h2><table><thead><tr><th>camera</th><th>fps</th><th>latency</th><th>tracks</th>
<th>dropped</th><th>reconn.</th><th>up</th><th>state</th></tr></thead><tbody id="status"></tbody></table>
<h2>counts</h2><ul id="counts"><li>none yet</li></ul>
<h2>events (newest first)</h2><ul id="events"></ul></aside></main>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token");
let camera = params.get("camera");  // the camera shown alone; null: the only one, or a tile per camera
function url(path, extra) {  // the page's own requests carry its token
  const q = new URLSearchParams(extra || {});
  if (token) q.set("token", token);
  const s = q.toString();
  return s ? path + "?" + s : path;
}
const view = document.getElementById("view");
let shown = null;  // what #view holds now: rebuilt only when that changes
function streamImg(name) {  // an <img> on one camera's MJPEG stream (the server encodes only what is watched)
  const im = document.createElement("img");
  im.alt = "annotated stream" + (name ? " of " + name : "");
  const load = () => { if (!im.dataset.gone) im.src = url("/stream.mjpg", name ? {camera: name} : {}); };
  im.onerror = () => setTimeout(load, 2000);  // the server restarted or the camera is not there yet
  load();
  return im;
}
function render(names) {  // one stream (a camera chosen, or only one camera), else a tile per camera
  const grid = !camera && names.length > 1;
  const key = grid ? "grid:" + names.join("/") : "one:" + (camera || "");
  if (key === shown) return;
  shown = key;
  for (const old of view.querySelectorAll("img")) {  // ends its stream: the server stops encoding what nobody sees
    old.dataset.gone = "1";
    old.removeAttribute("src");
  }
  view.replaceChildren();
  view.className = grid ? "grid" : "";
  if (!grid) {
    const im = streamImg(camera);
    im.id = "stream";
    view.appendChild(im);
    if (names.length > 1) {
      const b = document.createElement("button");
      b.textContent = "all cameras";
      b.onclick = () => { camera = null; render(cameras); };
      view.appendChild(b);
    }
    return;
  }
  for (const name of names) {
    const fig = document.createElement("figure"), cap = document.createElement("figcaption");
    cap.textContent = name;
    fig.title = name + ": show this camera alone";
    fig.onclick = () => { camera = name; render(cameras); };
    fig.append(streamImg(name), cap);
    view.appendChild(fig);
  }
}
function fmt(v, nd) {
  return v === null || v === undefined || Number.isNaN(v) ? "" : typeof v === "number" ? v.toFixed(nd) : String(v);
}
function unit(v, nd, u) { const t = fmt(v, nd); return t ? t + u : ""; }
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); return td; }
const list = document.getElementById("events");
let cameras = [];
render(cameras);
function addEvent(e) {  // one line per event: video time, kind, zone/line, track(s), then what it has
  const li = document.createElement("li");
  const parts = [fmt(e.time_s, 1) + " s", e.event, e.name || "", "#" + e.track_id];
  if (e.other_id !== null) parts.push("& #" + e.other_id);
  if (e.direction) parts.push("(" + e.direction + ")");
  if (e.eta_s !== null) parts.push("eta " + fmt(e.eta_s, 1) + " s");
  if (e.probability !== null) parts.push("p " + fmt(e.probability, 2));
  if (e.distance !== null) parts.push("distance " + fmt(e.distance, 2));
  if (e.dwell_s !== null) parts.push("dwell " + fmt(e.dwell_s, 1) + " s");
  if (cameras.length > 1) parts.push("[" + e.camera + "]");
  li.textContent = parts.filter(Boolean).join("  ");
  list.prepend(li);
  while (list.children.length > 200) list.lastChild.remove();
}
const source = new EventSource(url("/events"));
source.onmessage = (m) => addEvent(JSON.parse(m.data));
source.onopen = () => { document.getElementById("conn").textContent = "connected"; };
source.onerror = () => { document.getElementById("conn").textContent = "reconnecting..."; };
async function poll() {
  try {
    const r = await fetch(url("/api/status"), {cache: "no-store"});
    if (!r.ok) throw new Error(r.status);
    const s = await r.json();
    const body = document.getElementById("status"), counts = document.getElementById("counts");
    body.replaceChildren(); counts.replaceChildren();
    const names = cameras = Object.keys(s.cameras);
    for (const name of names) {
      const c = s.cameras[name], tr = document.createElement("tr");
      const b = document.createElement("button");
      b.textContent = name; b.title = name + ": show this camera";
      b.className = camera === name || (!camera && names.length === 1) ? "on" : "";
      b.onclick = () => { camera = name; render(cameras); };
      cell(tr, "").appendChild(b);
      cell(tr, fmt(c.fps, 1)); cell(tr, unit(c.latency_s === undefined ? null : c.latency_s * 1000, 0, " ms"));
      cell(tr, fmt(c.tracks, 0)); cell(tr, fmt(c.dropped, 0)); cell(tr, fmt(c.reconnects, 0));
      cell(tr, unit(c.uptime_s, 0, " s"));
      const st = cell(tr, c.state ? c.state.split(":")[0] : "");
      st.title = c.state || "";
      body.appendChild(tr);
      for (const line of c.counts || []) {
        const li = document.createElement("li"); li.textContent = (names.length > 1 ? name + ": " : "") + line;
        counts.appendChild(li);
      }
    }
    render(names);
    if (!counts.children.length) { const li = document.createElement("li"); li.textContent = "none"; counts.appendChild(li); }
  } catch (err) {
    document.getElementById("conn").textContent = "status unavailable (" + err.message + ")";
  }
}
poll(); setInterval(poll, 1000);
</script></body></html>
"""
