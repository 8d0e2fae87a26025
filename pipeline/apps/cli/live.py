"""`live`: a camera or stream (or a cameras.yaml of many, each a Ray actor), with a window, a web page, MQTT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.apps.cli import common

NAME = "live"


def add_parser(sub: argparse._SubParsersAction) -> None:
    source = common.group()
    source.add_argument("--source", default="0", help="camera index (0, 1, ...) or stream URL (rtsp://, http://...mjpg)")
    p = sub.add_parser(
        NAME, help="forecast on a webcam, camera or network stream",
        description="Run the pipeline on a live source. Only the newest frame is processed (stale frames are "
        "dropped, never queued). Window keys: q/Esc quit, space pause, s snapshot PNG, r record on/off.",
        parents=[source, *common.run_groups(), common.ray_address()],
    )
    p.add_argument("--show", dest="show", action="store_true", default=True, help="show the window (default)")
    p.add_argument("--no-show", dest="show", action="store_false", help="headless: no window")
    p.add_argument("--save", action="store_true", help="record annotated video and stream tracks/predictions CSVs")
    p.add_argument("--reconnect", type=float, help="seconds to keep reconnecting a dropped stream (default from config)")
    p.add_argument("--max-seconds", type=float, default=0.0, help="stop after this many seconds (0: run until stopped)")
    p.add_argument("--events-jsonl", action="store_true",
                   help="stream events (zones, lines, conflicts) as JSON lines on stdout; the summary goes to stderr")
    p.add_argument("--serve", metavar="[HOST:]PORT", help="serve a web page with the annotated stream, events and "
                   "status (host 127.0.0.1 unless given; any other host needs --serve-token)")
    p.add_argument("--serve-token", metavar="TOKEN",
                   help="secret every --serve request must carry (?token=TOKEN or Authorization: Bearer TOKEN)")
    p.add_argument("--mqtt", metavar="HOST[:PORT]", help="publish each event as JSON to this MQTT broker (QoS 1; "
                   "user:password@host:port logs in); predicted alerts carry type new/update/end")
    p.add_argument("--mqtt-topic", help="MQTT topic for the events; {camera} in it becomes the camera's name "
                   "(default trajpred/{camera}/events; the camera is named after --source, or by cameras.yaml)")


def run(a: argparse.Namespace) -> int:
    common.require("live", "live", "starlette", "uvicorn", "paho")  # its web page and MQTT modules load with it
    from pipeline.apps.live_run import LiveOptions, LiveSession
    from pipeline.apps.multi_live import is_cameras_file
    from pipeline.core.errors import StreamLostError, UserError
    from pipeline.core.redact import mask_credentials
    from pipeline.io.capture import parse_source
    from pipeline.io.run_dirs import RunDir, choose_run_dir
    from pipeline.outputs.mqtt import check_options

    if not a.max_seconds >= 0:  # also refuses nan
        raise UserError(f"--max-seconds must be a number >= 0, got {a.max_seconds}")
    check_options(a.mqtt, a.mqtt_topic)  # a malformed --mqtt fails now, before any model loads
    overrides = common.run_overrides(a)
    if a.reconnect is not None:
        overrides["live"] = {"reconnect_s": a.reconnect}
    if is_cameras_file(a.source):  # many cameras (README: Many cameras at once)
        return _cameras(a, overrides)
    if a.address:
        raise UserError("--address runs the cameras of a cameras.yaml on a Ray cluster; one camera runs here")
    cfg = common.with_events(common.load_config(a.config, overrides), a.camera, a.zones)
    common.require_format(cfg)
    if a.mqtt and not cfg.events.active:
        raise UserError("--mqtt publishes events: give --zones FILE and/or --camera FILE (README: Send events ...)")
    inputs = common.input_paths(a.source, a.config, cfg.detector.weights, cfg.predictor.weights, a.camera, a.zones,
                                a.tracker)
    out_dir = choose_run_dir(a.out, a.overwrite, base=Path("runs/live"), inputs=inputs)
    if a.serve_token is not None and not a.serve:
        raise UserError("--serve-token needs --serve [HOST:]PORT")
    opts = LiveOptions(a.show, a.save, a.max_seconds, a.quiet, events_jsonl=a.events_jsonl, serve=a.serve,
                       serve_token=a.serve_token, mqtt=a.mqtt, mqtt_topic=a.mqtt_topic)
    session = LiveSession(parse_source(a.source), RunDir(out_dir, a.overwrite, inputs), cfg, opts)
    session.run()
    print(mask_credentials("\n".join(session.summary())), file=sys.stderr if a.events_jsonl else sys.stdout)
    if session.end_reason and session.end_reason != "stream ended":
        raise StreamLostError(f"{session.end_reason}; outputs in {out_dir} are complete up to the last frame")
    return 0


def _cameras(a: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """live --source cameras.yaml: every camera's config, files and folder checked here, then one Ray actor each."""
    from pipeline.apps.multi_live import MultiOptions, check_outcomes, read_cameras, run_cameras, summary_lines
    from pipeline.core.errors import UserError
    from pipeline.io.run_dirs import choose_run_dir
    from pipeline.outputs.web import LiveServer

    if a.show:
        raise UserError("--source cameras.yaml runs its cameras headless: add --no-show (and --serve PORT to watch "
                        "them all in a browser)")
    if a.serve_token is not None and not a.serve:
        raise UserError("--serve-token needs --serve [HOST:]PORT")
    specs = read_cameras(a.source)
    common.input_paths(a.source, a.config, a.camera, a.zones, a.tracker)
    out = choose_run_dir(a.out, a.overwrite, base=Path("runs/live"))
    jobs = [_camera_job(a, overrides, spec, out) for spec in specs]
    server = LiveServer.from_spec(a.serve, a.serve_token) if a.serve else None  # refused now, before Ray starts
    outcomes = run_cameras(jobs, MultiOptions(a.address or "", a.events_jsonl), server)
    print("\n".join(summary_lines(outcomes)), file=sys.stderr if a.events_jsonl else sys.stdout)
    check_outcomes(outcomes)
    return 0


def _camera_job(a: argparse.Namespace, overrides: dict[str, Any], spec: Any, out: Path) -> Any:
    """One camera of cameras.yaml: the run config with its own classes, zones and calibration, and its folder."""
    from pipeline.apps.live_run import LiveOptions
    from pipeline.apps.multi_live import CameraJob
    from pipeline.core.config import merge
    from pipeline.core.errors import UserError
    from pipeline.io.run_dirs import RunDir, choose_run_dir

    if spec.classes is not None:
        overrides = merge(overrides, {"detector": {"classes": spec.classes}})
    camera, zones = spec.camera or a.camera, spec.zones or a.zones
    cfg = common.with_events(common.load_config(a.config, overrides), camera, zones)
    if a.mqtt and not cfg.events.active:
        raise UserError(f"--mqtt publishes events: camera {spec.name} has none; give it zones: or camera: in "
                        f"{a.source} (or --zones / --camera for every camera)")
    source = [spec.source] if isinstance(spec.source, str) and "://" not in spec.source else []
    inputs = common.input_paths(*source, a.source, a.config, cfg.detector.weights, cfg.predictor.weights, camera,
                                zones, a.tracker)
    path = choose_run_dir(str(out / spec.name), a.overwrite, inputs=inputs).resolve()
    opts = LiveOptions(show=False, save=a.save, max_seconds=a.max_seconds, quiet=True, mqtt=a.mqtt,
                       mqtt_topic=a.mqtt_topic, camera=spec.name)
    return CameraJob(spec.name, spec.source, cfg, RunDir(path, a.overwrite, inputs), opts)
