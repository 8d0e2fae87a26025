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
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.learning.datasets import Trajectory

LOADERS = ("sdd", "gc", "dut", "trajnetpp", "edinburgh")


def load_source(name: str, path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """Import the named loader only when it is used (some read large archives)."""
    module = importlib.import_module(f"pipeline.learning.loaders.{name}")
    return module.load(path, skipped)
