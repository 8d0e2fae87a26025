"""Command-line entry point: `trajpred track --source video.mp4`, or `python run.py track ...` in a checkout.

This is the only place that reads argparse and YAML; the pipeline takes typed config dataclasses.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from pipeline.core import resources

os.environ.setdefault("YOLO_OFFLINE", "1")  # no settings sync / pip auto-installs from ultralytics
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own stderr chatter; we report errors ourselves
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

DEFAULT_CONFIG = resources.default_config()  # configs/default.yaml in a checkout, else the packaged copy


def _track_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track", help="detect, track and forecast on a video file",
        description="Run the full pipeline on a video file and write an annotated video, tracks.csv and "
        "predictions.csv into a run folder (runs/track/expN unless --out is given).",
    )
    p.add_argument("--source", required=True, help="video file to process")
    _detector_and_predictor_options(p)
    p.add_argument("--no-video", action="store_true", help="write only the CSVs, no annotated video")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--vid-stride", type=int, help="process every Nth frame of the video (default 1: all)")
    p.add_argument("--project", help="parent folder of the run folder (default runs/track), as in ultralytics")
    p.add_argument("--name", default="exp", help="run folder name under --project: NAME, NAME2, ... (default exp)")
    p.add_argument("--exist-ok", action="store_true",
                   help="write into --project/--name even if it exists (replacing this program's files there)")
    p.add_argument("--save-txt", action="store_true", help="also write tracks.txt: MOTChallenge rows "
                   "frame,id,left,top,width,height,conf,-1,-1,-1 (frame from 1)")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window (q quits)")


def _track_overrides(a: argparse.Namespace) -> dict[str, Any]:
    """CLI flags as a config dict (only the flags given)."""
    from pipeline.core.errors import UserError

    det: dict[str, Any] = {}
    if a.weights:
        det["weights"] = a.weights
    if a.classes is not None:
        names = [c.strip() for c in a.classes.split(",") if c.strip()]
        if not names:
            raise UserError(f"--classes lists no class names ({a.classes!r}); give e.g. person,car or all")
        det["classes"] = [] if names == ["all"] else names
    for key in ("conf", "iou", "imgsz", "device"):
        if getattr(a, key) is not None:
            det[key] = getattr(a, key)
    if getattr(a, "half", False):
        det["half"] = True
    pred: dict[str, Any] = {}
    if a.predictor:
        pred["kind"] = a.predictor
    if a.lstm_weights:
        pred["weights"] = a.lstm_weights
    if a.horizon is not None:
        pred["horizon_s"] = a.horizon
    out: dict[str, Any] = {"detector": det, "predictor": pred}
    if a.tracker:
        out["tracker"] = _tracker_option(a.tracker)
    if getattr(a, "vid_stride", None) is not None:
        if a.vid_stride < 1:
            raise UserError(f"--vid-stride must be >= 1 (1 processes every frame), got {a.vid_stride}")
        out["input"] = {"vid_stride": a.vid_stride}
    if getattr(a, "no_video", False):
        out["output"] = {"video": False}
    if getattr(a, "save_txt", False):
        out.setdefault("output", {})["save_txt"] = True
    if getattr(a, "format", None):
        out.setdefault("output", {})["format"] = a.format
    return out


def _tracker_option(value: str) -> dict[str, Any]:
    """--tracker: a tracker name (also as ultralytics' file names bytetrack.yaml / botsort.yaml) or a YAML file."""
    from pipeline.core.config import load_yaml, tracker_from_ultralytics
    from pipeline.core.errors import UserError

    path = Path(value).expanduser()
    if path.is_file():
        _input_paths(value)
        return tracker_from_ultralytics(load_yaml(path), value)
    name = value.removesuffix(".yaml")
    if name in ("bytetrack", "botsort"):
        return {"type": name}
    raise UserError(f"--tracker {value}: not bytetrack, botsort or an existing tracker YAML file")


_DISTRIBUTIONS = {"paho": "paho-mqtt"}  # import name -> what pip installs, where they differ


def _require(extra: str, what: str, *modules: str) -> None:
    """Optional packages (an install without that extra) missing: one line saying what to install."""
    import importlib.util

    from pipeline.core.errors import UserError

    missing = [_DISTRIBUTIONS.get(m, m) for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{what} needs {' and '.join(missing)}, not installed: pip install 'trajpred[{extra}]' "
                        "(or make setup in a checkout)")


def _require_format(cfg: Any) -> None:
    if cfg.output.format != "csv":
        _require("parquet", f"output format {cfg.output.format} (--format)", "pyarrow")


def cmd_track(a: argparse.Namespace) -> int:
    from pipeline.core.redact import mask_credentials
    from pipeline.core.errors import UserError
    from pipeline.io.run_dirs import RunDir, choose_run_dir
    from pipeline.apps.track_run import partial_input_error, run_track

    if a.max_frames is not None and a.max_frames < 1:
        raise UserError("--max-frames must be >= 1")
    cfg = _with_events(a, _track_config(a, _track_overrides(a)))
    _require_format(cfg)
    inputs = _input_paths(a.source, a.config, cfg.detector.weights, cfg.predictor.weights, a.camera, a.zones, a.tracker)
    if a.out and (a.project or a.name != "exp" or a.exist_ok):
        raise UserError("--out names the run folder itself: give either --out or --project/--name/--exist-ok")
    base = Path(a.project) if a.project else Path("runs/track")
    out_dir = choose_run_dir(a.out, a.overwrite or a.exist_ok, base=base, inputs=inputs, name=a.name, exist_ok=a.exist_ok)
    run_dir = RunDir(out_dir, a.overwrite or a.exist_ok, inputs)
    summary = run_track(a.source, run_dir, cfg, show=a.show, quiet=a.quiet, max_frames=a.max_frames)
    print(mask_credentials("\n".join(summary.lines())))
    if summary.ended_early:
        raise partial_input_error(a.source, summary, out_dir)
    return 130 if summary.interrupted else 0


def _track_config(a: argparse.Namespace, overrides: dict[str, Any]) -> Any:
    """The YAML file must be valid on its own (a flag must not hide `detector: 3`), then flags override it."""
    from pipeline.core.config import TrackRunConfig, from_dict, load_yaml, merge

    data = load_yaml(a.config)
    from_dict(TrackRunConfig, data)
    return from_dict(TrackRunConfig, merge(data, overrides))


def _side_file(path: str, cls: type, flag: str) -> Any:
    """A --camera / --zones YAML file as its config dataclass; any problem is one line naming the file."""
    from pipeline.core.config import from_dict, load_yaml
    from pipeline.core.errors import UserError

    try:
        return from_dict(cls, load_yaml(path))
    except UserError as exc:
        msg = str(exc).replace("config file ", "").replace(f"{path} ", "")
        raise UserError(f"{flag} {path}: {msg}") from None


def _with_events(a: argparse.Namespace, cfg: Any) -> Any:
    """The run config with the camera calibration and zones/lines of --camera and --zones (YAML read here)."""
    import dataclasses

    from pipeline.core.config import CameraConfig, ZonesFileConfig

    ev = cfg.events
    if a.camera:
        ev = dataclasses.replace(ev, camera=_side_file(a.camera, CameraConfig, "--camera"))
    if a.zones:
        zf = _side_file(a.zones, ZonesFileConfig, "--zones")
        ev = dataclasses.replace(ev, zones=zf.zones, lines=zf.lines)
    return dataclasses.replace(cfg, events=ev)


def _input_paths(*paths: str) -> list[Path]:
    """Files a run reads: outputs must never replace them, and a FIFO or socket among them would hang the run."""
    import stat

    from pipeline.core.errors import UserError

    found = [Path(p).expanduser() for p in paths if p]
    for p in found:
        if p.exists() and (stat.S_ISFIFO(p.stat().st_mode) or stat.S_ISSOCK(p.stat().st_mode)):
            raise UserError(f"{p} is a FIFO or socket, not a file; pass a regular file")
    return found


def _detector_and_predictor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    p.add_argument("--weights", help="detector weights: .pt, *_openvino_model/ or .onnx (default from config)")
    p.add_argument("--classes", help="comma-separated class names to keep, e.g. person,car ('all' for every class)")
    p.add_argument("--conf", type=float, help="detection confidence threshold")
    p.add_argument("--iou", type=float, help="NMS IoU threshold of the detector, (0, 1)")
    p.add_argument("--imgsz", type=int, help="detector input size (640 for the OpenVINO exports)")
    p.add_argument("--device", help="auto (default: cuda:0 for .pt weights when a GPU is seen, else cpu), cpu or cuda:N")
    p.add_argument("--half", action="store_true", help="FP16 inference (.pt weights on CUDA only; ignored with a warning "
                   "elsewhere)")
    p.add_argument("--tracker", help="bytetrack or botsort, or an ultralytics tracker YAML (e.g. a tuned botsort.yaml)")
    p.add_argument("--predictor", choices=["auto", "lstm", "cv", "kalman"],
                   help="forecaster (default auto: all three scored online, the best on this camera served)")
    p.add_argument("--lstm-weights", help="TrajectoryLSTM checkpoint (default weights/traj_lstm.pt)")
    p.add_argument("--horizon", type=float, help="forecast horizon in seconds")
    p.add_argument("--out", help="run folder to write (default: next runs/<command>/expN)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to point at an existing run")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--camera", help="camera calibration YAML (see run.py calibrate): adds ground metres and speeds")
    p.add_argument("--zones", help="zones/lines YAML: zone entries, line crossings and alerts in events.csv "
                   "(pixels, or metres with --camera)")
    p.add_argument("--format", choices=["csv", "parquet", "both"],
                   help="tables written: csv, parquet (typed columns, units in the schema) or both (default from config)")


def _batch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="many videos on Ray: one task per video, resumable, Parquet dataset",
        description="Run `track` on every video of a folder, glob or .txt list, several at a time on Ray (started in "
        "this process, or --address of a cluster). Each video gets --out/NAME (written under a temporary name, "
        "renamed when whole); batch.json records each video so a rerun skips the finished ones; "
        "--out/dataset holds all videos' tracks and forecasts as Parquet, partitioned by video. "
        "Exits 1 if any video failed.",
    )
    p.add_argument("--source", required=True, help="folder of videos, glob pattern ('day1/*.mp4') or .txt list")
    _detector_and_predictor_options(p)
    p.add_argument("--workers", type=int, help="videos at a time (default: the cores, or the cluster's CPUs)")
    p.add_argument("--address", help="join this Ray cluster (e.g. ray://head:10001 or auto); --out must be shared")
    p.add_argument("--force", action="store_true", help="redo every video, also those finished earlier")
    p.add_argument("--no-video", action="store_true", help="write only the tables, no annotated videos")
    p.add_argument("--max-frames", type=int, help="stop each video after this many frames")
    p.add_argument("--save-txt", action="store_true", help="also tracks.txt (MOTChallenge rows) per video")


def cmd_batch(a: argparse.Namespace) -> int:
    from pipeline.apps.batch_run import BatchOptions, run_batch
    from pipeline.core.errors import UserError
    from pipeline.core.redact import mask_credentials

    if not a.out:
        raise UserError("batch needs --out DIR: one folder per video is written under it")
    if a.overwrite:
        raise UserError("batch replaces only its own video folders: use --force to redo the finished videos")
    if a.workers is not None and a.workers < 1:
        raise UserError(f"--workers must be >= 1, got {a.workers}")
    _require("batch", "batch", "ray", "pyarrow")
    cfg = _with_events(a, _track_config(a, _track_overrides(a)))
    _input_paths(a.config, a.camera, a.zones)
    opts = BatchOptions(a.source, Path(a.out), a.workers or 0, a.address or "", a.force, a.quiet, a.max_frames)
    result = run_batch(opts, cfg)
    print(mask_credentials("\n".join(result.lines())))
    return 1 if result.failed else 0


def _live_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live", help="forecast on a webcam, camera or network stream",
        description="Run the pipeline on a live source. Only the newest frame is processed (stale frames are "
        "dropped, never queued). Window keys: q/Esc quit, space pause, s snapshot PNG, r record on/off.",
    )
    p.add_argument("--source", default="0", help="camera index (0, 1, ...) or stream URL (rtsp://, http://...mjpg)")
    _detector_and_predictor_options(p)
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
    p.add_argument("--address", help="with --source cameras.yaml: run the cameras on this Ray cluster (e.g. "
                   "ray://head:10001 or auto; --out must be shared)")


