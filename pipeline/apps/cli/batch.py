"""`batch`: `track` on many videos at once, on Ray, resumable, into one Parquet dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.apps.cli import common

NAME = "batch"


def add_parser(sub: argparse._SubParsersAction) -> None:
    source = common.group()
    source.add_argument("--source", required=True, help="folder of videos, glob pattern ('day1/*.mp4') or .txt list")
    p = sub.add_parser(
        NAME, help="many videos on Ray: one task per video, resumable, Parquet dataset",
        description="Run `track` on every video of a folder, glob or .txt list, several at a time on Ray (started in "
        "this process, or --address of a cluster). Each video gets --out/NAME (written under a temporary name, "
        "renamed when whole); batch.json records each video so a rerun skips the finished ones; "
        "--out/dataset holds all videos' tracks and forecasts as Parquet, partitioned by video. "
        "Exits 1 if any video failed.",
        parents=[source, *common.run_groups(), common.file_outputs(), common.ray_address()],
    )
    p.add_argument("--workers", type=int, help="videos at a time (default: the cores, or the cluster's CPUs)")
    p.add_argument("--force", action="store_true", help="redo every video, also those finished earlier")


def run(a: argparse.Namespace) -> int:
    from pipeline.apps.batch_run import BatchOptions, run_batch
    from pipeline.core.config import merge
    from pipeline.core.errors import UserError
    from pipeline.core.redact import mask_credentials

    if not a.out:
        raise UserError("batch needs --out DIR: one folder per video is written under it")
    if a.overwrite:
        raise UserError("batch replaces only its own video folders: use --force to redo the finished videos")
    if a.workers is not None and a.workers < 1:
        raise UserError(f"--workers must be >= 1, got {a.workers}")
    common.require("batch", "batch", "ray", "pyarrow")
    overrides = merge(common.run_overrides(a), common.file_output_overrides(a))
    cfg = common.with_events(common.load_config(a.config, overrides), a.camera, a.zones)
    common.input_paths(a.config, a.camera, a.zones)
    opts = BatchOptions(a.source, Path(a.out), a.workers or 0, a.address or "", a.force, a.quiet, a.max_frames)
    result = run_batch(opts, cfg)
    print(mask_credentials("\n".join(result.lines())))
    return 1 if result.failed else 0
