"""Shared paths to the real data and weights beside the checkout (../shared), and helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
VIDEOS = DATA / "videos"
DETECTOR = SHARED / "weights" / "yolo11n_int8_openvino_model"
VTEST = VIDEOS / "vtest_pets2009_480x360.avi"
LSTM_CKPT = ROOT / "weights" / "traj_lstm.pt"

os.environ.setdefault("YOLO_OFFLINE", "1")


def pytest_configure(config: pytest.Config) -> None:
    if not DATA.is_dir() or not DETECTOR.is_dir():
        raise pytest.UsageError(f"tests need the shared data and weights at {SHARED}")


def run_cli(*args: str, timeout: float = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python run.py ...` as a user would; returns the completed process (text output)."""
    env = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )
