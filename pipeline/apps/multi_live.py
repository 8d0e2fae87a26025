"""`live --source cameras.yaml`: many cameras at once, each in its own process (a Ray actor), one web page.

Why Ray actors: a camera's detector, tracker and writers are heavy and CPU-bound, so each camera gets a process
of its own (a crash or a lost stream stays in it), and `--address` spreads the cameras over a cluster exactly as
`batch` spreads videos. Each actor runs the ordinary single-camera `LiveSession` (headless) with a `Forwarder`
as its web sink: the session's loop never waits for anyone, it only leaves the newest JPEG (encoded only while
the driver says a browser watches that camera), its events (bounded) and its figures in the forwarder. The driver
(this process) long-polls each actor, one call in flight per camera, and hands what it gets to the one
LiveServer; a slow driver costs skipped frames, never a slower camera.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from pipeline.core.config import TrackRunConfig
from pipeline.core.errors import SourceUnavailableError, UserError
from pipeline.core.redact import mask_credentials
from pipeline.events.types import Event
from pipeline.io.run_dirs import RunDir

if TYPE_CHECKING:
    from pipeline.apps.live_run import LiveOptions, LiveSession
    from pipeline.outputs.web import LiveServer

CAMERA_KEYS = ("name", "source", "zones", "camera", "classes")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a folder name and one MQTT topic level
EVENTS_KEPT = 1000  # events an actor keeps for the driver's next poll (the oldest dropped, and counted, beyond)
POLL_WAIT_S = 0.5  # a poll returns at once when something is new, else after this long
ACTOR_THREADS = 4  # run, a poll and a stop at the same time


class CamerasFailedError(UserError):
    """Every camera of a multi-camera run failed (each one's reason is in the summary)."""

    exit_code = 1


def is_cameras_file(source: str) -> bool:
    """Whether --source names a cameras file rather than one camera (a video is never .yaml)."""
    return source.strip().lower().endswith((".yaml", ".yml"))


@dataclass(frozen=True)
class CameraSpec:
    """One entry of cameras.yaml, its files resolved against the YAML's folder."""

    name: str
    source: int | str
    zones: str | None = None
    camera: str | None = None
    classes: list[str] | None = None  # None: --classes (or the config); []: every class


def _entries(path: Path) -> list[Any]:
    """The `cameras:` list of the file (any problem: one line)."""
    if not path.is_file():
        raise UserError(f"--source {path}: no such cameras file (a .yaml source lists cameras: see the README)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"--source {path} is not a readable YAML file: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"--source {path} must hold `cameras:`, a list of cameras, each with name and source")
    extra = sorted(map(str, set(data) - {"cameras"}))
    if extra:
        raise UserError(f"--source {path}: unknown key(s) {', '.join(extra)}; it holds only `cameras:`, a list of "
                        f"cameras ({', '.join(CAMERA_KEYS)})")
    cams = data.get("cameras")
    if not isinstance(cams, list) or not cams:
        raise UserError(f"--source {path}: `cameras:` must be a non-empty list of cameras, each with name and source")
    return cams


def _file(base: Path, value: Any, what: str, where: str) -> str:
    """A file named in cameras.yaml (relative to it), which must exist."""
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: {what} must be a file path")
    p = (base / Path(value.strip()).expanduser()).resolve()
    if not p.is_file():
        raise UserError(f"{where}: {what} file {p} does not exist")
    return str(p)


def _source(base: Path, value: Any, where: str) -> int | str:
    """A camera index, a stream URL, or a video file (relative to the YAML)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, str) and "://" in value:
        return value.strip()
    if isinstance(value, str) and value.strip():
        return _file(base, value, "source", where)
    raise UserError(f"{where}: source must be a camera index, a stream URL or a video file, got {value!r}")


def _classes(value: Any, where: str) -> list[str] | None:
    names = [c.strip() for c in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(c, str) and c.strip() for c in names):
        raise UserError(f"{where}: classes must be class names, e.g. person,car or [person, car] (all: every class)")
    names = [c.strip() for c in names]
    return [] if names == ["all"] else names


def _spec(base: Path, i: int, entry: Any, where0: str) -> CameraSpec:
    """One camera entry, checked: known keys, a safe name, a source, existing files."""
    if not isinstance(entry, dict):
        raise UserError(f"{where0}: cameras[{i}] must be a mapping with name and source, got {entry!r}")
    name = entry.get("name")
    where = f"{where0}: camera {name!r}" if isinstance(name, str) else f"{where0}: cameras[{i}]"
    unknown = sorted(map(str, set(entry) - set(CAMERA_KEYS)))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(CAMERA_KEYS)}")
    if name is None:
        raise UserError(f"{where}: no name (it names the camera's folder and MQTT topic)")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserError(f"{where}: name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                        "letter or digit (it names a folder and an MQTT topic)")
    if entry.get("source") is None:
        raise UserError(f"{where}: no source (a camera index, a stream URL or a video file)")
    return CameraSpec(name, _source(base, entry["source"], where),
                      _file(base, entry["zones"], "zones", where) if entry.get("zones") is not None else None,
                      _file(base, entry["camera"], "camera", where) if entry.get("camera") is not None else None,
                      _classes(entry["classes"], where) if entry.get("classes") is not None else None)


def read_cameras(path: str) -> list[CameraSpec]:
    """cameras.yaml (`cameras: [{name, source, zones?, camera?, classes?}]`), checked whole before anything starts."""
    p = Path(path).expanduser()
    where = f"--source {path}"
    specs = [_spec(p.resolve().parent, i, e, where) for i, e in enumerate(_entries(p))]
    seen: set[str] = set()
    for s in specs:
        if s.name.lower() in seen:  # folders clash on case-insensitive file systems
            raise UserError(f"{where}: camera name {s.name!r} is used twice; each camera needs its own name")
        seen.add(s.name.lower())
    return specs


@dataclass(frozen=True)
class CameraJob:
    """What one camera's actor runs: a LiveSession of this source, config, folder and options."""

    name: str
    source: int | str
    cfg: TrackRunConfig
    run_dir: RunDir
    opts: LiveOptions


@dataclass
class CameraOutcome:
    """How a camera's run ended, and its own summary lines."""

    name: str
    ok: bool  # False: it could not start, its stream was lost for good, its process died
    reason: str
    lines: list[str] = field(default_factory=list)

    def headline(self) -> str:
        return f"camera {self.name}: {'stopped' if self.ok else 'FAILED'}: {self.reason}"


@dataclass
class Update:
    """What a camera published since the driver's last poll."""

    jpeg: bytes | None = None
    events: list[Event] = field(default_factory=list)
    status: dict[str, Any] | None = None


class Forwarder:
    """The web sink of a camera's session inside its actor: keeps the newest JPEG (encoded only while the driver
    says someone watches), the events (bounded) and the latest figures until the driver polls; never waits."""

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.watching = False  # as the driver said at its last poll
        self.frames_replaced = 0  # JPEGs a newer one replaced before the driver took them
        self.events_dropped = 0
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self._status: dict[str, Any] | None = None

    @property
    def streaming(self) -> bool:
        return self.watching

    @property
    def url(self) -> str:
        return f"the driver's page (camera {self.camera})"

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        with self._cond:
            self._cond.notify_all()

    def publish_frame(self, camera: str, image: np.ndarray) -> None:
        from pipeline.outputs.web import encode_jpeg

        if not self.watching:
            return
        jpg = encode_jpeg(image)
        with self._cond:
            self.frames_replaced += self._jpeg is not None
            self._jpeg = jpg
            self._cond.notify_all()

    def publish_events(self, camera: str, events: Iterable[Event]) -> None:
        new = list(events)
        if new:
            with self._cond:
                self.events_dropped += max(0, len(self._events) + len(new) - EVENTS_KEPT)
                self._events.extend(new)
                self._cond.notify_all()

    def set_status(self, camera: str, status: Mapping[str, Any]) -> None:
        with self._cond:
            self._status = dict(status)
            self._cond.notify_all()

    def take(self, wait_s: float) -> Update:
        """What is new (waiting up to `wait_s` for something), handed over once."""
        with self._cond:
            self._cond.wait_for(lambda: self._jpeg is not None or bool(self._events) or self._status is not None, wait_s)
            upd = Update(self._jpeg, list(self._events), self._status)
            self._jpeg, self._status = None, None
            self._events.clear()
        return upd


def outcome_of(name: str, session: LiveSession) -> CameraOutcome:
    """A finished session's end, as the summary says it."""
    lost = session.end_reason and session.end_reason != "stream ended"
    if lost:
        reason = f"{session.end_reason}; its outputs are complete up to the last frame"
    else:
        reason = session.stopped_by or "stopped by Ctrl-C or SIGTERM"
    return CameraOutcome(name, not lost, reason, session.summary())


class CameraActor:
    """One camera in its own process: a headless LiveSession whose frames, events and figures the driver polls."""

    def __init__(self, job: CameraJob) -> None:
        self.job = job
        self.sink = Forwarder(job.name)
        self.session: LiveSession | None = None
        self.stopping = False
        self._stopped = threading.Event()  # wakes a start that waits to retry its camera

    def run(self) -> CameraOutcome:
        """The camera's whole run; a problem the user can fix (cannot open, full disk) is an outcome, not an error."""
        job = self.job
        try:
            session = self._open()
        except UserError as exc:
            return CameraOutcome(job.name, False, str(exc))
        if session is None:
            return CameraOutcome(job.name, True, "stopped by Ctrl-C or SIGTERM before its camera opened")
        self.session = session
        if self.stopping:  # asked to stop while the model loaded: the files are still finished properly
            session.stop_flag.stop = True
        try:
            session.run()
        except UserError as exc:  # a full disk: the files are whole up to the last frame
            return CameraOutcome(job.name, False, str(exc), session.summary())
        return outcome_of(job.name, session)

    def _open(self, clock: Callable[[], float] = time.monotonic) -> LiveSession | None:
        """The camera's session; a camera that is down at the start (a power cut, a switch rebooting) is retried
        with the backoff of a dropped stream for `live.reconnect_s`, as one that drops later is. None: stopped."""
        from pipeline.apps.live_run import LiveSession

        job, live = self.job, self.job.cfg.live
        deadline, wait = clock() + live.reconnect_s, 0.1
        while True:
            try:
                return LiveSession(job.source, job.run_dir, job.cfg, job.opts, sink=self.sink)
            except SourceUnavailableError as exc:
                if clock() >= deadline:
                    tried = f"; gave up after retrying for {live.reconnect_s:g} s" if live.reconnect_s else ""
                    raise SourceUnavailableError(f"{exc}{tried}") from None
                self.sink.set_status(job.name, {"state": f"retrying: {exc}"})
            if self._stopped.wait(min(wait, max(0.0, deadline - clock()))):
                return None
            wait = min(wait * 2, live.backoff_max_s)

    def poll(self, watching: bool, wait_s: float) -> Update:
        self.sink.watching = watching
        return self.sink.take(wait_s)

    def stop(self) -> None:
        self.stopping = True
        self._stopped.set()
        if self.session is not None:
            self.session.stop_flag.stop = True


@dataclass(frozen=True)
class MultiOptions:
    """The driver's side of the command line."""

    address: str = ""  # a Ray cluster to join ("": start Ray in this process)
    events_jsonl: bool = False


@dataclass
class _Camera:
    """The driver's view of one camera: its actor, the calls in flight, what it last said."""

    job: CameraJob
    actor: Any
    run_ref: Any
    poll_ref: Any = None
    last_poll: bool = False  # the poll in flight was sent after the run ended: its answer is the last
    outcome: CameraOutcome | None = None
    status: dict[str, Any] = field(default_factory=dict)
    closed: bool = False


def _crash_reason(exc: Exception) -> str:
    """A camera whose actor raised or died (a bug or the process killed), in one line."""
    import ray.exceptions as rex

    if isinstance(exc, (rex.RayActorError, rex.WorkerCrashedError, rex.OutOfMemoryError, rex.NodeDiedError)):
        return f"its process died (killed or out of memory): {type(exc).__name__}"
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"internal error {type(cause).__name__}: {text[-1] if text else ''} (please report it)"


class Driver:
    """Starts one actor per camera, relays their frames, events and figures to the page, stops them all on a signal."""

    def __init__(self, jobs: list[CameraJob], opts: MultiOptions, server: LiveServer | None,
                 say: Callable[[str], None]) -> None:
        self.jobs, self.opts, self.server, self.say = jobs, opts, server, say
        self.cams: list[_Camera] = []
        self.stopping = False

    def run(self) -> list[CameraOutcome]:
        import ray

        from pipeline.apps.batch_run import init_ray
        from pipeline.apps.processing import StopFlag

        with ExitStack() as stack:
            if not ray.is_initialized():  # a caller (a test, a notebook) may have started Ray already
                init_ray(self.opts.address, len(self.jobs))
                stack.callback(ray.shutdown)
            # after ray.init, which installs its own SIGTERM handler (it would end the driver, not stop the cameras)
            stop = stack.enter_context(StopFlag().installed())
            if self.server is not None:
                self.say(f"serving {stack.enter_context(self.server).url}")
                for job in self.jobs:
                    self.server.add_camera(job.name)
                    self.server.set_status(job.name, {"state": "starting"})
            actor_cls: Any = ray.remote(CameraActor).options(num_cpus=1, max_concurrency=ACTOR_THREADS, max_restarts=0)
            for job in self.jobs:
                actor = actor_cls.remote(job)
                self.cams.append(_Camera(job, actor, actor.run.remote(), actor.poll.remote(False, POLL_WAIT_S)))
            while not all(c.closed for c in self.cams):
                if stop.stop and not self.stopping:
                    self._stop_all()
                self._step()
        return [c.outcome for c in self.cams if c.outcome is not None]

    def _stop_all(self) -> None:
        """Ctrl-C / SIGTERM: every camera finishes its files and ends (the driver waits for them)."""
        self.stopping = True
        self.say("stopping every camera: finishing their files")
        for c in self.cams:
            if not c.closed:
                c.actor.stop.remote()

    def _step(self) -> None:
        """Handle whatever calls came back within a short wait (polls first, so a camera's last words are kept)."""
        import ray

        refs: dict[Any, tuple[_Camera, str]] = {}
        for c in self.cams:
            if not c.closed:
                if c.outcome is None:
                    refs[c.run_ref] = (c, "run")
                if c.poll_ref is not None:
                    refs[c.poll_ref] = (c, "poll")
        ready, rest = ray.wait(list(refs), num_returns=1, timeout=0.25)
        if ready and rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        for ref in sorted(ready, key=lambda r: refs[r][1] != "poll"):
            c, kind = refs[ref]
            if not c.closed:
                (self._on_poll if kind == "poll" else self._on_run)(c, ref)

    def _on_run(self, c: _Camera, ref: Any) -> None:
        import ray

        try:
            c.outcome = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - this camera is reported, the others go on
            c.outcome = CameraOutcome(c.job.name, False, _crash_reason(exc))
            self._close(c)

    def _on_poll(self, c: _Camera, ref: Any) -> None:
        import ray

        try:
            upd = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - its process died: reported, the others go on
            c.outcome = c.outcome or CameraOutcome(c.job.name, False, _crash_reason(exc))
            self._close(c)
            return
        self._forward(c, upd)
        if c.last_poll:
            self._close(c)
            return
        c.last_poll = c.outcome is not None  # the run ended: one more poll takes what it published last
        watching = self.server is not None and self.server.watching(c.job.name)
        c.poll_ref = c.actor.poll.remote(watching, 0.0 if c.last_poll else POLL_WAIT_S)

    def _forward(self, c: _Camera, upd: Update) -> None:
        """A camera's news to the page (and --events-jsonl); never waits for a browser."""
        name = c.job.name
        if upd.status is not None:
            c.status = upd.status
        if self.opts.events_jsonl and upd.events:
            sys.stdout.write("".join(json.dumps({**e.as_dict(), "camera": name}) + "\n" for e in upd.events))
            sys.stdout.flush()
        if self.server is None:
            return
        if upd.jpeg is not None:
            self.server.publish_jpeg(name, upd.jpeg)
        if upd.events:
            self.server.publish_events(name, upd.events)
        if upd.status is not None:
            self.server.set_status(name, {"state": "running", **upd.status})  # or the actor's own (retrying)

    def _close(self, c: _Camera) -> None:
        """A camera that ended: said at once, shown on the page, its process freed."""
        import ray

        c.closed = True
        o = c.outcome
        assert o is not None
        self.say(mask_credentials(o.headline()))
        if self.server is not None:
            self.server.set_status(c.job.name, {**c.status, "state": f"{'stopped' if o.ok else 'failed'}: {o.reason}"})
        ray.kill(c.actor)


def run_cameras(jobs: list[CameraJob], opts: MultiOptions, server: LiveServer | None = None,
                say: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> list[CameraOutcome]:
    """Run every camera until each one stops (time up, Ctrl-C / SIGTERM, or its own failure); their outcomes."""
    return Driver(jobs, opts, server, say).run()


def summary_lines(outcomes: list[CameraOutcome]) -> list[str]:
    """Per camera: how it ended, then its own summary (indented); then the totals."""
    out: list[str] = []
    for o in outcomes:
        out.append(o.headline())
        out += [f"  {part}" for ln in o.lines for part in ln.splitlines()]
    failed = [o.name for o in outcomes if not o.ok]
    out.append(f"cameras: {len(outcomes)}, {len(outcomes) - len(failed)} ran until stopped, {len(failed)} failed"
               + (f" ({', '.join(failed)})" if failed else ""))
    return [mask_credentials(ln) for ln in out]


def check_outcomes(outcomes: list[CameraOutcome]) -> None:
    """Exit code 1 only when every camera failed: one working camera keeps the run a success."""
    if outcomes and not any(o.ok for o in outcomes):
        raise CamerasFailedError(f"every camera failed ({', '.join(o.name for o in outcomes)}); "
                                 "each one's reason is in the summary above")
