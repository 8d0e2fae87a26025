"""`train`: the trajectory LSTM on real trajectories, into a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.apps.cli import common

NAME = "train"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="train the trajectory LSTM on real trajectories",
        description="Train TrajectoryLSTM (seeded, early-stopped on validation ADE) and write a checkpoint that "
        "carries the model config, feature spec, normalisation statistics and training metadata. --data with "
        "--format trains on that data instead of the config's sources.",
        parents=[common.config(common.train_config()), common.data(required=False), common.epochs(), common.quiet()],
    )
    p.add_argument("--out", help="checkpoint path to write (default: the config's out)")
    p.add_argument("--overwrite", action="store_true", help="allow replacing an existing checkpoint file")
    p.add_argument("--seed", type=int, help="random seed")


def run(a: argparse.Namespace) -> int:
    from pipeline.core.config import from_dict, load_yaml
    from pipeline.core.errors import UserError
    from pipeline.learning.training import TrainConfig, train

    data = load_yaml(a.config)
    if a.data:
        if not a.format:
            raise UserError("--data needs --format (see run.py train --help)")
        data["train"], data["val"] = [{"format": a.format, "path": a.data}], []
    for key, value in (("epochs", a.epochs), ("out", a.out), ("seed", a.seed)):
        if value is not None:
            data[key] = value
    cfg = from_dict(TrainConfig, data)
    common.input_paths(a.config, *(s.path for s in cfg.train + cfg.val))
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
