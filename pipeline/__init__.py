"""Trajectory forecasts for tracked objects in video: detector -> tracker -> forecasts -> events -> outputs.

The public API (`from pipeline import Forecaster, Forecasts, Events`) is loaded on first use, so importing a
submodule (e.g. `pipeline.core.config`) does not pull in torch and OpenCV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.core.version import __version__ as __version__

__all__ = ["Event", "Events", "Forecaster", "Forecasts", "Tracks"]

if TYPE_CHECKING:
    from pipeline.api import Events, Forecaster
    from pipeline.core.types import Forecasts, Tracks
    from pipeline.events.types import Event

_WHERE = {"Forecaster": "pipeline.api", "Events": "pipeline.api", "Forecasts": "pipeline.core.types",
          "Tracks": "pipeline.core.types", "Event": "pipeline.events.types"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
