"""What the verbs share: the `--config` defaults, the argparse parent groups of shared flags, and the flags ->
config plumbing.

Every flag is declared once: here when several verbs have it (a parent group each verb picks), else in the one
verb module that has it. A verb's namespace therefore holds exactly its groups' flags, and the functions below
read only the groups they are named after (`run_overrides` the groups every run verb has), never with a
`getattr(..., default)` fallback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import stat
from pathlib import Path
from typing import Any

from pipeline.core import resources

DEFAULT_CONFIG = resources.default_config()  # configs/default.yaml in a checkout, else the packaged copy
DEFAULT_LSTM = "weights/traj_lstm.pt"  # the shipped universal model (resolved by the predictors)
_DISTRIBUTIONS = {"paho": "paho-mqtt"}  # import name -> what pip installs, where they differ


def train_config() -> Path:
    """The training YAML `train` and `bench-forecast` default to (configs/train.yaml of the checkout)."""
    return resources.project_or_cwd() / "configs" / "train.yaml"


def group() -> argparse.ArgumentParser:
    """An empty parent group (a verb's own flags that must come first in its --help, e.g. --source)."""
    return argparse.ArgumentParser(add_help=False)


# --- parent groups: each a function, so a verb's parser gets its own copy ----------------------------------------

def config(default: Path) -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--config", default=str(default), help="YAML config (default: %(default)s)")
    return p


def video_source() -> argparse.ArgumentParser:
    """track and bench: one video file."""
    p = group()
    p.add_argument("--source", required=True, help="video file to process")
    return p


def weights() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--weights", help="detector weights: .pt, *_openvino_model/ or .onnx (default from config)")
    return p


def detection() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--classes", help="comma-separated class names to keep, e.g. person,car ('all' for every class)")
    p.add_argument("--conf", type=float, help="detection confidence threshold")
    p.add_argument("--iou", type=float, help="NMS IoU threshold of the detector, (0, 1)")
    p.add_argument("--imgsz", type=int, help="detector input size (640 for the OpenVINO exports)")
    return p


def device() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--device", help="auto (default: cuda:0 for .pt weights when a GPU is seen, else cpu), cpu or cuda:N")
    p.add_argument("--half", action="store_true", help="FP16 inference (.pt weights on CUDA only; ignored with a warning "
                   "elsewhere)")
    return p


def tracker() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--tracker", help="bytetrack or botsort, or an ultralytics tracker YAML (e.g. a tuned botsort.yaml)")
    return p


def predictor() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--predictor", choices=["auto", "lstm", "cv", "kalman"],
                   help="forecaster (default from config, auto: all three scored online, the best on this camera served)")
    return p


def lstm_weights() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--lstm-weights", help=f"TrajectoryLSTM checkpoint (default {DEFAULT_LSTM}, the universal model)")
    return p


def horizon() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--horizon", type=float, help="forecast horizon in seconds")
    return p


def run_folder() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--out", help="run folder to write (default: next runs/<command>/expN)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to point at an existing run")
    return p


def quiet() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def camera(required: bool = False) -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--camera", required=required, help="camera calibration YAML (image_points + world_points, or a "
                   "scale; fit and check it with calibrate): adds ground metres and speeds")
    return p


def zones() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--zones", help="zones/lines YAML: zone entries, line crossings and alerts (pixels, or metres with "
                   "--camera or on metric data)")
    return p


def tables() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--format", choices=["csv", "parquet", "both"],
                   help="tables written: csv, parquet (typed columns, units in the schema) or both (default from config)")
    return p


def file_outputs() -> argparse.ArgumentParser:
    """track and batch: what a video file's run writes."""
    p = group()
    p.add_argument("--no-video", action="store_true", help="write only the tables, no annotated video")
    p.add_argument("--max-frames", type=int, help="stop (each video) after this many frames")
    p.add_argument("--save-txt", action="store_true", help="also write tracks.txt: MOTChallenge rows "
                   "frame,id,left,top,width,height,conf,-1,-1,-1 (frame from 1)")
    return p


def ray_address() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--address", help="run on this Ray cluster (e.g. ray://head:10001 or auto; --out must be shared); "
                   "live: with --source cameras.yaml")
    return p


def data(required: bool) -> argparse.ArgumentParser:
    """train, eval, eval-events: trajectory data and its format."""
    from pipeline.learning.loaders import FORMATS

    p = group()
    p.add_argument("--data", required=required, help="trajectory data: a file, folder or archive (see --format)")
    p.add_argument("--format", required=required, choices=FORMATS, help="format of --data")
    return p


def json_out() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--json", help="also write the numbers to this JSON file")
    return p


def epochs() -> argparse.ArgumentParser:
    p = group()
    p.add_argument("--epochs", type=int, help="maximum epochs (default: the config's)")
    return p


def run_groups() -> list[argparse.ArgumentParser]:
    """The groups every run verb (track, live, batch) has; `run_overrides` reads them."""
    return [config(DEFAULT_CONFIG), weights(), detection(), device(), tracker(), predictor(), lstm_weights(), horizon(),
            run_folder(), quiet(), camera(), zones(), tables()]


# --- flags -> config -----------------------------------------------------------------------------------------------

