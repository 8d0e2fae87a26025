"""The flags ultralytics users type: --iou, --project/--name/--exist-ok, --save-txt."""

from __future__ import annotations

import csv

import pytest

from pipeline.core.errors import UserError
from pipeline.io.run_dirs import choose_run_dir
from tests.conftest import ROOT, run_cli

SAMPLE = ROOT / "samples" / "people_walking_768x432.mp4"


def _config(*flags: str):
    from run import _track_config, _track_overrides, build_parser

    a = build_parser().parse_args(["track", "--source", str(SAMPLE), *flags])
    return _track_config(a, _track_overrides(a))


def test_iou_and_save_txt_reach_the_config():
    cfg = _config("--iou", "0.5", "--save-txt")
    assert cfg.detector.iou == 0.5 and cfg.output.save_txt
    assert _config().detector.iou == 0.7 and not _config().output.save_txt
    with pytest.raises(UserError, match="detector.iou"):
        _config("--iou", "1.5")


def test_project_and_name_number_runs_and_exist_ok_reuses_one(tmp_path):
    assert choose_run_dir(None, False, base=tmp_path, name="demo") == tmp_path / "demo"
    (tmp_path / "demo").mkdir()
    assert choose_run_dir(None, False, base=tmp_path, name="demo") == tmp_path / "demo2"
    assert choose_run_dir(None, True, base=tmp_path, name="demo", exist_ok=True) == tmp_path / "demo"
    with pytest.raises(UserError, match="--name"):
        choose_run_dir(None, False, base=tmp_path, name="../up")


def test_out_and_project_together_are_refused(tmp_path):
    proc = run_cli("track", "--source", str(SAMPLE), "--out", str(tmp_path / "a"), "--project", str(tmp_path))
    assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0 and "--out" in proc.stderr


def test_save_txt_writes_mot_rows_matching_tracks_csv(tmp_path):
    """A real run into --project/--name with --save-txt; then --exist-ok writes into the same folder again."""
    args = ["track", "--source", str(SAMPLE), "--max-frames", "25", "--no-video", "--quiet", "--project", str(tmp_path),
            "--name", "demo", "--save-txt", "--predictor", "cv"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "demo"
    with (out / "tracks.csv").open(newline="") as fh:
        tracks = list(csv.DictReader(fh))
    with (out / "tracks.txt").open(newline="") as fh:
        mot = list(csv.reader(fh))
    assert len(mot) == len(tracks) > 10
    for t, m in zip(tracks, mot):
        assert len(m) == 10 and m[7:] == ["-1", "-1", "-1"]
        assert int(m[0]) == int(t["frame"]) + 1 and m[1] == t["track_id"]
        assert float(m[2]) == pytest.approx(float(t["x1"]), abs=0.01)
        assert float(m[4]) == pytest.approx(float(t["x2"]) - float(t["x1"]), abs=0.02)
    again = run_cli(*args, "--exist-ok")
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "demo2").exists() and f"wrote {out / 'tracks.txt'}" in again.stdout
