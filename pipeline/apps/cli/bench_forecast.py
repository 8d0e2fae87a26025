"""`bench-forecast`: the leave-one-source-out forecast benchmark over every trajectory source."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.apps.cli import common
from pipeline.core import resources

NAME = "bench-forecast"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="leave-one-source-out forecast benchmark (lstm vs tuned cv and kalman)",
        description="For every trajectory source in ../shared/data (and the shared videos' own tracks, from `make "
        "own-tracks`): tune cv and Kalman and train the LSTM on all the other sources, then score all three on the "
        "held-out one at 1, 2 and 3 s in body heights. Writes JSON (resumable: finished sources are kept) and prints "
        "a markdown table.",
        parents=[common.config(common.train_config()), common.epochs()],
    )
    root = resources.project_or_cwd()
    p.add_argument("--data-root", default=str(root.parent / "shared" / "data"), help="the shared data folder")
    p.add_argument("--out", default=str(root / "benchmarks" / "forecast_loso.json"), help="JSON results file")
    p.add_argument("--only", help="comma-separated source names to score (e.g. ethucy/eth,gc)")
    p.add_argument("--cap", type=int, default=2000, help="training windows per source per fold (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="redo the sources already in --out (default: keep them)")


def run(a: argparse.Namespace) -> int:
    from pipeline.core.config import from_dict, load_yaml
    from pipeline.learning.loso_bench import BenchConfig, format_table
    from pipeline.learning.loso_bench import run as run_bench
    from pipeline.learning.training import TrainConfig

    data = load_yaml(a.config)
    data["max_windows_per_source"] = a.cap
    if a.epochs is not None:
        data["epochs"] = a.epochs
    only = tuple(s.strip() for s in (a.only or "").split(",") if s.strip())
    cfg = BenchConfig(Path(a.data_root), resources.project_or_cwd(), from_dict(TrainConfig, data), only=only,
                      force=a.force)
    results = run_bench(cfg, Path(a.out), lambda s: print(s, file=sys.stderr, flush=True))
    print(format_table(results))
    return 0
