"""Run configuration: dataclasses with documented defaults, validated on construction.

YAML files in `configs/` are read only by the CLI (`load_yaml` + `from_dict`); the rest of the code takes
these dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_args, get_origin, get_type_hints

import yaml

from pipeline.core.errors import UserError


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise UserError(f"config '{key}' {msg}")


@dataclass
class DetectorConfig:
    """YOLO detector settings (any format ultralytics loads: .pt, *_openvino_model/, .onnx)."""

    # path, a file/folder name in weights/, or a name ultralytics downloads when online (e.g. yolo11n.pt);
    # the default is shipped in weights/ so a first run needs no internet
    weights: str = "yolo11n_int8_dynamic_openvino_model"
    conf: float = 0.25  # minimum detection confidence
    iou: float = 0.7  # NMS IoU threshold
    imgsz: int = 640  # inference size; OpenVINO exports are fixed at 640
    device: str = "auto"  # "auto" (cuda:0 for .pt weights when torch sees a GPU, else cpu), "cpu", "cuda:N"
    classes: list[str] = field(default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck"])
    half: bool = False  # FP16 inference: only .pt weights on CUDA (ignored with a warning elsewhere: INT8 stays INT8)
    backend: str = "auto"  # "auto": our OpenVINO path for *_openvino_model folders, ultralytics for the rest; "ultralytics"
    rect: bool = True  # dynamic exports: letterbox to the stride only (1920x1080 -> 640x384), as ultralytics does for .pt
    infer_requests: int = 2  # OpenVINO requests in flight: frame N+1 is inferred while frame N is tracked and written
    cache_dir: str = ""  # OpenVINO compiled-model cache; "" = $XDG_CACHE_HOME or ~/.cache/trajectory-forecast/openvino, "off"

    def __post_init__(self) -> None:
        _check(0.0 < self.conf < 1.0, "detector.conf", f"must be in (0, 1), got {self.conf}")
        _check(0.0 < self.iou < 1.0, "detector.iou", f"must be in (0, 1), got {self.iou}")
        _check(self.imgsz >= 32 and self.imgsz % 32 == 0, "detector.imgsz", f"must be a multiple of 32, got {self.imgsz}")
        _check(self.backend in ("auto", "ultralytics"), "detector.backend", f"must be auto or ultralytics, got {self.backend!r}")
        _check(1 <= self.infer_requests <= 8, "detector.infer_requests", "must be 1..8")


@dataclass
class TrackerConfig:
    """Multi-object tracker: ultralytics' ByteTrack or BoT-SORT with their own parameters."""

    type: str = "bytetrack"  # "bytetrack" or "botsort"
    track_high_thresh: float = 0.25  # first-stage association confidence
    track_low_thresh: float = 0.1  # second-stage (low-score) association confidence
    new_track_thresh: float = 0.25  # confidence needed to start a new track
    track_buffer_s: float = 3.0  # seconds a lost track may be re-found before it is dropped
    match_thresh: float = 0.8  # association cost threshold
    fuse_score: bool = True  # fuse detection score into the IoU cost
    gmc_method: str = "none"  # BoT-SORT camera-motion compensation: none|sparseOptFlow|orb|sift|ecc
    proximity_thresh: float = 0.5  # BoT-SORT: min IoU for a track and a detection to count as near
    appearance_thresh: float = 0.8  # BoT-SORT: min appearance similarity (used only with re-identification)

    def __post_init__(self) -> None:
        _check(self.type in ("bytetrack", "botsort"), "tracker.type", f"must be bytetrack or botsort, got {self.type!r}")
        _check(self.track_buffer_s > 0, "tracker.track_buffer_s", "must be > 0")
        for k in ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh", "proximity_thresh",
                  "appearance_thresh"):
            v = getattr(self, k)
            _check(0.0 <= v <= 1.0, f"tracker.{k}", f"must be in [0, 1], got {v}")
        methods = ("none", "sparseOptFlow", "orb", "sift", "ecc")
        _check(self.gmc_method in methods, "tracker.gmc_method", f"must be one of {', '.join(methods)}")


@dataclass
class HistoryConfig:
    """Per-track history kept for features and trails (bounded in time and length)."""

    history_s: float = 6.0  # seconds of past boxes kept per track
    max_lost_s: float = 2.0  # a track unseen for longer than this is forgotten

    def __post_init__(self) -> None:
        _check(self.history_s > 0, "history.history_s", "must be > 0")
        _check(self.max_lost_s >= 0, "history.max_lost_s", "must be >= 0")