def cmd_live(a: argparse.Namespace) -> int:
    _require("live", "live", "starlette", "uvicorn", "paho")  # its web page and MQTT modules load with it
    from pipeline.io.capture import parse_source
    from pipeline.core.redact import mask_credentials
    from pipeline.core.errors import StreamLostError, UserError
    from pipeline.apps.live_run import LiveOptions, LiveSession
    from pipeline.apps.multi_live import is_cameras_file
    from pipeline.io.run_dirs import RunDir, choose_run_dir
    from pipeline.outputs.mqtt import check_options

    if not a.max_seconds >= 0:  # also refuses nan
        raise UserError(f"--max-seconds must be a number >= 0, got {a.max_seconds}")
    check_options(a.mqtt, a.mqtt_topic)  # a malformed --mqtt fails now, before any model loads
    overrides = _track_overrides(a)
    if a.reconnect is not None:
        overrides["live"] = {"reconnect_s": a.reconnect}
    if is_cameras_file(a.source):  # many cameras (README: Many cameras at once)
        return _live_cameras(a, overrides)
    if a.address:
        raise UserError("--address runs the cameras of a cameras.yaml on a Ray cluster; one camera runs here")
    cfg = _with_events(a, _track_config(a, overrides))
    _require_format(cfg)
    if a.mqtt and not cfg.events.active:
        raise UserError("--mqtt publishes events: give --zones FILE and/or --camera FILE (README: Send events ...)")
    inputs = _input_paths(a.source, a.config, cfg.detector.weights, cfg.predictor.weights, a.camera, a.zones, a.tracker)
    out_dir = choose_run_dir(a.out, a.overwrite, base=Path("runs/live"), inputs=inputs)
    if a.serve_token is not None and not a.serve:
        raise UserError("--serve-token needs --serve [HOST:]PORT")
    opts = LiveOptions(a.show, a.save, a.max_seconds, a.quiet, events_jsonl=a.events_jsonl, serve=a.serve,
                       serve_token=a.serve_token, mqtt=a.mqtt,
                       mqtt_topic=a.mqtt_topic)
    session = LiveSession(parse_source(a.source), RunDir(out_dir, a.overwrite, inputs), cfg, opts)
    session.run()
    print(mask_credentials("\n".join(session.summary())), file=sys.stderr if a.events_jsonl else sys.stdout)
    if session.end_reason and session.end_reason != "stream ended":
        raise StreamLostError(f"{session.end_reason}; outputs in {out_dir} are complete up to the last frame")
    return 0


