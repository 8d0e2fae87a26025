"""`eval-events`: predicted conflicts and zone / line alerts scored on trajectory data, against what happened."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.apps.cli import common

NAME = "eval-events"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="score predicted conflicts (and zone / line alerts) on trajectory data",
        description="Replay a data set's trajectories in time order, at their own rate, through the same "
        "forecast -> events code as track (metric data: events in metres; labels become classes: DUT's veh a car, "
        "ped a person), once with --predictor and once with cv, and score each run's alerts against the events "
        "found afterwards in the real trajectories by the same definitions: precision, recall (real events announced "
        "at least --min-lead seconds before), median lead and the time-to-event error. --config's predictor: and "
        "events: sections apply.",
        parents=[common.data(required=True), common.zones(), common.predictor(), common.config(common.DEFAULT_CONFIG),
                 common.json_out()],
    )
    p.add_argument("--minutes", type=float, help="only the first minutes of each recording")
    p.add_argument("--min-lead", type=float, default=0.5, help="seconds of lead an announcement needs (default 0.5)")


def run(a: argparse.Namespace) -> int:
    import dataclasses
    import json

    from pipeline.core.config import EventsConfig, PredictorConfig, ZonesFileConfig, from_dict, load_yaml
    from pipeline.core.errors import UserError
    from pipeline.learning.event_eval import EvalSettings, evaluate_events, format_table
    from pipeline.learning.loaders import load

    if a.minutes is not None and not a.minutes > 0:
        raise UserError(f"--minutes must be > 0, got {a.minutes}")
    if not a.min_lead >= 0:
        raise UserError(f"--min-lead must be >= 0 seconds, got {a.min_lead}")
    common.check_json_path(a.json)
    common.input_paths(a.data, a.config, a.zones)
    data = load_yaml(a.config)
    pcfg = from_dict(PredictorConfig, data.get("predictor"), "predictor.")
    if a.predictor:
        pcfg = dataclasses.replace(pcfg, kind=a.predictor)
    ecfg = from_dict(EventsConfig, data.get("events"), "events.")
    if a.zones:
        z = common.side_file(a.zones, ZonesFileConfig, "--zones")
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
