"""The CLI's flags: each verb's set, each flag declared once with one help, read without getattr fallbacks; and the
flags ultralytics users type: --iou, --project/--name/--exist-ok, --save-txt, --vid-stride, --tracker FILE."""

from __future__ import annotations

import argparse
import ast
import csv
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from pipeline.io.run_dirs import choose_run_dir
from tests.conftest import ROOT, run_cli

SAMPLE = ROOT / "samples" / "people_walking_768x432.mp4"


CLI = ROOT / "pipeline" / "apps" / "cli"
# Every verb's flags: a flag added or dropped is a change users see (and README's command lines use).
FLAGS = {
    "track": ["--camera", "--classes", "--conf", "--config", "--device", "--exist-ok", "--format", "--half", "--horizon",
              "--imgsz", "--iou", "--lstm-weights", "--max-frames", "--name", "--no-video", "--out", "--overwrite",
              "--predictor", "--project", "--quiet", "--save-txt", "--show", "--source", "--tracker", "--vid-stride",
              "--weights", "--zones"],
    "live": ["--address", "--camera", "--classes", "--conf", "--config", "--device", "--events-jsonl", "--format",
             "--half", "--horizon", "--imgsz", "--iou", "--lstm-weights", "--max-seconds", "--mqtt", "--mqtt-topic",
             "--no-show", "--out", "--overwrite", "--predictor", "--quiet", "--reconnect", "--save", "--serve",
             "--serve-token", "--show", "--source", "--tracker", "--weights", "--zones"],
    "batch": ["--address", "--camera", "--classes", "--conf", "--config", "--device", "--force", "--format", "--half",
              "--horizon", "--imgsz", "--iou", "--lstm-weights", "--max-frames", "--no-video", "--out", "--overwrite",
              "--predictor", "--quiet", "--save-txt", "--source", "--tracker", "--weights", "--workers", "--zones"],
    "calibrate": ["--camera", "--image", "--out"],
    "bench": ["--config", "--device", "--frames", "--half", "--json", "--no-startup", "--repeats", "--soak", "--source",
              "--weights"],
    "train": ["--config", "--data", "--epochs", "--format", "--out", "--overwrite", "--quiet", "--seed"],
    "eval": ["--body-heights", "--config", "--data", "--format", "--holdout", "--json", "--lstm-weights", "--methods",
             "--obs", "--pred", "--split", "--weights"],
    "bench-forecast": ["--cap", "--config", "--data-root", "--epochs", "--force", "--only", "--out"],
    "eval-events": ["--config", "--data", "--format", "--json", "--min-lead", "--minutes", "--predictor", "--zones"],
}
# Names that mean different things in different verbs (a video file or a camera; a run folder, a checkpoint or a
# picture; tables' or data's format; redo videos or benchmark sources; live's window is on by default).
PER_VERB = {"--source", "--out", "--overwrite", "--format", "--force", "--show"}


