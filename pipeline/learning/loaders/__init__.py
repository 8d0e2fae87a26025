"""One small loader per trajectory source, each reading the data as it is distributed in ../shared/data, and the
one registry of them (`FORMATS`, `load`).

Every loader module has `load(path: Path, skipped: Counter[str]) -> list[Trajectory]` (JAAD's also takes the
split: `SPLIT_FORMATS`): it opens the file, folder or archive as distributed, converts to seconds and metres (or
pixels with boxes), drops what the format marks as lost / occluded / generated or what is not finite (counting
each reason in `skipped`), and raises a one-line `UserError` naming the file and line for a malformed input.
Keys of the point sources are `<source>/<scene>[/<rec>]:<id>`, so everything before the last ':' names one
recording (neighbours) and the first part the source. A module is imported only when its format is loaded
(some read large archives).
"""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import UserError

if TYPE_CHECKING:
    from pipeline.learning.datasets import Trajectory

FORMATS = ("ethucy", "jaad", "mot", "tracks", "sdd", "gc", "dut", "trajnetpp", "edinburgh")  # = module names
SPLIT_FORMATS = frozenset({"jaad"})  # their load() also takes the split (train, val, test or all)


def load(fmt: str, path: str | Path, split: str = "test", skipped: Counter[str] | None = None) -> list[Trajectory]:
    """The trajectories of `path` in format `fmt` (see FORMATS); `skipped` counts rows dropped, by reason."""
    if fmt not in FORMATS:
        raise UserError(f"unknown data format {fmt!r}; use one of {', '.join(FORMATS)}")
    skipped = Counter() if skipped is None else skipped
    module = importlib.import_module(f"pipeline.learning.loaders.{fmt}")
    trajs: list[Trajectory] = (module.load(Path(path), skipped, split) if fmt in SPLIT_FORMATS
                               else module.load(Path(path), skipped))
    if not trajs:
        raise UserError(f"no trajectories found in {path} (format {fmt})")
    return trajs
