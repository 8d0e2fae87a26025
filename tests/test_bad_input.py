"""A table-driven sweep of bad inputs and faults through track, live, eval and train.

Every case runs `run.main([...])` in-process (fast) and must give: a non-zero exit, no traceback, exactly
one line on stderr starting with `error:`, no credential from a URL anywhere in the output, and every input
file byte-identical afterwards. A full disk is faked here by test doubles (FAULTS); the real thing (a file
size limit) and signals, which need a separate process, are in test_track_run.py.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import DETECTOR, SAMPLE, VIDEOS, VTEST

SECRET = "s3cr3tPW"
ETHUCY = VIDEOS.parent / "ethucy" / "zara1" / "test"


class _Evil:
    """Pickles as a call to os.system: a hostile checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_inputs(d: Path) -> None:
    """Every bad input file the table refers to, in one folder (made once per session)."""
    (d / "text.mp4").write_text("this is text, not a video\n")
    (d / "zero.mp4").write_bytes(b"")
    cv2.imwrite(str(d / "still.jpg"), np.zeros((64, 64, 3), np.uint8))
    cv2.imwrite(str(d / "still.png"), np.zeros((64, 64, 3), np.uint8))
    shutil.copyfile(d / "still.png", d / "still_png.mp4")
    (d / "cut.mp4").write_bytes(SAMPLE.read_bytes()[:300_000])  # the index (moov) is at the end: cut off
    (d / "random.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    os.mkfifo(d / "fifo.mp4")
    os.mkfifo(d / "fifo.yaml")
    os.mkfifo(d / "fifo.pt")
    (d / "empty_openvino_model").mkdir()
    (d / "notamodel").mkdir()
    (d / "zero.pt").write_bytes(b"")
    (d / "junk.pt").write_bytes(b"\x00" * 100)
    (d / "text.onnx").write_text("not onnx")
    torch.save({"model": _Evil(d / "PWNED")}, d / "evil.pt")
    torch.save({"state": _Evil(d / "PWNED")}, d / "evil_lstm.pt")
    (d / "run_file").write_text("a file where a folder should be")
    (d / "notes.txt").write_text("frame,track_id\n1,2\n")
    yamls = {
        "scalar_detector": "detector: 3\n", "zero_detector": "detector: 0\n", "false_tracker": "tracker: false\n",
        "string_predictor": "predictor: lstm\n", "list_output": "output: [1, 2]\n", "scalar_live": "live: 5\n",
        "scalar_speed": "speed: fast\n", "unknown_top": "detectr:\n  conf: 0.3\n", "unknown_key": "detector:\n  confidence: 0.3\n",
        "conf_text": "detector:\n  conf: high\n", "conf_big": "detector:\n  conf: 2\n", "imgsz_float": "detector:\n  imgsz: 640.5\n",
        "classes_int": "detector:\n  classes: 5\n", "weights_int": "detector:\n  weights: 3\n",
        "video_text": "output:\n  video: 'yes'\n", "tracker_type": "tracker:\n  type: sort\n",
        "buffer_neg": "tracker:\n  track_buffer_s: -1\n", "history_zero": "history:\n  history_s: 0\n",
        "horizon_nan": "predictor:\n  horizon_s: .nan\n", "horizon_inf": "predictor:\n  horizon_s: .inf\n",
        "kind_bad": "predictor:\n  kind: oracle\n", "reconnect_neg": "live:\n  reconnect_s: -1\n",
        "ahead_big": "speed:\n  detect_ahead: 99\n", "queue_zero": "speed:\n  queue_frames: 0\n",
        "invalid": "detector: [unclosed\n", "top_list": "- a\n- b\n", "top_scalar": "42\n",
        "gmc_bad": "tracker:\n  gmc_method: magic\n",
    }
    for name, text in yamls.items():
        (d / f"{name}.yaml").write_text(text)
    (d / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (d / "train_scalar.yaml").write_text("train: 3\n")
    (d / "train_unknown.yaml").write_text("epoch: 3\n")
    (d / "badrows.csv").write_text("time_s,track_id,x1,x2,y1,y2\nabc,1,2,3,4,5\n")


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad_inputs")
    _write_inputs(d)
    return d


D = str(DETECTOR)
V = str(VTEST)
FAST = ["--weights", D, "--predictor", "cv", "--quiet", "--no-video", "--max-frames", "2"]
CRED_URL = f"http://admin:{SECRET}@127.0.0.1:9/video.mjpg"


def _track(*args: str) -> list[str]:
    return ["track", *args]


def _cfg(name: str) -> list[str]:
    return ["track", "--source", V, "--config", f"{{in}}/{name}.yaml", *FAST]


def _live(*args: str) -> list[str]:
    return ["live", "--no-show", "--weights", D, *args]


CASES: dict[str, list[str]] = {
    # --- track: the source -------------------------------------------------------------------------------------
    "track-source-missing": _track("--source", "{in}/nope.mp4", *FAST),
    "track-source-dir": _track("--source", "{in}", *FAST),
    "track-source-text": _track("--source", "{in}/text.mp4", *FAST),
    "track-source-zero-bytes": _track("--source", "{in}/zero.mp4", *FAST),
    "track-source-jpg": _track("--source", "{in}/still.jpg", *FAST),
    "track-source-png": _track("--source", "{in}/still.png", *FAST),
    "track-source-png-named-mp4": _track("--source", "{in}/still_png.mp4", *FAST),
    "track-source-truncated-mp4": _track("--source", "{in}/cut.mp4", *FAST),
    "track-source-random-bytes": _track("--source", "{in}/random.avi", *FAST),
    "track-source-fifo": _track("--source", "{in}/fifo.mp4", *FAST),
    "track-source-dev-null": _track("--source", "/dev/null", *FAST),
    "track-source-url-credentials": _track("--source", CRED_URL, *FAST),
    "track-source-rtsp-credentials": _track("--source", f"rtsp://u:{SECRET}@10.255.255.1/s", *FAST),
    "track-source-empty-string": _track("--source", "", *FAST),
    "track-source-yaml": _track("--source", "{in}/conf_big.yaml", *FAST),
    # --- track: numbers and names on the command line ------------------------------------------------------------
    "track-conf-nan": _track("--source", V, "--conf", "nan", *FAST),
    "track-conf-inf": _track("--source", V, "--conf", "inf", *FAST),
    "track-conf-negative": _track("--source", V, "--conf", "-0.5", *FAST),
    "track-conf-zero": _track("--source", V, "--conf", "0", *FAST),
    "track-conf-above-one": _track("--source", V, "--conf", "1.5", *FAST),
    "track-conf-text": _track("--source", V, "--conf", "high", *FAST),
    "track-imgsz-negative": _track("--source", V, "--imgsz", "-32", *FAST),
    "track-imgsz-zero": _track("--source", V, "--imgsz", "0", *FAST),
    "track-imgsz-odd": _track("--source", V, "--imgsz", "33", *FAST),
    "track-imgsz-float": _track("--source", V, "--imgsz", "640.5", *FAST),
    "track-horizon-nan": _track("--source", V, "--horizon", "nan", *FAST),
    "track-horizon-inf": _track("--source", V, "--horizon", "inf", *FAST),
    "track-horizon-negative": _track("--source", V, "--horizon", "-1", *FAST),
    "track-horizon-zero": _track("--source", V, "--horizon", "0", *FAST),
    "track-max-frames-zero": _track("--source", V, *FAST, "--max-frames", "0"),
    "track-max-frames-negative": _track("--source", V, *FAST, "--max-frames", "-5"),
    "track-max-frames-text": _track("--source", V, *FAST, "--max-frames", "many"),
    "track-tracker-unknown": _track("--source", V, "--tracker", "sort", *FAST),
    "track-predictor-unknown": _track("--source", V, *FAST, "--predictor", "oracle"),
    "track-classes-unknown": _track("--source", V, "--classes", "person,unicorn", *FAST),
    "track-classes-empty": _track("--source", V, "--classes", ",,", *FAST),
    "track-unknown-flag": _track("--source", V, "--speed", "11", *FAST),
    "track-no-source": _track(*FAST),
    "track-tracker-credentials": _track("--source", V, "--tracker", CRED_URL, *FAST),
    # --- track: the config file ------------------------------------------------------------------------------------
    **{f"track-config-{n}": _cfg(n) for n in (
        "scalar_detector", "zero_detector", "false_tracker", "string_predictor", "list_output", "scalar_live",
        "scalar_speed", "unknown_top", "unknown_key", "conf_text", "conf_big", "imgsz_float", "classes_int",
        "weights_int", "video_text", "tracker_type", "buffer_neg", "history_zero", "horizon_nan", "horizon_inf",
        "kind_bad", "reconnect_neg", "ahead_big", "queue_zero", "invalid", "top_list", "top_scalar", "gmc_bad",
        "binary",
    )},
    "track-config-missing": _track("--source", V, "--config", "{in}/none.yaml", *FAST),
    "track-config-dir": _track("--source", V, "--config", "{in}", *FAST),
    "track-config-fifo": _track("--source", V, "--config", "{in}/fifo.yaml", *FAST),
    # --- track: detector and LSTM weights ----------------------------------------------------------------------------
    "track-weights-missing": _track("--source", V, *FAST, "--weights", "{in}/none/m.pt"),
    "track-weights-empty-openvino-dir": _track("--source", V, *FAST, "--weights", "{in}/empty_openvino_model"),
    "track-weights-plain-dir": _track("--source", V, *FAST, "--weights", "{in}/notamodel"),
    "track-weights-image": _track("--source", V, *FAST, "--weights", "{in}/still.png"),
    "track-weights-zero-pt": _track("--source", V, *FAST, "--weights", "{in}/zero.pt"),
    "track-weights-junk-pt": _track("--source", V, *FAST, "--weights", "{in}/junk.pt"),
    "track-weights-evil-pt": _track("--source", V, *FAST, "--weights", "{in}/evil.pt"),
    "track-weights-text-onnx": _track("--source", V, *FAST, "--weights", "{in}/text.onnx"),
    "track-weights-fifo": _track("--source", V, *FAST, "--weights", "{in}/fifo.pt"),
    "track-weights-video": _track("--source", V, *FAST, "--weights", V),
    "track-lstm-missing": _track("--source", V, *FAST, "--predictor", "lstm", "--lstm-weights", "{in}/none.pt"),
    "track-lstm-text": _track("--source", V, *FAST, "--predictor", "lstm", "--lstm-weights", "{in}/text.mp4"),
    "track-lstm-evil": _track("--source", V, *FAST, "--predictor", "lstm", "--lstm-weights", "{in}/evil_lstm.pt"),
    "track-lstm-fifo": _track("--source", V, *FAST, "--predictor", "lstm", "--lstm-weights", "{in}/fifo.pt"),
    # --- track: the output folder -----------------------------------------------------------------------------------
    "track-out-is-file": _track("--source", V, *FAST, "--out", "{in}/run_file"),
    "track-out-under-file": _track("--source", V, *FAST, "--out", "{in}/run_file/sub"),
    "track-out-is-input-folder-video": _track("--source", "{in}/prev/annotated.mp4", *FAST, "--out", "{in}/prev",
                                              "--overwrite"),
    "track-out-existing-run": _track("--source", V, *FAST, "--out", "{in}/prev"),
    "track-out-foreign-file": _track("--source", V, *FAST, "--out", "{in}/foreign", "--overwrite"),
    "track-out-locked": _track("--source", V, *FAST, "--out", "{in}/locked"),
    # --- live --------------------------------------------------------------------------------------------------------
    "live-max-seconds-nan": _live("--source", "{closed_url}", "--max-seconds", "nan"),
    "live-max-seconds-negative": _live("--source", "{closed_url}", "--max-seconds", "-1"),
    "live-reconnect-nan": _live("--source", "{closed_url}", "--reconnect", "nan"),
    "live-reconnect-negative": _live("--source", "{closed_url}", "--reconnect", "-2"),
    "live-url-credentials": _live("--source", CRED_URL.replace("127.0.0.1:9", "127.0.0.1:{closed_port}")),
    "live-rtsp-credentials-refused": _live("--source", f"rtsp://u:{SECRET}@127.0.0.1:{{closed_port}}/s"),
    "live-camera-missing": _live("--source", "7"),
    "live-text-file": _live("--source", "{in}/text.mp4"),
    "live-fifo": _live("--source", "{in}/fifo.mp4"),
    "live-config-scalar": _live("--source", "{closed_url}", "--config", "{in}/scalar_detector.yaml"),
    "live-out-is-file": _live("--source", "{closed_url}", "--out", "{in}/run_file"),
    "live-conf-nan": _live("--source", "{closed_url}", "--conf", "nan"),
    "live-classes-empty": _live("--source", "{closed_url}", "--classes", ","),
    "live-weights-evil": ["live", "--no-show", "--source", "{closed_url}", "--weights", "{in}/evil.pt"],
    "live-unknown-flag": _live("--source", "{closed_url}", "--fps", "5"),
    # --- eval --------------------------------------------------------------------------------------------------------
    "eval-data-missing": ["eval", "--data", "{in}/none", "--format", "mot", "--methods", "cv"],
    "eval-data-text-as-tracks": ["eval", "--data", "{in}/text.mp4", "--format", "tracks", "--methods", "cv"],
    "eval-data-bad-rows": ["eval", "--data", "{in}/badrows.csv", "--format", "tracks", "--methods", "cv"],
    "eval-data-credentials": ["eval", "--data", CRED_URL, "--format", "tracks", "--methods", "cv"],
    "eval-format-unknown": ["eval", "--data", str(ETHUCY), "--format", "kitti"],
    "eval-methods-unknown": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--methods", "oracle"],
    "eval-methods-empty": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--methods", ","],
    "eval-weights-missing": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--lstm-weights", "{in}/none.pt"],
    "eval-weights-evil": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--lstm-weights", "{in}/evil_lstm.pt"],
    "eval-obs-text": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--obs", "eight"],
    "eval-no-data": ["eval", "--format", "ethucy"],
    "eval-data-fifo": ["eval", "--data", "{in}/fifo.mp4", "--format", "tracks", "--methods", "cv"],
    "eval-weights-fifo": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--weights", "{in}/fifo.pt"],
    "train-data-fifo": ["train", "--data", "{in}/fifo.mp4", "--format", "tracks", "--out", "{in}/t.pt"],
    "eval-holdout-nan": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--methods", "cv", "--holdout", "nan"],
    "eval-holdout-above-one": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--methods", "cv", "--holdout", "2"],
    "eval-obs-negative": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--methods", "cv", "--obs", "-3"],
    "eval-pred-zero": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--methods", "cv", "--pred", "0"],
    "eval-json-into-missing-folder": ["eval", "--data", str(ETHUCY), "--format", "ethucy", "--methods", "cv",
                                      "--json", "{in}/none/x.json"],
    # --- train -------------------------------------------------------------------------------------------------------
    "train-config-missing": ["train", "--config", "{in}/none.yaml", "--out", "{in}/t.pt"],
    "train-config-scalar": ["train", "--config", "{in}/train_scalar.yaml", "--out", "{in}/t.pt"],
    "train-config-unknown-key": ["train", "--config", "{in}/train_unknown.yaml", "--out", "{in}/t.pt"],
    "train-config-invalid-yaml": ["train", "--config", "{in}/invalid.yaml", "--out", "{in}/t.pt"],
    "train-data-without-format": ["train", "--data", "{in}/notes.txt", "--out", "{in}/t.pt"],
    "train-data-missing": ["train", "--data", "{in}/none", "--format", "tracks", "--out", "{in}/t.pt"],
    "train-data-text": ["train", "--data", "{in}/text.mp4", "--format", "tracks", "--out", "{in}/t.pt"],
    "train-data-credentials": ["train", "--data", CRED_URL, "--format", "tracks", "--out", "{in}/t.pt"],
    "train-epochs-text": ["train", "--epochs", "ten", "--out", "{in}/t.pt"],
    "train-epochs-negative": ["train", "--data", str(ETHUCY), "--format", "ethucy", "--epochs", "-1", "--out", "{in}/t.pt"],
    "train-out-into-missing-folder": ["train", "--data", "{in}/none", "--format", "tracks", "--out", "{in}/no/t.pt"],
    "train-format-unknown": ["train", "--data", "{in}/notes.txt", "--format", "kitti", "--out", "{in}/t.pt"],
    # --- the command line itself ---------------------------------------------------------------------------------
    "cli-no-command": [],
    "cli-unknown-command": ["fly"],
    # --- a full disk (test doubles installed by FAULTS below) ----------------------------------------------------
    "track-disk-full-csv": _track("--source", V, *FAST),
    "track-disk-full-video": _track("--source", V, "--weights", D, "--predictor", "cv", "--quiet", "--max-frames", "2"),
}


class _FullDiskFile(io.FileIO):
    """A file on a disk with 300 bytes free: the write that crosses it is cut short, the next fails (ENOSPC)."""

    def write(self, b: bytes) -> int:
        room = 300 - self.tell()
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(memoryview(b)[:room])


# Cases that need a fault injected in-process: name -> installs it (undone by monkeypatch after the case).
FAULTS = {
    "track-disk-full-csv": lambda mp: mp.setattr("pipeline.io.writers.FileIO", _FullDiskFile),
    "track-disk-full-video": lambda mp: mp.setattr("pipeline.io.writers.room_left", lambda path: 100_000),
}



def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: connecting is refused at once


def _prepare_run_folders(d: Path) -> None:
    """Folders that look like earlier runs, a foreign file, and a locked folder (fresh for every case)."""
    prev = d / "prev"
    shutil.rmtree(prev, ignore_errors=True)
    prev.mkdir()
    shutil.copyfile(SAMPLE, prev / "annotated.mp4")
    (prev / ".run_manifest.json").write_text('{"files": ["annotated.mp4"]}')
    foreign = d / "foreign"
    foreign.mkdir(exist_ok=True)
    (foreign / "tracks.csv").write_text("someone else's\n")


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file() and not p.name.startswith(".run")}


# argv as a parameter: a case that names a file in ../shared (the video, the detector) is marked realdata by conftest
@pytest.mark.parametrize("name, case", sorted(CASES.items()), ids=sorted(CASES))
def test_bad_input(name: str, case: list[str], inputs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                   tmp_path: Path) -> None:
    import run
    from pipeline.io.run_dirs import RunDir

    monkeypatch.chdir(tmp_path)  # default run folders (runs/...) land here, not in the checkout
    monkeypatch.delenv("DISPLAY", raising=False)
    _prepare_run_folders(inputs)
    port = _closed_port()
    argv = [a.format(**{"in": inputs, "closed_port": port, "closed_url": f"http://127.0.0.1:{port}/v.mjpg"})
            for a in case]
    before = _snapshot(inputs)
    if name in FAULTS:
        FAULTS[name](monkeypatch)
    with RunDir(inputs / "locked"):  # another run holds this folder for the whole case
        try:
            code = run.main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code not in (0, None), (code, out, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert SECRET not in out + err
    assert not (inputs / "PWNED").exists()
    assert _snapshot(inputs) == before


def test_the_sweep_has_at_least_100_cases() -> None:
    assert len(CASES) >= 100, len(CASES)