def _verbs() -> dict[str, argparse.ArgumentParser]:
    from pipeline.apps.cli import build_parser

    sub = next(a for a in build_parser("run.py")._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _config(*flags: str):
    from pipeline.apps.cli import build_parser
    from pipeline.apps.cli.track import run_config

    return run_config(build_parser().parse_args(["track", "--source", str(SAMPLE), *flags]))


def test_every_verb_keeps_its_flags_and_its_help_works(capsys):
    from pipeline.apps.cli import build_parser

    verbs = _verbs()
    assert {v: sorted(o for a in p._actions for o in a.option_strings if o not in ("-h", "--help"))
            for v, p in verbs.items()} == FLAGS
    for verb in verbs:
        with pytest.raises(SystemExit) as done:
            build_parser("run.py").parse_args([verb, "--help"])
        assert done.value.code == 0 and capsys.readouterr().out.startswith(f"usage: run.py {verb} ")


def test_no_flag_is_declared_twice_with_different_help():
    helps: dict[str, set[str]] = {}
    for parser in _verbs().values():
        for action in parser._actions:
            if action.help != argparse.SUPPRESS:
                for opt in action.option_strings:
                    helps.setdefault(opt, set()).add(str(action.help))
    assert {o: h for o, h in helps.items() if len(h) > 1 and o not in PER_VERB} == {}


def _calls(name: str) -> list[tuple[str, ast.Call]]:
    return [(p.name, node) for p in sorted(CLI.glob("*.py"))
            for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == name]


def test_options_are_read_without_getattr_fallbacks():
    assert [f"{f}:{c.lineno}" for f, c in _calls("getattr")] == []


def test_the_config_defaults_are_in_one_place():
    """--config's defaults (the run config, the training YAML) are named in common.py only."""
    assert {f for f, _ in _calls("default_config")} == {"common.py"}
    named = {p.name for p in CLI.glob("*.py") if "train.yaml" in p.read_text(encoding="utf-8")}
    assert named == {"common.py"}
    assert {f for f, c in _calls("add_argument") if c.args and getattr(c.args[0], "value", "") == "--config"} == {
        "common.py"}


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


@pytest.mark.slow
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


def test_vid_stride_keeps_source_frame_numbers_and_real_times(tmp_path):
    """--vid-stride 3: every third frame, numbered as in the input, times in seconds, video at a third of the fps."""
    import cv2

    proc = run_cli("track", "--source", str(SAMPLE), "--vid-stride", "3", "--max-frames", "12", "--quiet",
                   "--out", str(tmp_path / "r"), "--predictor", "cv")
    assert proc.returncode == 0, proc.stderr
    cap = cv2.VideoCapture(str(SAMPLE))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    with (tmp_path / "r" / "tracks.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    frames = sorted({int(r["frame"]) for r in rows})
    assert len(frames) > 6 and all(f % 3 == 0 for f in frames) and max(frames) <= 33
    for r in rows:
        assert float(r["time_s"]) == pytest.approx(int(r["frame"]) / fps, abs=1e-3)
    out = cv2.VideoCapture(str(tmp_path / "r" / "annotated.mp4"))
    assert out.get(cv2.CAP_PROP_FPS) == pytest.approx(fps / 3, rel=0.01)
    assert int(out.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    out.release()
    with pytest.raises(UserError, match="--vid-stride"):
        _config("--vid-stride", "0")


def test_tracker_accepts_an_ultralytics_tracker_yaml(tmp_path):
    """The botsort.yaml a user tuned for model.track(tracker=...) means the same here (track_buffer at 30 fps)."""
    import ultralytics
    import yaml

    shipped = Path(ultralytics.__file__).parent / "cfg" / "trackers" / "botsort.yaml"
    cfg = _config("--tracker", str(shipped)).tracker
    assert (cfg.type, cfg.gmc_method, cfg.track_buffer_s, cfg.proximity_thresh) == ("botsort", "sparseOptFlow", 1.0, 0.5)
    tuned = yaml.safe_load(shipped.read_text(encoding="utf-8")) | {"track_buffer": 90, "match_thresh": 0.6, "gmc_method": "none"}
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(tuned))
    cfg = _config("--tracker", str(path)).tracker
    assert (cfg.track_buffer_s, cfg.match_thresh, cfg.gmc_method) == (3.0, 0.6, "none")
    assert _config("--tracker", "bytetrack.yaml").tracker.type == "bytetrack"
    for bad, match in [({"with_reid": True}, "with_reid"), ({"iou_thresh": 0.5}, "unknown key"),
                       ({"track_buffer": -1}, "track_buffer"), ({"match_thresh": 3}, "match_thresh")]:
        path.write_text(yaml.safe_dump(tuned | bad))
        with pytest.raises(UserError, match=match):
            _config("--tracker", str(path))
    with pytest.raises(UserError, match="--tracker nonsense"):
        _config("--tracker", "nonsense")
    path.write_text(yaml.safe_dump(tuned))
    proc = run_cli("track", "--source", str(SAMPLE), "--tracker", str(path), "--max-frames", "15", "--no-video",
                   "--quiet", "--out", str(tmp_path / "r"), "--predictor", "cv")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r" / "tracks.csv").read_text().count("\n") > 15