def detector_overrides(a: argparse.Namespace) -> dict[str, Any]:
    """--weights, --device, --half (the groups `weights` and `device`) as the config's detector: section."""
    det: dict[str, Any] = {}
    if a.weights:
        det["weights"] = a.weights
    if a.device is not None:
        det["device"] = a.device
    if a.half:
        det["half"] = True
    return det


def run_overrides(a: argparse.Namespace) -> dict[str, Any]:
    """The flags of `run_groups` as a config dict (only the flags given)."""
    from pipeline.core.errors import UserError

    det = detector_overrides(a)
    if a.classes is not None:
        names = [c.strip() for c in a.classes.split(",") if c.strip()]
        if not names:
            raise UserError(f"--classes lists no class names ({a.classes!r}); give e.g. person,car or all")
        det["classes"] = [] if names == ["all"] else names
    for key, value in (("conf", a.conf), ("iou", a.iou), ("imgsz", a.imgsz)):
        if value is not None:
            det[key] = value
    pred: dict[str, Any] = {}
    if a.predictor:
        pred["kind"] = a.predictor
    if a.lstm_weights:
        pred["weights"] = a.lstm_weights
    if a.horizon is not None:
        pred["horizon_s"] = a.horizon
    out: dict[str, Any] = {"detector": det, "predictor": pred}
    if a.tracker:
        out["tracker"] = tracker_option(a.tracker)
    if a.format:
        out["output"] = {"format": a.format}
    return out


def file_output_overrides(a: argparse.Namespace) -> dict[str, Any]:
    """--no-video and --save-txt (the group `file_outputs`) as the config's output: section."""
    output: dict[str, Any] = {}
    if a.no_video:
        output["video"] = False
    if a.save_txt:
        output["save_txt"] = True
    return {"output": output} if output else {}


def tracker_option(value: str) -> dict[str, Any]:
    """--tracker: a tracker name (also as ultralytics' file names bytetrack.yaml / botsort.yaml) or a YAML file."""
    from pipeline.core.config import load_yaml, tracker_from_ultralytics
    from pipeline.core.errors import UserError

    path = Path(value).expanduser()
    if path.is_file():
        input_paths(value)
        return tracker_from_ultralytics(load_yaml(path), value)
    name = value.removesuffix(".yaml")
    if name in ("bytetrack", "botsort"):
        return {"type": name}
    raise UserError(f"--tracker {value}: not bytetrack, botsort or an existing tracker YAML file")


def load_config(path: str, overrides: dict[str, Any]) -> Any:
    """The run config: the YAML file must be valid on its own (a flag must not hide `detector: 3`), then flags
    override it."""
    from pipeline.core.config import TrackRunConfig, from_dict, load_yaml, merge

    data = load_yaml(path)
    from_dict(TrackRunConfig, data)
    return from_dict(TrackRunConfig, merge(data, overrides))


def side_file(path: str, cls: type, flag: str) -> Any:
    """A --camera / --zones YAML file as its config dataclass; any problem is one line naming the file."""
    from pipeline.core.config import from_dict, load_yaml
    from pipeline.core.errors import UserError

    try:
        return from_dict(cls, load_yaml(path))
    except UserError as exc:
        msg = str(exc).replace("config file ", "").replace(f"{path} ", "")
        raise UserError(f"{flag} {path}: {msg}") from None


def with_events(cfg: Any, camera_file: str | None, zones_file: str | None) -> Any:
    """The run config with the camera calibration and zones/lines of --camera and --zones (YAML read here)."""
    from pipeline.core.config import CameraConfig, ZonesFileConfig

    ev = cfg.events
    if camera_file:
        ev = dataclasses.replace(ev, camera=side_file(camera_file, CameraConfig, "--camera"))
    if zones_file:
        zf = side_file(zones_file, ZonesFileConfig, "--zones")
        ev = dataclasses.replace(ev, zones=zf.zones, lines=zf.lines)
    return dataclasses.replace(cfg, events=ev)


def input_paths(*paths: str | None) -> list[Path]:
    """Files a run reads: outputs must never replace them, and a FIFO or socket among them would hang the run."""
    from pipeline.core.errors import UserError

    found = [Path(p).expanduser() for p in paths if p]
    for p in found:
        if p.exists() and (stat.S_ISFIFO(p.stat().st_mode) or stat.S_ISSOCK(p.stat().st_mode)):
            raise UserError(f"{p} is a FIFO or socket, not a file; pass a regular file")
    return found


def require(extra: str, what: str, *modules: str) -> None:
    """Optional packages (an install without that extra) missing: one line saying what to install."""
    from pipeline.core.errors import UserError

    missing = [_DISTRIBUTIONS.get(m, m) for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{what} needs {' and '.join(missing)}, not installed: pip install 'trajpred[{extra}]' "
                        "(or make setup in a checkout)")


def require_format(cfg: Any) -> None:
    """pyarrow, where the run writes Parquet."""
    if cfg.output.format != "csv":
        require("parquet", f"output format {cfg.output.format} (--format)", "pyarrow")


def check_json_path(path: str | None) -> None:
    """A --json output must go to a folder that exists (checked before any work is done)."""
    from pipeline.core.errors import UserError

    if path and not Path(path).expanduser().parent.is_dir():
        raise UserError(f"--json {path}: its folder does not exist; create it or pick another path")
