"""Bad input: a one-line error, a non-zero exit, no traceback (each case a user actually hits)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from tests.conftest import DETECTOR, VIDEOS, VTEST, run_cli


def _one_line_error(proc, code: int = 2, match: str = "") -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert match in lines[0], lines[0]
    return lines[0]


def _track(*args: str, out: Path | None = None):
    extra = ["--out", str(out)] if out else []
    return run_cli("track", "--weights", str(DETECTOR), "--predictor", "cv", "--quiet", *extra, *args)


def test_missing_source(tmp_path):
    _one_line_error(_track("--source", str(tmp_path / "nope.mp4")), match="video not found")


def test_directory_source(tmp_path):
    _one_line_error(_track("--source", str(tmp_path)), match="is a directory")


def test_non_video_file(tmp_path):
    f = tmp_path / "notes.mp4"
    f.write_text("this is text, not a video\n")
    _one_line_error(_track("--source", str(f)), match="cannot be opened as a video")


def test_zero_frame_video(tmp_path):
    f = tmp_path / "empty.avi"
    w = cv2.VideoWriter(str(f), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    w.release()
    proc = _track("--source", str(f), out=tmp_path / "o")
    _one_line_error(proc)
    assert "video" in proc.stderr


def test_truncated_video_processes_what_decodes(tmp_path):
    data = VTEST.read_bytes()
    f = tmp_path / "truncated.avi"
    f.write_bytes(data[: int(len(data) * 0.3)])
    out = tmp_path / "o"
    proc = _track("--source", str(f), "--no-video", out=out)
    line = _one_line_error(proc, code=3, match="of the 795 frames")
    read = int(line.split("ended after ")[1].split()[0])
    assert 100 < read < 795
    assert f"processed {read} frames" in proc.stdout
    rows = (out / "tracks.csv").read_text().splitlines()
    assert max(int(r.split(",")[0]) for r in rows[1:]) == read - 1


def test_truncated_mp4_cannot_open(tmp_path):
    data = (VIDEOS / "street_traffic_640x360.mp4").read_bytes()
    f = tmp_path / "cut.mp4"
    f.write_bytes(data[: len(data) // 2])
    _one_line_error(_track("--source", str(f)), match="truncated/corrupt")


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_error(_track("--source", str(VTEST), out=blocker / "run"), match="cannot create output folder")


def test_existing_run_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "tracks.csv").write_text("old results\n")
    _one_line_error(_track("--source", str(VTEST), out=out), match="--overwrite")
    assert (out / "tracks.csv").read_text() == "old results\n"
    proc = _track("--source", str(VTEST), "--overwrite", "--max-frames", "3", "--no-video", out=out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "tracks.csv").read_text().startswith("frame,time_s")


def test_unknown_class(tmp_path):
    _one_line_error(_track("--source", str(VTEST), "--classes", "person,unicorn", out=tmp_path / "o"), match="unicorn")


def test_bad_config_value(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("detector:\n  conf: 2.0\n")
    _one_line_error(_track("--source", str(VTEST), "--config", str(cfg)), match="detector.conf")
    cfg.write_text("tracker:\n  kind: sort\n")
    _one_line_error(_track("--source", str(VTEST), "--config", str(cfg)), match="unknown config key 'tracker.kind'")


def test_missing_and_incompatible_detector_weights(tmp_path):
    proc = run_cli("track", "--source", str(VTEST), "--weights", str(tmp_path / "missing" / "m.pt"), "--predictor", "cv")
    _one_line_error(proc, match="detector weights not found")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    proc = run_cli("track", "--source", str(VTEST), "--weights", str(junk), "--predictor", "cv", "--out", str(tmp_path / "o"))
    _one_line_error(proc, match="cannot load detector weights")
    assert not (tmp_path / "o").exists()  # nothing created for a run that could not start


def test_offline_without_weights_says_where_to_put_them(tmp_path):
    proc = run_cli("track", "--source", str(VTEST), "--weights", "yolo11n.pt", "--predictor", "cv",
                   "--out", str(tmp_path / "o"), cwd=tmp_path)
    _one_line_error(proc, match="--weights PATH")


def test_missing_lstm_checkpoint(tmp_path):
    proc = run_cli("track", "--source", str(VTEST), "--weights", str(DETECTOR), "--lstm-weights",
                   str(tmp_path / "none.pt"), "--out", str(tmp_path / "o"))
    _one_line_error(proc, match="LSTM checkpoint not found")


def test_show_without_display(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    _one_line_error(_track("--source", str(VTEST), "--show", out=tmp_path / "o"), match="without --show")


@pytest.mark.skipif(shutil.which("chmod") is None, reason="needs chmod")
def test_unreadable_source(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    f = tmp_path / "v.avi"
    f.write_bytes(VTEST.read_bytes())
    f.chmod(0)
    _one_line_error(_track("--source", str(f)), match="cannot read")


class _Payload:
    """Pickles as a call to os.system: what a hostile checkpoint does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


class _EvalPayload(_Payload):
    def __reduce__(self):
        return (eval, (f"__import__('os').system({self.command!r})",))


@pytest.mark.parametrize("payload", [_Payload, _EvalPayload])
def test_crafted_detector_checkpoint_never_runs_code(tmp_path, payload):
    import torch

    from pipeline.config import DetectorConfig
    from pipeline.detector import YoloDetector
    from pipeline.errors import UserError

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": payload(f"touch {marker}"), "train_args": {}}, evil)
    with pytest.raises(UserError, match="refusing detector weights .* never allowed to run code"):
        YoloDetector(DetectorConfig(weights=str(evil)))
    assert not marker.exists()


def test_real_detector_checkpoint_still_loads(tmp_path):
    """A genuine ultralytics .pt (built from the bundled yolo11n.yaml, no download) passes the check and loads."""
    from ultralytics import YOLO

    from pipeline.config import DetectorConfig
    from pipeline.detector import YoloDetector

    pt = tmp_path / "y.pt"
    YOLO("yolo11n.yaml").save(pt)
    assert len(YoloDetector(DetectorConfig(weights=str(pt), classes=[])).names) == 80
