"""Bad input: a one-line error, a non-zero exit, no traceback (each case a user actually hits)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from tests.conftest import SAMPLE, SHIPPED_DETECTOR, VIDEOS, VTEST, run_cli


def _one_line_error(proc, code: int = 2, match: str = "") -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert match in lines[0], lines[0]
    return lines[0]


def _track(*args: str, out: Path | None = None):
    extra = ["--out", str(out)] if out else []
    return run_cli("track", "--weights", str(SHIPPED_DETECTOR), "--predictor", "cv", "--quiet", *extra, *args)


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


@pytest.mark.slow
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
    _one_line_error(_track("--source", str(SAMPLE), out=blocker / "run"), match="cannot create output folder")


@pytest.mark.slow
def test_existing_run_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    proc = _track("--source", str(VTEST), "--max-frames", "2", "--no-video", out=out)
    assert proc.returncode == 0, proc.stderr
    first = (out / "tracks.csv").read_bytes()
    _one_line_error(_track("--source", str(VTEST), out=out), match="--overwrite")
    assert (out / "tracks.csv").read_bytes() == first
    proc = _track("--source", str(VTEST), "--overwrite", "--max-frames", "3", "--no-video", out=out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "tracks.csv").read_text().startswith("frame,time_s")


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """run.py in-process (fast): exit code, stdout, stderr."""
    import run

    code = run.main(list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _one_line(code: int, err: str, match: str, expected: int = 2) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == expected and len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], (code, err)


def test_overwrite_never_replaces_the_input_video(tmp_path, capsys):
    """`--source DIR/annotated.mp4 --out DIR --overwrite`: DIR was a run, its video is now the input."""
    out = tmp_path / "run"
    out.mkdir()
    video = out / "annotated.mp4"
    shutil.copyfile(SAMPLE, video)
    (out / ".run_manifest.json").write_text('{"files": ["annotated.mp4"]}')
    before = video.read_bytes()
    code, _, err = _main(capsys, "track", "--source", str(video), "--out", str(out), "--overwrite",
                         "--weights", str(SHIPPED_DETECTOR), "--predictor", "cv", "--quiet", "--max-frames", "2")
    _one_line(code, err, "never replaces its input")
    assert video.read_bytes() == before


def test_output_symlinked_to_an_input_is_refused(tmp_path, capsys):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("detector:\n  conf: 0.3\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "tracks.csv").symlink_to(cfg)
    code, _, err = _main(capsys, "track", "--source", str(SAMPLE), "--config", str(cfg), "--out", str(out),
                         "--overwrite", "--weights", str(SHIPPED_DETECTOR), "--predictor", "cv", "--quiet", "--max-frames", "2")
    _one_line(code, err, "never replaces its input")
    assert cfg.read_text() == "detector:\n  conf: 0.3\n"


def test_overwrite_clears_only_files_this_program_wrote(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "tracks.csv").write_text("my own notes\n")  # same name, but no manifest lists it
    (out / "keep.txt").write_text("mine")
    args = ["track", "--source", str(SAMPLE), "--out", str(out), "--overwrite", "--weights", str(SHIPPED_DETECTOR),
            "--predictor", "cv", "--quiet", "--max-frames", "2", "--no-video"]
    code, _, err = _main(capsys, *args)
    _one_line(code, err, "not written by this program")
    assert (out / "tracks.csv").read_text() == "my own notes\n"
    (out / "tracks.csv").unlink()
    assert _main(capsys, *args)[0] == 0
    assert _main(capsys, *args)[0] == 0  # our own files from the last run are replaced
    assert (out / "keep.txt").read_text() == "mine"
    assert {p.name for p in out.iterdir()} >= {"tracks.csv", "predictions.csv", "keep.txt"}


def test_second_run_into_a_locked_folder_names_the_holder(tmp_path, capsys):
    import os

    from pipeline.io.run_dirs import RunDir

    out = tmp_path / "run"
    with RunDir(out):  # another run holds the folder
        code, _, err = _main(capsys, "track", "--source", str(SAMPLE), "--out", str(out), "--weights", str(SHIPPED_DETECTOR),
                             "--predictor", "cv", "--quiet", "--max-frames", "2", "--no-video")
    _one_line(code, err, f"in use by another run (pid {os.getpid()})")
    assert not (out / "tracks.csv").exists()


def test_unknown_class(tmp_path):
    _one_line_error(_track("--source", str(SAMPLE), "--classes", "person,unicorn", out=tmp_path / "o"), match="unicorn")


def test_bad_config_value(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("detector:\n  conf: 2.0\n")
    _one_line_error(_track("--source", str(SAMPLE), "--config", str(cfg)), match="detector.conf")
    cfg.write_text("tracker:\n  kind: sort\n")
    _one_line_error(_track("--source", str(SAMPLE), "--config", str(cfg)), match="unknown config key 'tracker.kind'")


def test_missing_and_incompatible_detector_weights(tmp_path):
    proc = run_cli("track", "--source", str(SAMPLE), "--weights", str(tmp_path / "missing" / "m.pt"), "--predictor", "cv")
    _one_line_error(proc, match="detector weights not found")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    proc = run_cli("track", "--source", str(SAMPLE), "--weights", str(junk), "--predictor", "cv", "--out", str(tmp_path / "o"))
    _one_line_error(proc, match="cannot load detector weights")
    assert not (tmp_path / "o").exists()  # nothing created for a run that could not start


def test_offline_without_weights_says_where_to_put_them(tmp_path):
    proc = run_cli("track", "--source", str(SAMPLE), "--weights", "yolo11n.pt", "--predictor", "cv",
                   "--out", str(tmp_path / "o"), cwd=tmp_path)
    _one_line_error(proc, match="--weights PATH")


def test_missing_lstm_checkpoint(tmp_path):
    proc = run_cli("track", "--source", str(SAMPLE), "--weights", str(SHIPPED_DETECTOR), "--lstm-weights",
                   str(tmp_path / "none.pt"), "--out", str(tmp_path / "o"))
    _one_line_error(proc, match="LSTM checkpoint not found")


def test_show_without_display(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    _one_line_error(_track("--source", str(SAMPLE), "--show", out=tmp_path / "o"), match="without --show")


@pytest.mark.skipif(shutil.which("chmod") is None, reason="needs chmod")
def test_unreadable_source(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    f = tmp_path / "v.avi"
    f.write_bytes(SAMPLE.read_bytes())
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

    from pipeline.core.config import DetectorConfig
    from pipeline.perception.detector import YoloDetector
    from pipeline.core.errors import UserError

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": payload(f"touch {marker}"), "train_args": {}}, evil)
    with pytest.raises(UserError, match="refusing detector weights .* never allowed to run code"):
        YoloDetector(DetectorConfig(weights=str(evil)))
    assert not marker.exists()


def test_real_detector_checkpoint_still_loads(tmp_path):
    """A genuine ultralytics .pt (built from the bundled yolo11n.yaml, no download) passes the check and loads."""
    from ultralytics import YOLO

    from pipeline.core.config import DetectorConfig
    from pipeline.perception.detector import YoloDetector

    pt = tmp_path / "y.pt"
    YOLO("yolo11n.yaml").save(pt)
    assert len(YoloDetector(DetectorConfig(weights=str(pt), classes=[])).names) == 80


def test_max_frames_says_the_run_stopped_early(tmp_path, capsys):
    code, out, _ = _main(capsys, "track", "--source", str(VTEST), "--out", str(tmp_path / "o"), "--weights",
                         str(SHIPPED_DETECTOR), "--predictor", "cv", "--quiet", "--max-frames", "3", "--no-video")
    assert code == 0
    assert "stopped early: --max-frames 3 reached after 3 of the 795 frames" in out


def test_truncated_video_says_why_in_the_summary(tmp_path, capsys):
    f = tmp_path / "truncated.avi"
    f.write_bytes(VTEST.read_bytes()[: len(VTEST.read_bytes()) // 10])
    code, out, _ = _main(capsys, "track", "--source", str(f), "--out", str(tmp_path / "o"), "--weights",
                         str(SHIPPED_DETECTOR), "--predictor", "cv", "--quiet", "--no-video")
    assert code == 3
    assert "stopped early: the video stopped decoding after" in out


def test_classes_by_coco_name_or_index():
    """As ultralytics users type them: `--classes person,2` keeps persons and cars; an unknown index is refused."""
    from pipeline.core.config import DetectorConfig
    from pipeline.perception.detector import YoloDetector
    from pipeline.core.errors import UserError

    det = YoloDetector(DetectorConfig(weights=str(SHIPPED_DETECTOR), classes=["person", "2", " 0"]))
    assert det.class_ids == [0, 2]
    with pytest.raises(UserError, match="unknown class name.*80.*indexes 0..79"):
        YoloDetector(DetectorConfig(weights=str(SHIPPED_DETECTOR), classes=["80"]))