@dataclass
class PredictorConfig:
    """Which forecaster runs and how far ahead."""

    kind: str = "auto"  # "auto" (lstm, cv and kalman scored online, the best served), "lstm", "cv" or "kalman"
    weights: str = "weights/traj_lstm.pt"  # LSTM checkpoint (the universal model)
    horizon_s: float = 2.0  # how far ahead to forecast, seconds
    step_s: float = 0.4  # forecast/observation step for cv and kalman (the LSTM uses its checkpoint's)
    obs_steps: int = 6  # observed steps used by cv and kalman (the LSTM uses its checkpoint's)
    # Baseline settings tuned on the training sources by `run.py bench forecast` (see benchmarks/README.md):
    cv_steps: int = 3  # cv: velocity = displacement over the last cv_steps steps ...
    cv_gain: float = 0.95  # ... times this factor
    cv_std_rate: list[float] = field(default_factory=lambda: [0.226, 0.167])  # cv 1-sigma growth along/across, body heights/s
    kalman_meas_std: float = 0.02  # kalman: measurement noise, body heights
    kalman_accel_std: float = 0.1  # kalman: acceleration noise, body heights/s^2
    auto_warmup: int = 8  # auto: scored windows before the best member is served
    auto_fallback: str = "kalman"  # auto: the member served until then (the safe choice: lstm loses badly on some cameras)
    # tracks younger than the models' window (obs_steps - 1 steps, 2 s) but followed this long get a Kalman
    # forecast from what there is (0.8 s: 3 points), so alerts cover people soon after they appear; >= 2 s: off
    min_history_s: float = 0.8
    # spreads recalibrated on this camera from each predictor's own scored forecasts (causal, per step): the
    # written std holds 39.3 % of true positions, std2 86.5 %, after `recalibrate_warmup` points; false: trained
    recalibrate: bool = True
    recalibrate_window: int = 1000  # most recent scored points kept per predictor and step
    recalibrate_warmup: int = 30  # scored points at a step before its recalibrated spread is used

    def __post_init__(self) -> None:
        _check(self.kind in ("auto", "lstm", "cv", "kalman"), "predictor.kind",
               f"must be auto, lstm, cv or kalman, got {self.kind!r}")
        _check(self.auto_warmup >= 0, "predictor.auto_warmup", "must be >= 0")
        _check(self.auto_fallback in ("lstm", "cv", "kalman"), "predictor.auto_fallback", "must be lstm, cv or kalman")
        _check(self.horizon_s > 0, "predictor.horizon_s", "must be > 0")
        _check(self.step_s > 0, "predictor.step_s", "must be > 0")
        _check(self.obs_steps >= 2, "predictor.obs_steps", "must be >= 2")
        _check(1 <= self.cv_steps < self.obs_steps, "predictor.cv_steps", "must be 1..obs_steps-1")
        _check(self.cv_gain > 0, "predictor.cv_gain", "must be > 0")
        _check(len(self.cv_std_rate) == 2 and min(self.cv_std_rate) > 0, "predictor.cv_std_rate", "must be two numbers > 0")
        _check(self.kalman_meas_std > 0 and self.kalman_accel_std > 0, "predictor.kalman_*", "noise must be > 0")
        _check(self.recalibrate_window >= 1, "predictor.recalibrate_window", "must be >= 1")
        _check(1 <= self.recalibrate_warmup <= self.recalibrate_window, "predictor.recalibrate_warmup",
               "must be 1..recalibrate_window")
        _check(self.min_history_s >= self.step_s, "predictor.min_history_s",
               f"must be at least one step ({self.step_s:g} s): a velocity needs two points")


@dataclass
class OutputConfig:
    """What a run writes and draws."""

    video: bool = True  # write the annotated video
    codec: str = "h264"  # h264 (PyAV/libx264: small, browsers play it) or an OpenCV FourCC such as mp4v
    crf: int = 26  # h264 quality: 0 lossless .. 51 worst; +6 about halves the size, -6 doubles it
    preset: str = "auto"  # h264 speed/size: ultrafast .. veryslow; auto: veryfast up to 720p, ultrafast above
    trail_s: float = 2.0  # seconds of past positions drawn behind each object
    show_boxes: bool = False  # also a thin dashed forecast end box (off: the end marker reads clearer)
    show_speed: bool = False  # with --camera: each moving object's ground speed (km/h) in its label
    report: bool = True  # at the end: trajectories.png, heatmap.png and a self-contained report.html
    save_txt: bool = False  # also tracks.txt in MOTChallenge format (--save-txt)
    format: str = "csv"  # tables written: csv, parquet (typed, units in the schema; the CSVs removed at the end) or both

    def __post_init__(self) -> None:
        _check(self.codec == "h264" or len(self.codec) == 4, "output.codec",
               f"must be h264 or a 4-character FourCC such as mp4v, got {self.codec!r}")
        _check(isinstance(self.crf, int) and 0 <= self.crf <= 51, "output.crf", f"must be an integer 0..51, got {self.crf!r}")
        presets = ("auto", "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
        _check(self.preset in presets, "output.preset", f"must be one of {', '.join(presets)}, got {self.preset!r}")
        _check(self.trail_s >= 0, "output.trail_s", "must be >= 0")
        _check(self.format in ("csv", "parquet", "both"), "output.format", f"must be csv, parquet or both, got {self.format!r}")


@dataclass
class LiveConfig:
    """Live camera / stream behaviour."""

    reconnect_s: float = 10.0  # keep trying to reopen a dropped stream this long, then stop cleanly
    backoff_max_s: float = 2.0  # longest wait between reconnect attempts (starts at 0.1 s, doubles)
    record_fps: float = 0.0  # fps of recorded video; 0 uses the camera's reported fps (or 30)
    open_timeout_s: float = 10.0  # how long opening a stream URL may take

    def __post_init__(self) -> None:
        _check(self.reconnect_s >= 0, "live.reconnect_s", "must be >= 0")
        _check(self.backoff_max_s > 0, "live.backoff_max_s", "must be > 0")
        _check(self.record_fps >= 0, "live.record_fps", "must be >= 0")
        _check(self.open_timeout_s > 0, "live.open_timeout_s", "must be > 0")


@dataclass
class InputConfig:
    """How a video file is read."""

    vid_stride: int = 1  # process every Nth frame (ultralytics' --vid-stride); times, horizons stay in seconds

    def __post_init__(self) -> None:
        _check(isinstance(self.vid_stride, int) and 1 <= self.vid_stride <= 1000, "input.vid_stride",
               f"must be a whole number 1..1000, got {self.vid_stride!r}")


@dataclass
class SpeedConfig:
    """Throughput options; each gives exactly the same tracks as the simple path (tested)."""

    detect_ahead: int = 2  # frames decoded and detected ahead in a background thread (0: inline)
    threaded_io: bool = True  # draw, encode and write behind the main loop in a thread
    queue_frames: int = 4  # bound of the writer queue (frames held in memory)

    def __post_init__(self) -> None:
        _check(0 <= self.detect_ahead <= 16, "speed.detect_ahead", "must be 0..16")
        _check(1 <= self.queue_frames <= 64, "speed.queue_frames", "must be 1..64")


@dataclass
class CameraConfig:
    """Image-to-ground calibration (`--camera FILE.yaml`): >= 4 image/world point pairs, or a scale.

    Point pairs give a homography (any camera looking at a flat ground); a scale (`metres_per_pixel` or
    `pixels_per_metre`) suits an overhead camera looking straight down. World axes are the user's.
    """

    image_points: list[list[float]] = field(default_factory=list)  # [[u, v], ...] pixels of the video
    world_points: list[list[float]] = field(default_factory=list)  # [[x, y], ...] metres on the ground
    metres_per_pixel: float = 0.0  # overhead camera: ground metres per image pixel
    pixels_per_metre: float = 0.0  # the same, inverted (as in DUT's ratio files)
    ransac_threshold_m: float = 0.5  # a pair whose reprojection misses by more is an outlier (RANSAC)

    def __post_init__(self) -> None:
        modes = [bool(self.image_points or self.world_points), self.metres_per_pixel != 0, self.pixels_per_metre != 0]
        _check(sum(modes) == 1, "camera", "needs exactly one of: image_points + world_points, metres_per_pixel, "
               "pixels_per_metre")
        for k in ("image_points", "world_points"):
            pts = getattr(self, k)
            _check(all(len(p) == 2 for p in pts), f"camera.{k}", "must be a list of [x, y] pairs")
        _check(self.metres_per_pixel >= 0 and self.pixels_per_metre >= 0, "camera", "scales must be > 0")
        _check(self.ransac_threshold_m > 0, "camera.ransac_threshold_m", "must be > 0")


@dataclass
class ZoneConfig:
    """A named polygon (`--zones FILE.yaml`): pixels, or ground metres when a camera is calibrated."""

    name: str = ""
    polygon: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check(bool(self.name.strip()), "zones[].name", "must be a non-empty name")
        _check(len(self.polygon) >= 3 and all(len(p) == 2 for p in self.polygon), f"zone '{self.name}' polygon",
               f"must list at least 3 [x, y] points, got {self.polygon!r}")


@dataclass
class LineConfig:
    """A named line segment (`--zones FILE.yaml`), crossed in either direction."""

    name: str = ""
    points: list[list[float]] = field(default_factory=list)
    # names of its two crossings: from the left of points[0] -> points[1] to its right (looking along the line,
    # image y down: downwards for a line drawn left to right), then back; drawn as an arrow on the video
    directions: list[str] = field(default_factory=lambda: ["in", "out"])

    def __post_init__(self) -> None:
        _check(bool(self.name.strip()), "lines[].name", "must be a non-empty name")
        _check(len(self.directions) == 2 and all(isinstance(d, str) and d.strip() for d in self.directions)
               and self.directions[0] != self.directions[1], f"line '{self.name}' directions",
               f"must be two different names, e.g. [northbound, southbound], got {self.directions!r}")
        _check(len(self.points) == 2 and all(len(p) == 2 for p in self.points), f"line '{self.name}' points",
               f"must be exactly two [x, y] points, got {self.points!r}")


@dataclass
class ZonesFileConfig:
    """What a `--zones` file holds."""

    zones: list[ZoneConfig] = field(default_factory=list)
    lines: list[LineConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [z.name for z in self.zones] + [ln.name for ln in self.lines]
        dup = next((n for n in names if names.count(n) > 1), None)
        _check(dup is None, "zones", f"names must be unique; '{dup}' is used twice")
        _check(bool(names), "zones", "lists no zones and no lines")


# COCO class -> (length, width) of its ground footprint in metres, length along the heading (conflicts)
FOOTPRINT_M = {"person": (0.5, 0.5), "bicycle": (1.8, 0.6), "motorcycle": (2.2, 0.8), "car": (4.5, 1.8),
               "bus": (12.0, 2.5), "truck": (8.0, 2.5), "train": (20.0, 3.0)}


@dataclass
class EventsConfig:
    """Ground plane, zones, lines and conflicts (active only with --camera or --zones)."""

    camera: CameraConfig | None = None  # from --camera
    zones: list[ZoneConfig] = field(default_factory=list)  # from --zones
    lines: list[LineConfig] = field(default_factory=list)  # from --zones
    alert_probability: float = 0.5  # a predicted entry / crossing / conflict is reported at this probability
    # conflicts (SSAM): a collision course of the pair's footprints (constant velocity at each instant) with a
    # time to collision of at most conflict_ttc_s, and a post-encroachment time of at most pet_max_s
    conflict_ttc_s: float = 1.5
    pet_max_s: float = 5.0
    # footprints: per class (length, width) in metres with a camera; without one every object is a square of side
    # conflict_distance_bh / 2 (body heights); conflict_distance_m: how near forecasts must come to be checked
    footprints_m: dict[str, list[float]] = field(default_factory=lambda: {k: list(v) for k, v in FOOTPRINT_M.items()})
    conflict_distance_m: float = 1.0
    conflict_distance_bh: float = 0.5
    # what a forecast sample path must do to announce a conflict: "conflict" (the real conflicts' definitions along
    # it: the constant-velocity time to collision falls to conflict_ttc_s, or it reaches the other's spot within
    # serious_pet_s), "course" (the time to collision alone) or "meet" (the footprints meet)
    conflict_alert: str = "conflict"
    conflict_persist_s: float = 0.0  # a conflict alert is raised once its pair has been at alert_probability this long
    # which road users can be in conflict: "a-b" of groups (person, cyclist, vehicle) or class names, or ["all"];
    # conflict techniques count vehicle-pedestrian, vehicle-cyclist, vehicle-vehicle and cyclist-pedestrian
    conflict_pairs: list[str] = field(default_factory=lambda: ["vehicle-person", "vehicle-cyclist", "vehicle-vehicle",
                                                               "cyclist-person"])
    # conflicts.csv: serious when the time to collision fell below serious_ttc_s or the PET below serious_pet_s
    # (DOCTOR's are 1.5 s and 1 s; with SSAM's 1.5 s conflict threshold that would make every conflict serious),
    # else potential; paths crossing within serious_pet_s off a collision course are conflicts too (DOCTOR)
    serious_ttc_s: float = 1.0
    serious_pet_s: float = 1.0
    speed_window_s: float = 0.5  # ground speed smoothed over this many seconds
    samples: int = 64  # forecast samples drawn from each forecast's spread for probabilities
    score_tolerance_s: float = 0.5  # a predicted event counts as happened up to this long after its horizon
    # a line crossing / zone entry counts once the foot point is this far past the line or boundary (jitter
    # within the band counts nothing): body heights without a camera, metres with one
    hysteresis_bh: float = 0.1
    hysteresis_m: float = 0.15
    count_interval_s: float = 900.0  # counts.csv: one set of counts per this much video time (15 min), and totals
    # alert probabilities mapped to how often this run's own scored alerts of the kind came true (Platt, causal)
    recalibrate: bool = True
    recalibrate_window: int = 500  # most recent scored alerts per kind
    recalibrate_warmup: int = 20  # scored alerts of a kind before its probabilities are recalibrated

    def __post_init__(self) -> None:
        _check(0 < self.alert_probability <= 1, "events.alert_probability", "must be in (0, 1]")
        _check(self.conflict_distance_m > 0 and self.conflict_distance_bh > 0, "events.conflict_distance_*", "must be > 0")
        _check(self.pet_max_s > 0 and self.conflict_ttc_s > 0, "events.pet_max_s / conflict_ttc_s", "must be > 0 seconds")
        _check(self.serious_ttc_s <= self.conflict_ttc_s and self.serious_pet_s <= self.pet_max_s,
               "events.serious_*", "must not exceed conflict_ttc_s / pet_max_s (a serious conflict is a conflict)")
        _check(isinstance(self.footprints_m, dict) and all(
            isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) and x > 0 for x in v)
            for v in self.footprints_m.values()), "events.footprints_m",
            f"must map class names to [length, width] in metres, both > 0, got {self.footprints_m!r}")
        _check(self.serious_ttc_s > 0 and self.serious_pet_s > 0, "events.serious_*", "must be > 0 seconds")
        _check(self.conflict_pairs == ["all"] or (bool(self.conflict_pairs) and all(
            isinstance(p, str) and len(p.split("-", 1)) == 2 and all(p.split("-", 1)) for p in self.conflict_pairs)),
            "events.conflict_pairs", f"must be [all] or entries like vehicle-person (groups person, cyclist, vehicle or "
            f"class names), got {self.conflict_pairs!r}")
        _check(self.conflict_alert in ("conflict", "course", "meet"), "events.conflict_alert",
               f"must be conflict, course or meet, got {self.conflict_alert!r}")
        _check(self.conflict_persist_s >= 0, "events.conflict_persist_s", "must be >= 0 seconds")
        _check(self.speed_window_s > 0, "events.speed_window_s", "must be > 0")
        _check(1 <= self.samples <= 1000, "events.samples", "must be 1..1000")
        _check(self.score_tolerance_s >= 0, "events.score_tolerance_s", "must be >= 0")
        _check(self.hysteresis_bh >= 0 and self.hysteresis_m >= 0, "events.hysteresis_*", "must be >= 0")
        _check(self.count_interval_s > 0, "events.count_interval_s", "must be > 0 seconds")
        _check(self.recalibrate_window >= 1, "events.recalibrate_window", "must be >= 1")
        _check(1 <= self.recalibrate_warmup <= self.recalibrate_window, "events.recalibrate_warmup",
               "must be 1..recalibrate_window")

    @property
    def active(self) -> bool:
        return self.camera is not None or bool(self.zones or self.lines)