def _live_cameras(a: argparse.Namespace, overrides: dict[str, Any]) -> int:
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
    _input_paths(a.source, a.config, a.camera, a.zones, a.tracker)
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
    files = argparse.Namespace(camera=spec.camera or a.camera, zones=spec.zones or a.zones)
    cfg = _with_events(files, _track_config(a, overrides))
    if a.mqtt and not cfg.events.active:
        raise UserError(f"--mqtt publishes events: camera {spec.name} has none; give it zones: or camera: in "
                        f"{a.source} (or --zones / --camera for every camera)")
    source = [spec.source] if isinstance(spec.source, str) and "://" not in spec.source else []
    inputs = _input_paths(*source, a.source, a.config, cfg.detector.weights, cfg.predictor.weights, files.camera,
                          files.zones, a.tracker)
    path = choose_run_dir(str(out / spec.name), a.overwrite, inputs=inputs).resolve()
    opts = LiveOptions(show=False, save=a.save, max_seconds=a.max_seconds, quiet=True, mqtt=a.mqtt,
                       mqtt_topic=a.mqtt_topic, camera=spec.name)
    return CameraJob(spec.name, spec.source, cfg, RunDir(path, a.overwrite, inputs), opts)


def _calibrate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="fit and check an image-to-ground calibration",
        description="Fit the image-to-ground homography of a camera YAML file (image_points + world_points, at least "
        "4 pairs, OpenCV findHomography with RANSAC) and print the reprojection error of every pair in metres; or "
        "check a scale-only camera (metres_per_pixel or pixels_per_metre). Use the file with --camera on track/live.",
    )
    p.add_argument("--camera", required=True, help="camera YAML file")
    p.add_argument("--image", help="a frame of the camera (PNG/JPEG): draw the fitted metre grid and the pairs on it")
    p.add_argument("--out", help="where to write that picture (default: <image>_calibration.png beside it)")


def cmd_calibrate(a: argparse.Namespace) -> int:
    import numpy as np

    from pipeline.core.config import CameraConfig
    from pipeline.events.calibration import camera_from_config

    _input_paths(a.camera)
    camera, report = camera_from_config(_side_file(a.camera, CameraConfig, "--camera"))
    if report is None:
        print(f"scale camera: {camera.H[0, 0]:.6g} m per pixel ({1 / camera.H[0, 0]:.4g} pixels per metre)")
        return 0
    print("\n".join(report.lines()))
    print("image -> ground homography (pixels (x, y, 1) -> metres):")
    print(np.array2string(camera.H / camera.H[2, 2], precision=8, suppress_small=False))
    if a.image:
        print(f"wrote {_calibration_picture(a, camera)}")
    return 0


