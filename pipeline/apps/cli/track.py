"""`track`: the full pipeline on one video file, into a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.apps.cli import common

NAME = "track"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="detect, track and forecast on a video file",
        description="Run the full pipeline on a video file and write an annotated video, tracks.csv and "
        "predictions.csv into a run folder (runs/track/expN unless --out is given).",
        parents=[common.video_source(), *common.run_groups(), common.file_outputs()],
    )
    p.add_argument("--vid-stride", type=int, help="process every Nth frame of the video (default 1: all)")
    p.add_argument("--project", help="parent folder of the run folder (default runs/track), as in ultralytics")
    p.add_argument("--name", default="exp", help="run folder name under --project: NAME, NAME2, ... (default exp)")
    p.add_argument("--exist-ok", action="store_true",
                   help="write into --project/--name even if it exists (replacing this program's files there)")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window (q quits)")


def run_config(a: argparse.Namespace) -> Any:
    """The run's config: the YAML file, then the flags, then --camera and --zones."""
    from pipeline.core.config import merge
    from pipeline.core.errors import UserError

    overrides = merge(common.run_overrides(a), common.file_output_overrides(a))
    if a.vid_stride is not None:
        if a.vid_stride < 1:
            raise UserError(f"--vid-stride must be >= 1 (1 processes every frame), got {a.vid_stride}")
        overrides["input"] = {"vid_stride": a.vid_stride}
    return common.with_events(common.load_config(a.config, overrides), a.camera, a.zones)


def run(a: argparse.Namespace) -> int:
    from pipeline.apps.track_run import partial_input_error, run_track
    from pipeline.core.errors import UserError
    from pipeline.core.redact import mask_credentials
    from pipeline.io.run_dirs import RunDir, choose_run_dir

    if a.max_frames is not None and a.max_frames < 1:
        raise UserError("--max-frames must be >= 1")
    cfg = run_config(a)
    common.require_format(cfg)
    inputs = common.input_paths(a.source, a.config, cfg.detector.weights, cfg.predictor.weights, a.camera, a.zones,
                                a.tracker)
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
