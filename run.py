#!/usr/bin/env python3
"""Command-line entry point: `python run.py track --source video.mp4` (see --help of each command).

This is the only place that reads argparse and YAML; the pipeline takes typed config dataclasses.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")  # no settings sync / pip auto-installs from ultralytics
os.environ.setdefault("YOLO_VERBOSE", "False")

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"


def _track_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track", help="detect, track and forecast on a video file",
        description="Run the full pipeline on a video file and write an annotated video, tracks.csv and "
        "predictions.csv into a run folder (runs/track/expN unless --out is given).",
    )
    p.add_argument("--source", required=True, help="video file to process")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    p.add_argument("--out", help="run folder to write (default: next runs/track/expN)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to point at an existing run")
    p.add_argument("--weights", help="detector weights: .pt, *_openvino_model/ or .onnx (default from config)")
    p.add_argument("--classes", help="comma-separated class names to keep, e.g. person,car ('all' for every class)")
    p.add_argument("--conf", type=float, help="detection confidence threshold")
    p.add_argument("--imgsz", type=int, help="detector input size (640 for the OpenVINO exports)")
    p.add_argument("--device", help="torch device for .pt weights: cpu, cuda:0, ...")
    p.add_argument("--tracker", choices=["bytetrack", "botsort"], help="tracker implementation")
    p.add_argument("--predictor", choices=["lstm", "cv", "kalman"], help="forecaster (default lstm)")
    p.add_argument("--lstm-weights", help="TrajectoryLSTM checkpoint (default weights/traj_lstm_pixels.pt)")
    p.add_argument("--horizon", type=float, help="forecast horizon in seconds")
    p.add_argument("--no-video", action="store_true", help="write only the CSVs, no annotated video")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window (q quits)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _track_overrides(a: argparse.Namespace) -> dict[str, Any]:
    """CLI flags as a config dict (only the flags given)."""
    det: dict[str, Any] = {}
    if a.weights:
        det["weights"] = a.weights
    if a.classes:
        det["classes"] = [] if a.classes.strip() == "all" else a.classes
    for key in ("conf", "imgsz", "device"):
        if getattr(a, key) is not None:
            det[key] = getattr(a, key)
    pred: dict[str, Any] = {}
    if a.predictor:
        pred["kind"] = a.predictor
    if a.lstm_weights:
        pred["weights"] = a.lstm_weights
    if a.horizon is not None:
        pred["horizon_s"] = a.horizon
    out: dict[str, Any] = {"detector": det, "predictor": pred}
    if a.tracker:
        out["tracker"] = {"type": a.tracker}
    if a.no_video:
        out["output"] = {"video": False}
    return out


def cmd_track(a: argparse.Namespace) -> int:
    from pipeline.config import TrackRunConfig, from_dict, load_yaml, merge
    from pipeline.errors import UserError
    from pipeline.outputs import prepare_run_dir
    from pipeline.track_run import partial_input_error, run_track

    if a.max_frames is not None and a.max_frames < 1:
        raise UserError("--max-frames must be >= 1")
    cfg = from_dict(TrackRunConfig, merge(load_yaml(a.config), _track_overrides(a)))
    out_dir = prepare_run_dir(a.out, a.overwrite)
    summary = run_track(a.source, out_dir, cfg, show=a.show, quiet=a.quiet, max_frames=a.max_frames)
    print("\n".join(summary.lines()))
    if summary.ended_early:
        raise partial_input_error(a.source, summary, out_dir)
    return 130 if summary.interrupted else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Video trajectory prediction: YOLO + tracker + LSTM.")
    sub = parser.add_subparsers(dest="command", required=True)
    _track_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipeline.errors import UserError

    args = build_parser().parse_args(argv)
    handlers = {"track": cmd_track}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
