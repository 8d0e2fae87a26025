"""`bench`: our pipeline timed against ultralytics' predict and track loops on the same frames and weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.apps.cli import common

NAME = "bench"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="time our pipeline against ultralytics' predict and track loops",
        description="On the same frames and weights, in one process: (i) decoding alone, (n) the bare network on "
        "our letterboxed input (OpenVINO exports), (a) ultralytics predict loop, (b) model.track loop, (c) our "
        "full track pipeline with outputs (and c' with the speed options off), (d) the predictor alone for 1, 10, "
        "100 tracks; then the start-up of a fresh process to its first frame. Prints the CPU and its instruction "
        "sets, ms/frame (median over repeats after a warm-up), fps, peak RSS, the (b)/(c) speed-up and (c)/(n); "
        "--json writes the rows, ratios, machine and start-up too.",
        parents=[common.video_source(), common.config(common.DEFAULT_CONFIG), common.weights(), common.device(),
                 common.json_out()],
    )
    p.add_argument("--frames", type=int, default=150, help="frames per repeat (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats after one warm-up (default: %(default)s)")
    p.add_argument("--soak", type=int, default=0, help="instead: loop the video this many times and print RSS over time")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up measurement (a fresh process)")


def run(a: argparse.Namespace) -> int:
    from pipeline.apps.bench import format_result, run_bench, soak, write_json
    from pipeline.core.config import TrackRunConfig, from_dict, load_yaml, merge
    from pipeline.core.errors import UserError

    if a.frames < 10 or a.repeats < 1:
        raise UserError("--frames must be >= 10 and --repeats >= 1")
    cfg = from_dict(TrackRunConfig, merge(load_yaml(a.config), {"detector": common.detector_overrides(a)}))
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
