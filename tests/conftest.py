"""Shared paths to the real data and weights beside the checkout (../shared), the test tiers, and helpers.

Two markers sort the tests into tiers (`make test` runs them all, `make test-fast` neither):

- `realdata`: the test needs ../shared (its data sets, videos or detector weights). Marked automatically at
  collection: a test is realdata when its code, its fixtures' code, or the test-module helpers and constants
  they use (followed through every call) name one of this file's shared paths (SHARED, DATA, VIDEOS, DETECTOR,
  VTEST) or hold a path under ../shared, or when one of its parametrized values is such a path. What that
  cannot see (a default that points into ../shared) is marked by hand with `pytest.mark.realdata`. Without
  ../shared every realdata test is skipped, with the reason; the others still run. The sample clip and the
  weights shipped inside the repo (samples/, weights/) are not realdata.
- `slow`: over ~5 s on a 2-core machine (measured with `pytest --durations=0`), marked by hand.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import types
from pathlib import Path, PurePath

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
VIDEOS = DATA / "videos"
DETECTOR = SHARED / "weights" / "yolo11n_int8_openvino_model"
VTEST = VIDEOS / "vtest_pets2009_480x360.avi"
LSTM_CKPT = ROOT / "weights" / "traj_lstm.pt"
SAMPLE = ROOT / "samples" / "people_walking_768x432.mp4"  # shipped in the repo: not realdata
SHIPPED_DETECTOR = ROOT / "weights" / "yolo11n_int8_dynamic_openvino_model"  # the default detector, shipped too

HAVE_SHARED = DATA.is_dir() and DETECTOR.is_dir()
SHARED_NAMES = frozenset({"SHARED", "DATA", "VIDEOS", "DETECTOR", "VTEST"})
NO_SHARED = f"realdata: needs the shared data and weights at {SHARED} (../shared beside the checkout)"

os.environ.setdefault("YOLO_OFFLINE", "1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "realdata: needs ../shared (data, videos or weights); skipped without it")
    config.addinivalue_line("markers", "slow: takes over ~5 s on a 2-core machine (deselect: -m 'not slow')")


def _is_shared(value: object, depth: int = 0) -> bool:
    """A path (or a string, or a list or tuple of them) under ../shared."""
    if isinstance(value, (str, PurePath)):
        s = str(value)
        return str(SHARED) in s or "../shared/" in s
    if isinstance(value, (list, tuple)) and depth < 3:
        return any(_is_shared(v, depth + 1) for v in value)
    return False


def _codes(code: types.CodeType):
    """A code object and the ones nested in it (inner functions, lambdas, comprehensions)."""
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _codes(c)


_USES: dict[int, bool] = {}


def _uses_shared(obj: object) -> bool:
    """Whether a function or class of the test suite refers to ../shared, directly or through what it uses."""
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if not getattr(obj, "__module__", "").startswith("tests"):
        return False  # pipeline code, libraries, modules: their defaults are for marking by hand
    key = id(obj)
    if key in _USES:
        return _USES[key]
    _USES[key] = False  # a cycle (a recursive helper) adds nothing
    if inspect.isclass(obj):
        found = any(_uses_shared(v) for v in vars(obj).values() if inspect.isfunction(v))
    elif inspect.isfunction(obj):
        g = obj.__globals__
        defaults = (*(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values())
        found = any(_is_shared(d) for d in defaults) or any(
            any(isinstance(c, str) and _is_shared(c) for c in code.co_consts)
            or any(n in SHARED_NAMES or (n in g and (_is_shared(g[n]) or _uses_shared(g[n]))) for n in code.co_names)
            for code in _codes(obj.__code__))
    else:
        found = False
    _USES[key] = found
    return found


def _needs_shared(item: pytest.Function) -> bool:
    if item.get_closest_marker("realdata") is not None:
        return True
    callspec = getattr(item, "callspec", None)
    if callspec is not None and any(_is_shared(v) for v in callspec.params.values()):
        return True
    if _uses_shared(item.function):
        return True
    defs = item._fixtureinfo.name2fixturedefs
    return any(_uses_shared(d.func) for name in item.fixturenames for d in defs.get(name, ()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and _needs_shared(item):
            if item.get_closest_marker("realdata") is None:
                item.add_marker(pytest.mark.realdata)
            if not HAVE_SHARED:
                item.add_marker(pytest.mark.skip(reason=NO_SHARED))


def run_cli(*args: str, timeout: float = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python run.py ...` as a user would; returns the completed process (text output)."""
    env = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )
