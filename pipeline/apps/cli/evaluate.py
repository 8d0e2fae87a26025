"""`eval`: the LSTM checkpoint and the tuned cv / kalman baselines on exactly the same windows of a data set."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.apps.cli import common

NAME = "eval"
METRIC_FORMATS = ("ethucy", "sdd", "gc", "dut", "trajnetpp", "edinburgh")  # loaders that give metres


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="compare lstm, cv and kalman on the same windows",
        description="Evaluate the LSTM checkpoint and the tuned cv / kalman baselines (--config's predictor: "
        "section) on exactly the same windows and print one table: ADE/FDE over the whole horizon and at 1, 2, 3 s "
        "(metres for metric data, pixels for boxes, or body heights with --body-heights), and the share of true "
        "positions inside each predictor's 1 and 2 sigma regions (a calibrated Gaussian: 0.39 and 0.86).",
        parents=[common.data(required=True), common.lstm_weights(), common.config(common.DEFAULT_CONFIG),
                 common.json_out()],
    )
    # the older spelling of --lstm-weights, kept working; --weights is the detector everywhere else
    p.add_argument("--weights", dest="lstm_weights", help=argparse.SUPPRESS)
    p.add_argument("--obs", type=int, help="observed steps (default: 8 for ethucy, else the checkpoint's)")
    p.add_argument("--pred", type=int, help="predicted steps (default: 12 for ethucy, else the checkpoint's)")
    p.add_argument("--split", default="test", help="JAAD split: train, val, test or all (default: test)")
    p.add_argument("--holdout", type=float, help="evaluate only the trajectories training held out at this fraction")
    p.add_argument("--methods", default="lstm,cv,kalman", help="comma-separated subset of lstm,cv,kalman")
    p.add_argument("--body-heights", action="store_true", help="errors in body heights (box height or 1.7 m)")


def _check_numbers(a: argparse.Namespace) -> None:
    """Numbers on eval's command line, checked before any data is read."""
    import math

    from pipeline.core.errors import UserError

    if a.holdout is not None and not (math.isfinite(a.holdout) and 0 < a.holdout < 1):
        raise UserError(f"--holdout must be a fraction in (0, 1), got {a.holdout}")
    if a.obs is not None and a.obs < 2:
        raise UserError(f"--obs must be >= 2 observed steps, got {a.obs}")
    if a.pred is not None and a.pred < 1:
        raise UserError(f"--pred must be >= 1 predicted step, got {a.pred}")
    common.check_json_path(a.json)


def _fit_lstm(a: argparse.Namespace, lstm: Any, spec: Any) -> Any:
    """The checkpoint, checked against the evaluation's grid and cut to its horizon."""
    from pipeline.core.errors import UserError

    if abs(lstm.step_s - spec.step_s) > 1e-6 or lstm.obs_len > spec.obs_len or lstm.spec.pred_len < spec.pred_len:
        raise UserError(
            f"{a.lstm_weights or common.DEFAULT_LSTM} was trained for {lstm.obs_len} -> {lstm.spec.pred_len} steps of "
            f"{lstm.step_s:g} s; this evaluation needs {spec.obs_len} -> {spec.pred_len} of {spec.step_s:g} s: "
            "pass a matching --lstm-weights or --obs/--pred"
        )
    lstm.horizon = spec.pred_len
    return lstm


def run(a: argparse.Namespace) -> int:
    import dataclasses
    import json
    from collections import Counter

    from pipeline.core.config import PredictorConfig, from_dict, load_yaml
    from pipeline.core.errors import UserError
    from pipeline.forecast.features import FeatureSpec
    from pipeline.forecast.predictors import LSTMPredictor, resolve_checkpoint
    from pipeline.learning.evaluation import ETHUCY, Protocol, evaluate, format_table, tuned_baselines
    from pipeline.learning.loaders import load
    from pipeline.learning.training import is_holdout

    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    if not methods or set(methods) - {"lstm", "cv", "kalman"}:
        raise UserError(f"--methods must list lstm, cv and/or kalman, got {a.methods!r}")
    _check_numbers(a)
    common.input_paths(a.data, a.config, a.lstm_weights or "")
    pcfg = from_dict(PredictorConfig, load_yaml(a.config).get("predictor"), "predictor.")
    lstm = LSTMPredictor(resolve_checkpoint(a.lstm_weights or common.DEFAULT_LSTM)) if "lstm" in methods else None
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
        preds = {"lstm": _fit_lstm(a, lstm, spec), **preds}
    results, n = evaluate(trajs, dataclasses.replace(proto, spec=spec),
                          {m: preds[m] for m in ["lstm", "cv", "kalman"] if m in methods}, a.body_heights)
    unit = "body heights" if a.body_heights else "metres" if a.format in METRIC_FORMATS else "pixels"
    print(format_table(results, n, unit))
    if a.json:
        Path(a.json).write_text(json.dumps({**results, "windows": n, "unit": unit}, indent=2))
    return 0