def _calibration_picture(a: argparse.Namespace, camera: Any) -> Path:
    """The frame with the fitted grid and the pairs (calibrate --image), never written over an input."""
    import cv2
    import numpy as np

    from pipeline.core.config import CameraConfig
    from pipeline.core.errors import UserError
    from pipeline.events.calibration import draw_calibration

    _input_paths(a.image)
    frame = cv2.imread(a.image, cv2.IMREAD_COLOR)
    if frame is None:
        raise UserError(f"--image {a.image} is not an image OpenCV can read; give a PNG or JPEG frame of the camera")
    src = Path(a.image)
    out = Path(a.out) if a.out else src.with_name(f"{src.stem}_calibration.png")
    if out.resolve() in {src.resolve(), Path(a.camera).resolve()}:
        raise UserError(f"--out {out} is an input; give another path")
    cfg = _side_file(a.camera, CameraConfig, "--camera")
    drawn = draw_calibration(frame, camera, np.array(cfg.image_points, float), np.array(cfg.world_points, float))
    if not cv2.imwrite(str(out), drawn):
        raise UserError(f"cannot write {out}; check the folder exists and is writable")
    return out


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="time our pipeline against ultralytics' predict and track loops",
        description="On the same frames and weights, in one process: (i) decoding alone, (n) the bare network on "
        "our letterboxed input (OpenVINO exports), (a) ultralytics predict loop, (b) model.track loop, (c) our "
        "full track pipeline with outputs (and c' with the speed options off), (d) the predictor alone for 1, 10, "
        "100 tracks; then the start-up of a fresh process to its first frame. Prints the CPU and its instruction "
        "sets, ms/frame (median over repeats after a warm-up), fps, peak RSS, the (b)/(c) speed-up and (c)/(n).",
    )
    p.add_argument("--source", required=True, help="video file")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    p.add_argument("--weights", help="detector weights (default from config)")
    p.add_argument("--frames", type=int, default=150, help="frames per repeat (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats after one warm-up (default: %(default)s)")
    p.add_argument("--soak", type=int, default=0, help="instead: loop the video this many times and print RSS over time")
    p.add_argument("--device", help="auto, cpu or cuda:N (default from config)")
    p.add_argument("--half", action="store_true", help="FP16 inference (.pt weights on CUDA only)")
    p.add_argument("--json", help="also write the results (rows, ratios, machine, start-up) to this JSON file")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up measurement (a fresh process)")


def cmd_bench(a: argparse.Namespace) -> int:
    from pipeline.apps.bench import format_result, run_bench, soak, write_json
    from pipeline.core.config import TrackRunConfig, from_dict, load_yaml, merge
    from pipeline.core.errors import UserError

    if a.frames < 10 or a.repeats < 1:
        raise UserError("--frames must be >= 10 and --repeats >= 1")
    det = {k: v for k, v in (("weights", a.weights), ("device", a.device), ("half", a.half or None)) if v}
    cfg = from_dict(TrackRunConfig, merge(load_yaml(a.config), {"detector": det}))
    if a.soak:
        samples = soak(Path(a.source), cfg, a.soak, a.frames)
        print("frame  rss_mb\n" + "\n".join(f"{k:5d}  {mb:6.0f}" for k, mb in samples))
        return 0
    startup = None if a.no_startup else [a.config, cfg.detector.weights]
    res = run_bench(Path(a.source), cfg, a.frames, a.repeats, startup)
    print(format_result(res))
    if a.json:
        write_json(res, Path(a.json))
    return 0


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from pipeline.learning.loaders import FORMATS

    p = sub.add_parser(
        "train", help="train the trajectory LSTM on real trajectories",
        description="Train TrajectoryLSTM (seeded, early-stopped on validation ADE) and write a checkpoint that "
        "carries the model config, feature spec, normalisation statistics and training metadata.",
    )
    p.add_argument("--config", default=str(resources.project_or_cwd() / "configs" / "train.yaml"),
                   help="training YAML (default: %(default)s)")
    p.add_argument("--data", help="train on this file/folder instead of the config's sources (needs --format)")
    p.add_argument("--format", choices=FORMATS, help="format of --data")
    p.add_argument("--epochs", type=int, help="maximum epochs")
    p.add_argument("--out", help="checkpoint path to write (default: the config's out)")
    p.add_argument("--overwrite", action="store_true", help="allow replacing an existing checkpoint file")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no per-epoch log")


def cmd_train(a: argparse.Namespace) -> int:
    from pipeline.core.config import from_dict, load_yaml
    from pipeline.core.errors import UserError
    from pipeline.learning.training import TrainConfig, train

    data = load_yaml(a.config)
    if a.data:
        if not a.format:
            raise UserError("--data needs --format (see run.py train --help)")
        data["train"], data["val"] = [{"format": a.format, "path": a.data}], []
    for key in ("epochs", "out", "seed"):
        if getattr(a, key) is not None:
            data[key] = getattr(a, key)
    cfg = from_dict(TrainConfig, data)
    _input_paths(a.config, *(s.path for s in cfg.train + cfg.val))
    if Path(cfg.out).exists() and not a.overwrite:
        raise UserError(f"{cfg.out} exists; pass --out NEW.pt, or --overwrite to replace it")
    meta = train(cfg, quiet=a.quiet)
    print(
        f"trained {meta['epochs_run']} epochs in {meta['train_minutes']:.1f} min on {meta['train_windows']} windows; "
        f"val ADE/FDE {meta['val_ade_units']:.3f}/{meta['val_fde_units']:.3f} body-heights "
        f"(constant-velocity prior {meta['val_prior_ade_units']:.3f}/{meta['val_prior_fde_units']:.3f}); "
        f"wrote {cfg.out}"
    )
    if "tuned_baselines" in meta:
        print("baselines tuned on the training windows (configs/default.yaml predictor:): "
              + ", ".join(f"{k} {v}" for k, v in meta["tuned_baselines"].items()))
    return 0


DEFAULT_LSTM = "weights/traj_lstm.pt"
METRIC_FORMATS = ("ethucy", "sdd", "gc", "dut", "trajnetpp", "edinburgh")  # loaders that give metres


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    from pipeline.learning.loaders import FORMATS

    p = sub.add_parser(
        "eval", help="compare lstm, cv and kalman on the same windows",
        description="Evaluate the LSTM checkpoint and the tuned cv / kalman baselines on exactly the same windows "
        "and print one table: ADE/FDE over the whole horizon and at 1, 2, 3 s (metres for metric data, pixels "
        "for boxes, or body heights with --body-heights), and the share of true positions inside each "
        "predictor's 1 and 2 sigma regions (a calibrated Gaussian: 0.39 and 0.86).",
    )
    p.add_argument("--data", required=True, help="data file, folder or archive")
    p.add_argument("--format", required=True, choices=FORMATS, help="data format")
    p.add_argument("--lstm-weights", dest="weights", help=f"LSTM checkpoint (default: {DEFAULT_LSTM}, the universal model)")
    p.add_argument("--weights", dest="weights", help=argparse.SUPPRESS)  # the older spelling; --weights is the detector elsewhere
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML whose predictor: section tunes cv and kalman")
    p.add_argument("--obs", type=int, help="observed steps (default: 8 for ethucy, else the checkpoint's)")
    p.add_argument("--pred", type=int, help="predicted steps (default: 12 for ethucy, else the checkpoint's)")
    p.add_argument("--split", default="test", help="JAAD split: train, val, test or all (default: test)")
    p.add_argument("--holdout", type=float, help="evaluate only the trajectories training held out at this fraction")
    p.add_argument("--methods", default="lstm,cv,kalman", help="comma-separated subset of lstm,cv,kalman")
    p.add_argument("--body-heights", action="store_true", help="errors in body heights (box height or 1.7 m)")
    p.add_argument("--json", help="also write the numbers to this JSON file")


def _check_json_path(path: str | None) -> None:
    """A --json output must go to a folder that exists (checked before any work is done)."""
    from pipeline.core.errors import UserError

    if path and not Path(path).expanduser().parent.is_dir():
        raise UserError(f"--json {path}: its folder does not exist; create it or pick another path")


def _check_eval_numbers(a: argparse.Namespace) -> None:
    """Numbers on eval's command line, checked before any data is read."""
    import math

    from pipeline.core.errors import UserError

    if a.holdout is not None and not (math.isfinite(a.holdout) and 0 < a.holdout < 1):
        raise UserError(f"--holdout must be a fraction in (0, 1), got {a.holdout}")
    if a.obs is not None and a.obs < 2:
        raise UserError(f"--obs must be >= 2 observed steps, got {a.obs}")
    if a.pred is not None and a.pred < 1:
        raise UserError(f"--pred must be >= 1 predicted step, got {a.pred}")
    _check_json_path(a.json)


