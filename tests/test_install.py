"""Installable: pyproject.toml agrees with the pinned lock, the shipped files are found as package data, and a
wheel installed into a fresh environment runs `trajpred` from a folder outside the checkout."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from pipeline.core import resources
from tests.conftest import ROOT

SAMPLE = ROOT / "samples" / "people_walking_768x432.mp4"
SHIPPED = ("default.yaml", "traj_lstm.pt", "yolo11n_int8_dynamic_openvino_model", "WEIGHTS.md")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def test_pyproject_lower_bounds_agree_with_the_pinned_requirements():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        req = line.split("#", 1)[0].strip()
        if req:
            name, version = req.split("==")
            pins[_norm(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = {}
    for req in project["dependencies"] + [r for reqs in extras.values() for r in reqs if not r.startswith("trajpred")]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(?:,<([0-9.]+))?", req)
        assert m, f"{req}: a lower bound (>=), and maybe an upper one (<), is expected"
        name = _norm(m[1])
        assert name in pins, f"{req} is not pinned in requirements.txt"
        pinned = _version(pins[name])
        assert _version(m[2]) <= pinned < _version(m[3] or "99999"), f"{req}: requirements.txt pins {pins[name]}"
        declared[name] = m[2]
    assert set(pins) - set(declared) == {"setuptools"}, "every pin but the build tool belongs to the package or an extra"
    assert extras["all"] == [f"trajpred[{','.join(k for k in extras if k != 'all')}]"]
    assert project["scripts"] == {"trajpred": "pipeline.apps.cli:main"}


def test_shipped_files_are_package_data_linked_to_the_checkout_copies():
    data = ROOT / "pipeline" / "data"
    for name in SHIPPED:
        assert (data / name).is_symlink() and (data / name).exists(), f"pipeline/data/{name} must link the checkout's"
    assert resources.data_dir() == data
    assert resources.default_config() == ROOT / "configs" / "default.yaml"
    assert (data / "default.yaml").resolve() == (ROOT / "configs" / "default.yaml").resolve()
    assert resources.shipped("weights/traj_lstm.pt").resolve() == (ROOT / "weights" / "traj_lstm.pt").resolve()
    assert resources.shipped("yolo11n_int8_dynamic_openvino_model") == data / "yolo11n_int8_dynamic_openvino_model"
    assert resources.shipped("runs/traj_lstm.pt") is None and resources.shipped("nothing.pt") is None
    assert resources.checkout_root() == ROOT


def test_an_installed_copy_finds_the_shipped_weights_from_any_folder(tmp_path, monkeypatch):
    from pipeline.forecast.predictors import resolve_checkpoint
    from pipeline.io.run_meta import git_commit
    from pipeline.perception.detector import resolve_weights

    monkeypatch.setattr(resources, "checkout_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert resources.default_config() == resources.data_dir() / "default.yaml"
    assert resolve_checkpoint("weights/traj_lstm.pt") == str(resources.data_dir() / "traj_lstm.pt")
    assert resolve_checkpoint("mine.pt") == "mine.pt"  # not found: the loader says so
    det = "yolo11n_int8_dynamic_openvino_model"
    assert resolve_weights(det) == str(resources.data_dir() / det)
    assert resolve_weights("yolo11n.pt") == "yolo11n.pt"  # a name left to ultralytics
    assert git_commit() is None


@pytest.mark.parametrize(("argv", "extra"), [
    (["track", "--source", str(SAMPLE), "--format", "parquet"], "parquet"),
    (["batch", "--source", str(SAMPLE.parent), "--out", "b"], "batch"),
    (["live", "--no-show", "--max-seconds", "1"], "live"),
])
def test_a_missing_extra_is_one_line_naming_it(argv, extra, tmp_path, monkeypatch, capsys):
    from pipeline.apps.cli import main

    monkeypatch.chdir(tmp_path)
    for module in ("pyarrow", "ray", "paho"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed: find_spec says None
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"pip install 'trajpred[{extra}]'" in err, err
    assert not any(tmp_path.iterdir())


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}"
    return proc


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    """Build the wheel from a copy of the sources, install it (no dependencies) into a fresh venv that sees this
    environment's packages, and run `trajpred` from a folder outside the checkout: the packaged default config,
    the shipped detector and LSTM, no file of the checkout."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "pipeline", src / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))  # links: files
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["YOLO_OFFLINE"] = "1"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
          src], tmp_path, env)
    wheel = next((tmp_path / "dist").glob("trajpred-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path, env).stdout.strip())
    (site / "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # the dependencies: this environment's
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel], tmp_path, env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    version = _run([py, "-c", "import pipeline; print(pipeline.__version__); print(pipeline.__file__)"], work, env)
    found_version, found_at = version.stdout.split()
    from pipeline.core.version import __version__

    assert found_version == __version__ and Path(found_at).is_relative_to(site)
    usage = _run([venv / "bin" / "trajpred", "--help"], work, env).stdout
    assert usage.startswith("usage: trajpred") and "eval-events" in usage
    _run([venv / "bin" / "trajpred", "track", "--source", SAMPLE, "--max-frames", "10", "--out", work / "run",
          "--quiet"], work, env)
    assert len((work / "run" / "tracks.csv").read_text().splitlines()) > 1
    record = json.loads((work / "run" / "run.json").read_text())
    roles = {w["role"] for w in record["weights"]}
    assert roles == {"detector", "predictor"}
    for w in record["weights"]:
        assert Path(w["path"]).is_relative_to(site / "pipeline" / "data") and w["sha256"], w
    assert record["program"]["version"] == __version__ and record["program"]["git_commit"] is None
