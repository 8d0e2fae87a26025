"""Where the shipped files are: one place for the default config, the shipped weights and the checkout.

The package carries them in `pipeline/data/` (package data, found with importlib.resources, so an installed copy
works from any folder): `default.yaml`, `traj_lstm.pt` and the detector `yolo11n_int8_dynamic_openvino_model/`.
In a checkout those entries are links to the files users see and edit, `configs/default.yaml` and `weights/`,
so there is one copy of each; a wheel holds the files themselves.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
from importlib.resources import as_file, files
from pathlib import Path

DEFAULT_CONFIG = "default.yaml"
SHIPPED_LSTM = "traj_lstm.pt"
SHIPPED_DETECTOR = "yolo11n_int8_dynamic_openvino_model"

_extracted = contextlib.ExitStack()  # package data unpacked from a zip import lives as long as the process
atexit.register(_extracted.close)


@functools.cache
def data_dir() -> Path:
    """The package's data folder as a real folder."""
    data = files("pipeline") / "data"
    if isinstance(data, Path):
        return data
    return _extracted.enter_context(as_file(data))  # a zipped install: unpacked once


def default_config() -> Path:
    """The default YAML config (every key commented): configs/default.yaml in a checkout, else the packaged copy."""
    root = checkout_root()
    if root is not None and (root / "configs" / DEFAULT_CONFIG).is_file():
        return root / "configs" / DEFAULT_CONFIG  # the same file as pipeline/data/'s link, by the name users edit
    return data_dir() / DEFAULT_CONFIG


def shipped(name: str | Path) -> Path | None:
    """A shipped weights file or folder by name (`traj_lstm.pt`, also as `weights/traj_lstm.pt`), else None."""
    p = Path(name)
    if p.is_absolute() or p.parent not in (Path(), Path("weights")) or p.name in ("", DEFAULT_CONFIG):
        return None
    found = data_dir() / p.name
    return found if found.exists() else None


@functools.cache
def source_root() -> Path:
    """The folder the `pipeline` package is imported from: the checkout, or site-packages for an installed copy."""
    return Path(__file__).resolve().parents[2]


def checkout_root() -> Path | None:
    """The project checkout when the package runs from one (as `python run.py` or an editable install), else None."""
    root = source_root()
    return root if (root / "run.py").is_file() and (root / "pyproject.toml").is_file() else None


def weights_dirs() -> list[Path]:
    """Where detector weights are looked up by name: the checkout's weights/ (where users drop files), the shipped."""
    root = checkout_root()
    return ([root / "weights"] if root else []) + [data_dir()]


def weights_hint() -> str:
    """Where to put a weights file so a name finds it (for messages)."""
    root = checkout_root()
    return f"put the file in {root / 'weights'}/" if root else "put the file in the working directory"


def project_or_cwd() -> Path:
    """Defaults of checkout-only commands (train, bench-forecast): the checkout, else the working directory."""
    return checkout_root() or Path.cwd()