def cmd_eval(a: argparse.Namespace) -> int:
    import dataclasses
    import json
    from collections import Counter

    from pipeline.core.config import PredictorConfig, from_dict, load_yaml
    from pipeline.core.errors import UserError
    from pipeline.forecast.features import FeatureSpec
    from pipeline.forecast.predictors import LSTMPredictor, resolve_checkpoint
    from pipeline.learning.loaders import load
    from pipeline.learning.evaluation import ETHUCY, Protocol, evaluate, format_table, tuned_baselines
    from pipeline.learning.training import is_holdout

    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    if not methods or set(methods) - {"lstm", "cv", "kalman"}:
        raise UserError(f"--methods must list lstm, cv and/or kalman, got {a.methods!r}")
    _check_eval_numbers(a)
    _input_paths(a.data, a.config, a.weights or "")
    pcfg = from_dict(PredictorConfig, load_yaml(a.config).get("predictor"), "predictor.")
    lstm = LSTMPredictor(resolve_checkpoint(a.weights or DEFAULT_LSTM)) if "lstm" in methods else None
    proto = ETHUCY if a.format == "ethucy" else Protocol(lstm.spec if lstm else FeatureSpec())
    spec = dataclasses.replace(proto.spec, obs_len=a.obs or proto.spec.obs_len, pred_len=a.pred or proto.spec.pred_len,
                               cv_steps=1, cv_gain=1.0)  # a window grid only: --obs may be shorter than a prior
    skipped: Counter[str] = Counter()
    trajs = load(a.format, a.data, a.split, skipped)
    if skipped:
        print("skipped rows: " + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())))
    if a.holdout is not None:
        trajs = [t for t in trajs if is_holdout(t.key, a.holdout)]
    preds = tuned_baselines(spec, pcfg, has_box=trajs[0].has_box)
    if lstm is not None:
        if abs(lstm.step_s - spec.step_s) > 1e-6 or lstm.obs_len > spec.obs_len or lstm.spec.pred_len < spec.pred_len:
            raise UserError(
                f"{a.weights or DEFAULT_LSTM} was trained for {lstm.obs_len} -> {lstm.spec.pred_len} steps of "
                f"{lstm.step_s:g} s; this evaluation needs {spec.obs_len} -> {spec.pred_len} of {spec.step_s:g} s: "
                "pass a matching --lstm-weights or --obs/--pred"
            )
        lstm.horizon = spec.pred_len
        preds = {"lstm": lstm, **preds}
    results, n = evaluate(trajs, dataclasses.replace(proto, spec=spec),
                          {m: preds[m] for m in ["lstm", "cv", "kalman"] if m in methods}, a.body_heights)
    unit = "body heights" if a.body_heights else "metres" if a.format in METRIC_FORMATS else "pixels"
    print(format_table(results, n, unit))
    if a.json:
        Path(a.json).write_text(json.dumps({**results, "windows": n, "unit": unit}, indent=2))
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse's usage errors as one `error:` line (credentials masked) and exit code 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        from pipeline.core.redact import mask_credentials

        words = self.prog.split()  # "run.py track" or "trajpred track" (a subcommand's parser), "run.py" (the main)
        launcher = f"python {words[0]}" if words[0].endswith(".py") else words[0]
        print(f"error: {mask_credentials(message)}; see `{' '.join([launcher, *words[1:], '--help'])}`", file=sys.stderr)
        sys.exit(2)


def _masked_excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """A bug still prints its traceback (to be reported), but never a credential from a URL."""
    import traceback

    from pipeline.core.redact import mask_credentials

    sys.stderr.write(mask_credentials("".join(traceback.format_exception(kind, exc, tb))))


