"""`live`: a camera or stream through the same stages, with bounded latency, a window and streamed outputs."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from pipeline.io.capture import CapturedFrame, LatestFrameReader, describe, open_source
from pipeline.core.config import TrackRunConfig
from pipeline.core.errors import SourceUnavailableError
from pipeline.events.types import Event
from pipeline.io.run_dirs import RunDir
from pipeline.io.run_meta import InputFacts, live_figures
from pipeline.apps.processing import FrameProcessor, FrameResult, StopFlag, check_display
from pipeline.apps.sinks import AnnotatedVideo, RunSinks, SinkOptions
from pipeline.outputs.mqtt import MqttPublisher
from pipeline.outputs.web import FrameSink, LiveServer
from pipeline.core.types import Frame

WINDOW = "trajectory forecast (live)"


@dataclass
class LiveStats:
    """Running figures for the overlay and the closing summary (latencies kept in a bounded window)."""

    processed: int = 0
    started: float = field(default_factory=time.monotonic)
    latencies: deque = field(default_factory=lambda: deque(maxlen=2000))
    frame_times: deque = field(default_factory=lambda: deque(maxlen=30))
    snapshots: list[Path] = field(default_factory=list)

    def tick(self, latency_s: float) -> None:
        self.processed += 1
        self.latencies.append(latency_s)
        self.frame_times.append(time.monotonic())

    @property
    def fps(self) -> float:
        t = self.frame_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else 0.0


@dataclass
class LiveOptions:
    """What the user asked for on the command line."""

    show: bool = True
    save: bool = False
    max_seconds: float = 0.0  # 0: until stopped
    quiet: bool = False
    events_jsonl: bool = False  # stream events.csv's rows as JSON lines on stdout (--events-jsonl)
    serve: str | None = None  # --serve [HOST:]PORT: a web page with the stream, events and status
    serve_token: str | None = None  # --serve-token: what every request to it must carry
    mqtt: str | None = None  # --mqtt HOST[:PORT]: publish each event to this broker (pipeline/outputs/mqtt.py)
    mqtt_topic: str | None = None  # --mqtt-topic (default trajpred/<camera>/events)
    camera: str | None = None  # its name in MQTT topics and payloads (default: made from the source)


def emit_jsonl(events: tuple[Event, ...]) -> None:
    """Events as JSON lines on stdout, flushed at once, so another program reading the pipe gets each alert now."""
    if events:
        sys.stdout.write("".join(json.dumps(e.as_dict()) + "\n" for e in events))
        sys.stdout.flush()


def overlay(image: np.ndarray, stats: LiveStats, latency_s: float, tracks: int, dropped: int, rec: bool) -> None:
    """Status line drawn on the frame: processing fps, frame age, active tracks, dropped frames."""
    text = f"{stats.fps:4.1f} fps  latency {latency_s * 1000:4.0f} ms  tracks {tracks}  dropped {dropped}"
    text += "  REC" if rec else ""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(image, (0, 0), (w + 10, h + base + 8), (0, 0, 0), -1)
    cv2.putText(image, text, (5, h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


class LiveSession:
    """One live run; `run()` returns when the user stops it, the stream ends for good, or time is up."""

    def __init__(self, source: int | str, out: Path | RunDir, cfg: TrackRunConfig, opts: LiveOptions,
                 sink: FrameSink | None = None) -> None:
        """`sink`: where frames, events and figures go instead of an own --serve server (one camera of many)."""
        check_display(opts.show, "use --no-show (add --save to record)")
        self.server: FrameSink | None = sink if sink is not None else \
            LiveServer.from_spec(opts.serve, opts.serve_token) if opts.serve else None  # refused now, not later
        self.stop_flag = StopFlag()  # set by a signal, or by whoever runs this session (a multi-camera driver)
        self.run_dir = out if isinstance(out, RunDir) else RunDir(Path(out))
        self.source, self.cfg, self.opts = source, cfg, opts
        self.reader = LatestFrameReader(lambda: open_source(source, cfg.live), cfg.live)
        first = self._first_frame()
        h, w = first.image.shape[:2]
        self.size = (w, h)
        fps = cfg.live.record_fps or (self.reader.reported_fps if 1 <= self.reader.reported_fps <= 120 else 30.0)
        try:
            self.proc = FrameProcessor(cfg, fps, self.size)
            self.proc.warmup(first.image)
            # live keeps its video paced by the capture clock; --save records and writes the tables from the start
            self.recorder = AnnotatedVideo(self.run_dir, fps, self.size, cfg.output, paced=True)
            save = SinkOptions(tables=opts.save, video=opts.save, report=opts.save and cfg.output.report)
            self.sinks = RunSinks(self.run_dir, self.proc, save, self.recorder)
            self.sinks.start()
        except BaseException:
            self.reader.stop()
            self.run_dir.close()
            raise
        self.stats = LiveStats()
        self.t0 = first.captured_at  # the first frame itself is stale after model loading: not processed
        self.paused = False
        self.last_annotated: np.ndarray | None = None
        self.end_reason = ""
        self.stopped_by = ""  # said in the summary: time up or the stream ended (empty: the user stopped it)
        self.score_lines: list[str] = []
        self.meta_files: list[Path] = []  # run.json and Parquet tables, written at the end
        self.report_files: list[Path] = []  # with --save: trajectories.png, heatmap.png and report.html
        self.mqtt: MqttPublisher | None = None

    def _first_frame(self) -> CapturedFrame:
        self.reader.start()
        deadline = time.monotonic() + self.cfg.live.open_timeout_s
        while time.monotonic() < deadline and not self.reader.ended:
            f = self.reader.get(timeout=0.2)
            if f is not None:
                return f
        self.reader.stop()
        raise SourceUnavailableError(f"{describe(self.source)} opened but delivered no frame within {self.cfg.live.open_timeout_s:g} s")

    def run(self) -> LiveStats:
        with ExitStack() as stack:
            stack.callback(self.run_dir.close)  # the folder's lock, released after every file is closed
            # caught until every file is closed: a second Ctrl-C must not abort the finalising of a video
            stop = stack.enter_context(self.stop_flag.installed())
            if self.server is not None:
                print(f"serving {stack.enter_context(self.server).url}", file=sys.stderr, flush=True)
            if self.opts.mqtt:  # closed (flushed for at most its flush_s) after every file
                self.mqtt = stack.enter_context(MqttPublisher.for_source(self.opts.mqtt, self.opts.mqtt_topic, self.source,
                                                                         camera=self.opts.camera))
            stack.callback(self.reader.stop)
            stack.callback(lambda: self.score_lines.extend(self.proc.finish_scores()))
            stack.enter_context(self.sinks)
            if self.opts.show:
                cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
                stack.callback(cv2.destroyAllWindows)
            while not stop.stop and not self._time_up():
                if not self._step(stop):
                    break
            if self._time_up():
                self.stopped_by = f"--max-seconds {self.opts.max_seconds:g} reached"
            elif self.end_reason:
                self.stopped_by = f"stopped early: {self.end_reason}"
        if self.sinks.report is not None:  # after the video and CSVs are finalised: the report inlines them
            lines = [ln for ln in self.summary() if not ln.startswith("wrote ")]
            self.report_files = self.sinks.write_report(describe(self.source), lines)
        facts = InputFacts(describe(self.source), self.size[0], self.size[1], self.recorder.fps, 0)
        started = time.time() - (time.monotonic() - self.stats.started)
        self.meta_files = self.sinks.write_meta(facts, started, live_figures(self), [])  # Parquet, run.json
        return self.stats

    def _time_up(self) -> bool:
        return bool(self.opts.max_seconds) and time.monotonic() - self.stats.started >= self.opts.max_seconds

    def _step(self, stop: StopFlag) -> bool:
        """Process the newest frame (if any); False when the stream has ended for good."""
        cap = self.reader.get(timeout=0.25)
        if cap is None and self.reader.ended:
            self.end_reason = self.reader.end_reason or "stream ended"
            return False
        if cap is None or self.paused:
            self._keys(stop, None)
            return True
        frame = Frame(cap.index, cap.captured_at - self.t0, cap.image)
        r = self.proc.process(frame)
        latency = time.monotonic() - cap.captured_at
        self.stats.tick(latency)
        if self.opts.events_jsonl and r.events is not None:
            emit_jsonl(r.events.events)
        if self.mqtt is not None and r.events is not None:
            self.mqtt.publish(frame.index, frame.time_s, r.events, self.proc.events)
        # drawn only when shown, recorded or watched in a browser
        watched = self.opts.show or self.recorder.active or (self.server is not None and self.server.streaming)
        annotated = self.sinks.write(r, partial(self._draw, latency=latency) if watched else None)
        if self.server is not None:
            self._publish(r, annotated, latency)
        self._keys(stop, annotated)
        return True

    def _draw(self, r: FrameResult, latency: float) -> np.ndarray:
        """The annotated frame with the status line (kept for the s key's snapshot)."""
        annotated = self.proc.annotate(r)
        overlay(annotated, self.stats, latency, len(r.tracks), self.reader.dropped, self.recorder.active)
        self.last_annotated = annotated
        return annotated

    def _publish(self, r: FrameResult, annotated: np.ndarray | None, latency: float) -> None:
        """--serve: this frame's picture (drawn only when someone watches), events and figures, never waiting."""
        srv, cam, ev = self.server, describe(self.source), self.proc.events
        assert srv is not None
        if annotated is not None:
            srv.publish_frame(cam, annotated)
        if r.events is not None:
            srv.publish_events(cam, r.events.events)
        srv.set_status(cam, {"fps": round(self.stats.fps, 2), "latency_s": round(latency, 4), "tracks": len(r.tracks),
                             "dropped": self.reader.dropped, "reconnects": self.reader.reconnects,
                             "uptime_s": round(time.monotonic() - self.stats.started, 1),
                             "counts": ev.traffic.summary_lines() if ev is not None and ev.traffic.has_geometry else []})

    def _keys(self, stop: StopFlag, annotated: np.ndarray | None) -> None:
        """Window and keys: q/Esc quit, space pause, s snapshot, r record on/off."""
        if not self.opts.show:
            return
        if annotated is not None:
            cv2.imshow(WINDOW, annotated)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            stop.stop = True
        elif key == ord(" "):
            self.paused = not self.paused
        elif key == ord("s") and self.last_annotated is not None:
            path = self.run_dir.file(f"snapshot_{len(self.stats.snapshots) + 1}.png")
            cv2.imwrite(str(path), self.last_annotated)
            self.stats.snapshots.append(path)
        elif key == ord("r"):
            if self.recorder.active:
                self.recorder.stop()
            else:
                self.recorder.start(time.monotonic() - self.t0)

    def summary(self) -> list[str]:
        s, r = self.stats, self.reader
        elapsed = time.monotonic() - s.started
        lines = [
            f"live: {describe(self.source)}; processed {s.processed} of {r.captured} captured frames in {elapsed:.1f} s "
            f"({s.processed / elapsed if elapsed else 0:.1f} fps), dropped {r.dropped}, reconnects {r.reconnects}",
            f"latency (frame age when shown): median {s.latency_ms(50):.0f} ms, p95 {s.latency_ms(95):.0f} ms, "
            f"max {max(s.latencies, default=0) * 1000:.0f} ms",
            *([self.stopped_by] if self.stopped_by else []),
            *([self.mqtt.report] if self.mqtt is not None and self.mqtt.report else []),
        ]
        files = list(self.recorder.files) + [*s.snapshots] + self.sinks.table_files()
        files = [f for f in files if f.exists()] + self.report_files + self.meta_files  # parquet removed the CSVs
        return lines + self.score_lines + [f"wrote {p}" for p in files]
