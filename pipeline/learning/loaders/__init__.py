"""One small loader per trajectory source, each reading the data as it is distributed in ../shared/data.

Every loader module has `load(path: Path, skipped: Counter[str]) -> list[Trajectory]`: it opens the file,
folder or archive as distributed, converts to seconds and metres (or pixels with boxes), drops what the format
marks as lost / occluded / generated or what is not finite (counting each reason in `skipped`), and raises a
one-line `UserError` naming the file and line for a malformed input. Keys are `<source>/<scene>[/<rec>]:<id>`,
so everything before the last ':' names one recording (neighbours) and the first part the source.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import UserError
from pipeline.learning.loaders.ethucy import load_ethucy
from pipeline.learning.loaders.jaad import load_jaad
from pipeline.learning.loaders.mot import load_mot
from pipeline.learning.loaders.tracks import load_tracks_csv

if TYPE_CHECKING:
    from pipeline.learning.datasets import Trajectory

LOADERS = ("sdd", "gc", "dut", "trajnetpp", "edinburgh")
FORMATS = ("ethucy", "jaad", "mot", "tracks", *LOADERS)


def load_source(name: str, path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """Import the named loader only when it is used (some read large archives)."""
    module = importlib.import_module(f"pipeline.learning.loaders.{name}")
    return module.load(path, skipped)


def load(fmt: str, path: str | Path, split: str = "test", skipped: Counter[str] | None = None) -> list[Trajectory]:
    """Dispatch on a format name (see FORMATS); `skipped` counts rows dropped, by reason."""
    skipped = Counter() if skipped is None else skipped
    loaders: dict[str, Callable[[], list[Trajectory]]] = {
        "ethucy": lambda: load_ethucy(path, skipped=skipped),
        "jaad": lambda: load_jaad(path, split),
        "mot": lambda: load_mot(path, skipped=skipped),
        "tracks": lambda: load_tracks_csv(path, skipped=skipped),
        **{name: partial(load_source, name, Path(path), skipped) for name in LOADERS},
    }
    if fmt not in loaders:
        raise UserError(f"unknown data format {fmt!r}; use one of {', '.join(FORMATS)}")
    trajs = loaders[fmt]()
    if not trajs:
        raise UserError(f"no trajectories found in {path} (format {fmt})")
    return trajs