def _bench_forecast_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-forecast", help="leave-one-source-out forecast benchmark (lstm vs tuned cv and kalman)",
        description="For every trajectory source in ../shared/data (and the shared videos' own tracks, from `make "
        "own-tracks`): tune cv and Kalman and train the LSTM on all the other sources, then score all three on the "
        "held-out one at 1, 2 and 3 s in body heights. Writes JSON (resumable: finished sources are kept) and prints "
        "a markdown table.",
    )
    root = resources.project_or_cwd()
    p.add_argument("--config", default=str(root / "configs" / "train.yaml"), help="training YAML (grid, schedule)")
    p.add_argument("--data-root", default=str(root.parent / "shared" / "data"), help="the shared data folder")
    p.add_argument("--out", default=str(root / "benchmarks" / "forecast_loso.json"), help="JSON results file")
    p.add_argument("--only", help="comma-separated source names to score (e.g. ethucy/eth,gc)")
    p.add_argument("--epochs", type=int, help="epochs per fold (default: the config's)")
    p.add_argument("--cap", type=int, default=2000, help="training windows per source per fold (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="redo the sources already in --out (default: keep them)")


def cmd_bench_forecast(a: argparse.Namespace) -> int:
    from pipeline.core.config import from_dict, load_yaml
    from pipeline.learning.loso_bench import BenchConfig, format_table, run
    from pipeline.learning.training import TrainConfig

    data = load_yaml(a.config)
    data["max_windows_per_source"] = a.cap
    if a.epochs is not None:
        data["epochs"] = a.epochs
    only = tuple(s.strip() for s in (a.only or "").split(",") if s.strip())
    cfg = BenchConfig(Path(a.data_root), resources.project_or_cwd(), from_dict(TrainConfig, data), only=only,
                      force=a.force)
    results = run(cfg, Path(a.out), lambda s: print(s, file=sys.stderr, flush=True))
    print(format_table(results))
    return 0


def _eval_events_parser(sub: argparse._SubParsersAction) -> None:
    from pipeline.learning.loaders import FORMATS

    p = sub.add_parser(
        "eval-events", help="score predicted conflicts (and zone / line alerts) on trajectory data",
        description="Replay a data set's trajectories in time order, at their own rate, through the same "
        "forecast -> events code as track (metric data: events in metres), once with --predictor and once with cv, "
        "and score each run's alerts against the events found afterwards in the real trajectories by the same "
        "definitions: precision, recall (real events announced at least --min-lead seconds before), median lead "
        "and the time-to-event error.",
    )
    p.add_argument("--data", required=True, help="data file, folder or archive")
    p.add_argument("--format", required=True, choices=FORMATS, help="data format (labels become classes: DUT's "
                   "veh a car, ped a person)")
    p.add_argument("--zones", help="zones/lines YAML in the data's units (metres for metric data)")
    p.add_argument("--predictor", choices=["auto", "lstm", "cv", "kalman"], help="forecaster (default from config)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML whose predictor: and events: sections apply")
    p.add_argument("--minutes", type=float, help="only the first minutes of each recording")
    p.add_argument("--min-lead", type=float, default=0.5, help="seconds of lead an announcement needs (default 0.5)")
    p.add_argument("--json", help="also write the numbers to this JSON file")


def cmd_eval_events(a: argparse.Namespace) -> int:
    import dataclasses
    import json

    from pipeline.core.config import EventsConfig, PredictorConfig, ZonesFileConfig, from_dict, load_yaml
    from pipeline.core.errors import UserError
    from pipeline.learning.loaders import load
    from pipeline.learning.event_eval import EvalSettings, evaluate_events, format_table

    if a.minutes is not None and not a.minutes > 0:
        raise UserError(f"--minutes must be > 0, got {a.minutes}")
    if not a.min_lead >= 0:
        raise UserError(f"--min-lead must be >= 0 seconds, got {a.min_lead}")
    _check_json_path(a.json)
    _input_paths(a.data, a.config, a.zones)
    data = load_yaml(a.config)
    pcfg = from_dict(PredictorConfig, data.get("predictor"), "predictor.")
    if a.predictor:
        pcfg = dataclasses.replace(pcfg, kind=a.predictor)
    ecfg = from_dict(EventsConfig, data.get("events"), "events.")
    if a.zones:
        z = _side_file(a.zones, ZonesFileConfig, "--zones")
        ecfg = dataclasses.replace(ecfg, zones=z.zones, lines=z.lines)
    trajs = load(a.format, a.data, "all")
    if not trajs:
        raise UserError(f"no trajectories in {a.data}; check --format")
    settings = EvalSettings(pcfg, ecfg, a.minutes, a.min_lead)
    res = evaluate_events(trajs, settings, lambda m: print(m, file=sys.stderr, flush=True))
    print(format_table(res, a.min_lead))
    if a.json:
        Path(a.json).expanduser().write_text(json.dumps(res, indent=1), encoding="utf-8")
        print(f"wrote {a.json}")
    return 0


def build_parser(prog: str = "trajpred") -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=prog, description="Video trajectory prediction: YOLO + tracker + LSTM.")
    sub = parser.add_subparsers(dest="command", required=True)
    _track_parser(sub)
    _live_parser(sub)
    _batch_parser(sub)
    _calibrate_parser(sub)
    _bench_parser(sub)
    _train_parser(sub)
    _eval_parser(sub)
    _bench_forecast_parser(sub)
    _eval_events_parser(sub)
    return parser


def main(argv: list[str] | None = None, prog: str = "trajpred") -> int:
    """Run one command (argv: the arguments after the program name; default sys.argv[1:]); returns the exit code."""
    from pipeline.core.errors import UserError

    sys.excepthook = _masked_excepthook
    args = build_parser(prog).parse_args(argv)
    handlers = {"track": cmd_track, "live": cmd_live, "bench": cmd_bench, "train": cmd_train, "eval": cmd_eval,
                "bench-forecast": cmd_bench_forecast, "batch": cmd_batch, "calibrate": cmd_calibrate,
                "eval-events": cmd_eval_events}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout piped into e.g. `head`: nothing left to tell
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m pipeline.apps.cli"))