@dataclass
class TrackRunConfig:
    """Everything `run.py track` needs."""

    input: InputConfig = field(default_factory=InputConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    events: EventsConfig = field(default_factory=EventsConfig)


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert a YAML scalar to the declared type, or fail with the key named."""
    if typ is bool:
        _check(isinstance(value, bool), key, f"must be true or false, got {value!r}")
        return value
    if typ is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, f"must be an integer, got {value!r}")
        return value
    if typ is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        _check(ok, key, f"must be a number, got {value!r}")
        return float(value)
    if typ is str:
        _check(isinstance(value, str), key, f"must be a string, got {value!r}")
        return value
    if typ == list[float]:
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        _check(ok and all(math.isfinite(v) for v in value), key, f"must be a list of numbers, got {value!r}")
        return [float(v) for v in value]
    if typ == list[list[float]]:
        ok = isinstance(value, list) and all(isinstance(p, list) for p in value)
        _check(ok, key, f"must be a list of [x, y] points, got {value!r}")
        return [_coerce(p, list[float], f"{key}[{i}]") for i, p in enumerate(value)]
    if typ == dict[str, list[float]]:
        _check(isinstance(value, dict) and all(isinstance(k, str) for k in value), key,
               f"must map names to lists of numbers, got {value!r}")
        return {k: _coerce(v, list[float], f"{key}.{k}") for k, v in value.items()}
    if typ == list[str]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        _check(isinstance(value, list) and all(isinstance(v, str) for v in value), key, "must be a list of names")
        return list(value)
    raise TypeError(f"unsupported config type {typ}")


def from_dict(cls: type, data: dict[str, Any] | None, prefix: str = "") -> Any:
    """Build a (nested) config dataclass from a plain dict, rejecting unknown keys."""
    if data is None:  # an empty section (`detector:`); `detector: 0` or `false` is refused below, not ignored
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"config '{prefix.rstrip('.') or 'root'}' must be a section of key: value lines, got {data!r}; "
                        "see configs/default.yaml")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"unknown config key '{prefix}{unknown[0]}'; valid keys: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        typ = hints[name]
        optional = [t for t in get_args(typ) if t is not type(None)] if type(None) in get_args(typ) else []
        if len(optional) == 1 and dataclasses.is_dataclass(optional[0]):  # `camera: CameraConfig | None`
            kwargs[name] = None if value is None else from_dict(cast(type, optional[0]), value, f"{prefix}{name}.")
        elif dataclasses.is_dataclass(typ):
            kwargs[name] = from_dict(cast(type, typ), value, f"{prefix}{name}.")
        elif get_origin(typ) is list and dataclasses.is_dataclass(get_args(typ)[0]):
            _check(isinstance(value, list), f"{prefix}{name}", "must be a list of mappings")
            kwargs[name] = [from_dict(get_args(typ)[0], v, f"{prefix}{name}[{i}].") for i, v in enumerate(value)]
        else:
            kwargs[name] = _coerce(value, typ, f"{prefix}{name}")
    return cls(**kwargs)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; errors name the file and what to fix."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {p} must hold a mapping of sections (detector:, tracker:, ...)")
    return data


ULTRALYTICS_FPS = 30.0  # ultralytics builds its trackers with frame_rate=30: track_buffer frames mean 1/30 s each


def tracker_from_ultralytics(data: dict[str, Any], path: str) -> dict[str, Any]:
    """An ultralytics tracker YAML (its bytetrack.yaml / botsort.yaml keys) as our `tracker:` section.

    Users bring the file they tuned for `model.track(tracker=...)`; it means the same here. Keys we cannot honour
    (re-identification) are refused rather than silently ignored.
    """
    same = {"track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh", "fuse_score", "gmc_method",
            "proximity_thresh", "appearance_thresh"}
    known = same | {"tracker_type", "track_buffer", "with_reid", "model"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"tracker file {path}: unknown key(s) {', '.join(map(str, unknown))}; expected ultralytics' "
                        f"tracker keys ({', '.join(sorted(known))})")
    if data.get("with_reid"):
        raise UserError(f"tracker file {path}: with_reid is not supported here; set it to False")
    out: dict[str, Any] = {k: v for k, v in data.items() if k in same}
    if "tracker_type" in data:
        out["type"] = data["tracker_type"]
    if "track_buffer" in data:
        buf = data["track_buffer"]
        _check(isinstance(buf, int) and not isinstance(buf, bool) and buf > 0, "tracker.track_buffer",
               f"in {path} must be a whole number of frames > 0, got {buf!r}")
        out["track_buffer_s"] = buf / ULTRALYTICS_FPS
    return out


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two config dicts (override wins)."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
