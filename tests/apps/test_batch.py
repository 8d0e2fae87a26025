"""`run.py batch` on real clips cut from vtest: whole outputs, a corrupt file reported, reruns skip, a killed worker.

Ray starts once for the module (in this process, 2 CPUs); the batch app uses it as it is. Its workers run
`_kill_once` at start-up: armed by the worker-kill test, it kills its own process at frame KILL_AT of the
first attempt (a mark file says it happened), so the kill is exact, never timed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import cv2
import pandas as pd
import pyarrow.dataset as ds
import pytest

from pipeline.apps.batch_run import folder_names, input_hash, list_videos
from pipeline.core.errors import UserError
from tests.conftest import DETECTOR, ROOT, VTEST, run_cli

FRAMES = 40
KILL_AT = 15
KILL_DIR_ENV = "BATCH_TEST_KILL_DIR"


def _kill_once() -> None:
    """Ray worker start-up hook: once armed (KILL_DIR/armed), the first video to reach frame KILL_AT kills its worker."""
    kill_dir = os.environ.get(KILL_DIR_ENV)
    if not kill_dir:
        return
    from pipeline.apps import processing

    update = processing.FrameProcessor.update

    def update_or_die(self: processing.FrameProcessor, frame: object, dets: object) -> object:
        armed, mark = Path(kill_dir) / "armed", Path(kill_dir) / "killed"
        if frame.index == KILL_AT and armed.exists() and not mark.exists():  # type: ignore[attr-defined]
            mark.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return update(self, frame, dets)

    processing.FrameProcessor.update = update_or_die


def _clip(path: Path, start: int, frames: int = FRAMES) -> Path:
    """`frames` frames of vtest from `start`, as an MJPG .avi (decodes exactly, fast to write)."""
    src = cv2.VideoCapture(str(VTEST))
    src.set(cv2.CAP_PROP_POS_FRAMES, start)
    fps = src.get(cv2.CAP_PROP_FPS)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (480, 360))
    for _ in range(frames):
        ok, image = src.read()
        assert ok
        out.write(image)
    out.release()
    src.release()
    return path


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ray for the whole module (start-up is slow); yields the kill hook's folder."""
    import ray

    kill_dir = tmp_path_factory.mktemp("kill")
    env = {KILL_DIR_ENV: str(kill_dir), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"worker_process_setup_hook": "tests.apps.test_batch._kill_once", "env_vars": env})
    yield kill_dir
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    _clip(d / "clip_a.avi", 0)
    _clip(d / "clip_b.avi", 200)
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)  # a header, then junk
    (d / "notes.txt").write_text("not a video: ignored\n")
    return d


def _batch(*args: str) -> int:
    """run.py batch in this process (on the module's Ray); its exit code."""
    import run

    return run.main(["batch", "--weights", str(DETECTOR), "--quiet", *args])


def _assert_whole(folder: Path, frames: int = FRAMES) -> None:
    """A finished video folder: every frame in tracks.csv and the video, run.json, the report, no temporary left."""
    rows = (folder / "tracks.csv").read_text().splitlines()
    assert max(int(r.split(",")[0]) for r in rows[1:]) == frames - 1
    cap = cv2.VideoCapture(str(folder / "annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    cap.release()
    meta = json.loads((folder / "run.json").read_text())
    assert meta["summary"]["frames_processed"] == frames
    assert (folder / "report.html").is_file() and (folder / "predictions.csv").is_file()
    assert not list(folder.parent.glob(".*.partial")), "a temporary video folder was left behind"


@pytest.fixture(scope="module")
def first_batch(ray_session: Path, clips: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("batch") / "out"
    import contextlib
    import io

    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        rc = _batch("--source", str(clips), "--out", str(out))
    return out, rc, buf_out.getvalue() + buf_err.getvalue()


@pytest.mark.slow
def test_batch_finishes_clips_and_reports_the_corrupt_one(first_batch: tuple[Path, int, str]) -> None:
    out, rc, text = first_batch
    assert rc == 1, text  # one video failed
    assert "Traceback" not in text
    broken = [ln for ln in text.splitlines() if ln.startswith("broken: FAILED")]
    assert len(broken) == 1 and "cannot be opened as a video" in broken[0]
    assert "2 done, 0 skipped, 1 failed" in text
    for name in ("clip_a", "clip_b"):
        _assert_whole(out / name)
        summary = (out / name / "track_summary.csv").read_text().splitlines()
        assert summary[0].startswith("track_id,class_name,first_s") and len(summary) > 1  # every video's tracks
    assert not (out / "broken").exists()
    videos = json.loads((out / "batch.json").read_text())["videos"]
    assert {n: v["status"] for n, v in videos.items()} == {"clip_a": "done", "clip_b": "done", "broken": "failed"}
    assert videos["clip_a"]["frames"] == FRAMES and videos["clip_a"]["input_hash"].startswith("size+first+last-MiB")
    assert "cannot be opened" in videos["broken"]["error"]
    # one dataset of every video, partitioned by video, as DuckDB/pandas/Spark read it (Hive layout)
    for kind in ("tracks", "predictions"):
        table = ds.dataset(out / "dataset" / kind, format="parquet", partitioning="hive").to_table()
        csv_rows = sum(len((out / n / f"{kind}.csv").read_text().splitlines()) - 1 for n in ("clip_a", "clip_b"))
        assert table.num_rows == csv_rows > 0
        assert set(table.column("video").to_pylist()) == {"clip_a", "clip_b"}
        frame = pd.read_parquet(out / "dataset" / kind)  # the README's example, as written
        assert len(frame) == csv_rows and set(frame["video"]) == {"clip_a", "clip_b"}
        assert table.schema.field("frame").type == "int64"


@pytest.mark.slow
def test_rerun_skips_finished_clips_and_redoes_a_changed_one(first_batch: tuple[Path, int, str], clips: Path) -> None:
    out = first_batch[0]
    before = json.loads((out / "batch.json").read_text())["videos"]
    mtimes = {n: (out / n / "tracks.csv").stat().st_mtime_ns for n in ("clip_a", "clip_b")}
    # same command from the shell: the finished clips are skipped, the corrupt one is found again before any Ray start
    proc = run_cli("batch", "--source", str(clips), "--out", str(out), "--weights", str(DETECTOR), "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "clip_a: skipped" in proc.stdout and "clip_b: skipped" in proc.stdout
    assert "0 done, 2 skipped, 1 failed" in proc.stdout
    after = json.loads((out / "batch.json").read_text())["videos"]
    assert {n: after[n] for n in ("clip_a", "clip_b")} == {n: before[n] for n in ("clip_a", "clip_b")}
    assert {n: (out / n / "tracks.csv").stat().st_mtime_ns for n in mtimes} == mtimes
    # a changed input is redone (from the shell: Ray started in that process), the unchanged one still skipped
    _clip(clips / "clip_b.avi", 400, 20)
    (clips / "broken.mp4").unlink()
    proc = run_cli("batch", "--source", str(clips), "--out", str(out), "--weights", str(DETECTOR), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "clip_a: skipped" in proc.stdout and "clip_b: done, 20 frames" in proc.stdout
    assert "Traceback" not in proc.stderr and "INFO" not in proc.stderr, proc.stderr  # Ray's start-up is quiet
    after = json.loads((out / "batch.json").read_text())["videos"]
    assert after["clip_b"]["input_hash"] != before["clip_b"]["input_hash"] and after["clip_b"]["frames"] == 20
    _assert_whole(out / "clip_b", 20)
    assert (out / "clip_a" / "tracks.csv").stat().st_mtime_ns == mtimes["clip_a"]
    table = ds.dataset(out / "dataset" / "tracks", format="parquet", partitioning="hive").to_table()
    per_video = {v: table.column("video").to_pylist().count(v) for v in ("clip_a", "clip_b")}
    assert per_video["clip_b"] == len((out / "clip_b" / "tracks.csv").read_text().splitlines()) - 1


@pytest.mark.slow
def test_killed_worker_is_retried_and_outputs_are_whole(ray_session: Path, tmp_path: Path) -> None:
    clips = tmp_path / "in"
    clips.mkdir()
    _clip(clips / "killme.avi", 100)
    (ray_session / "armed").write_text("")
    try:
        rc = _batch("--source", str(clips), "--out", str(tmp_path / "out"), "--format", "both")
    finally:
        (ray_session / "armed").unlink()
    assert (ray_session / "killed").is_file(), "the fault hook never killed a worker"
    assert rc == 0
    _assert_whole(tmp_path / "out" / "killme")
    assert (tmp_path / "out" / "killme" / "tracks.parquet").is_file()
    assert json.loads((tmp_path / "out" / "batch.json").read_text())["videos"]["killme"]["status"] == "done"


def test_sources_names_and_input_hash(tmp_path: Path) -> None:
    for name in ("b.mp4", "a.AVI", "readme.md"):
        (tmp_path / name).write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.mp4").write_bytes(b"y" * (3 << 20))
    assert [p.name for p in list_videos(str(tmp_path))] == ["a.AVI", "b.mp4"]
    assert [p.name for p in list_videos(str(tmp_path / "**" / "*.mp4"))] == ["b.mp4", "a.mp4"]
    (tmp_path / "list.txt").write_text("# my cameras\nb.mp4\n\nsub/a.mp4\n")
    assert list_videos(str(tmp_path / "list.txt")) == [tmp_path / "b.mp4", tmp_path / "sub" / "a.mp4"]
    with pytest.raises(UserError, match="matches no file"):
        list_videos(str(tmp_path / "*.mkv"))
    names = folder_names([tmp_path / "a.AVI", tmp_path / "sub" / "a.mp4", tmp_path / "dataset.mp4"])
    assert names[0] != names[1] and names[0].startswith("a_") and names[2].startswith("dataset_")
    big = tmp_path / "sub" / "a.mp4"
    h = input_hash(big)
    with big.open("r+b") as fh:  # a change in the middle (outside the first/last MiB) is not seen: documented
        fh.seek(1 << 20 | 5)
        fh.write(b"z")
    assert input_hash(big) == h
    with big.open("r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        fh.write(b"z")
    assert input_hash(big) != h


@pytest.mark.slow
def test_a_worker_loads_its_detector_once_for_all_its_videos(tmp_path: Path, monkeypatch) -> None:
    """process_video is what each Ray task runs: two videos in one process build the detector once, and both are whole."""
    import dataclasses

    from pipeline.apps import batch_run, processing
    from pipeline.core.config import DetectorConfig, TrackRunConfig

    built = []
    real = processing.build_detector
    monkeypatch.setattr(processing, "build_detector", lambda cfg: built.append(cfg) or real(cfg))
    batch_run.worker_detectors.cache_clear()

    class Progress:  # what the Ray actor's handle offers: report.remote(name, frames)
        class report:  # noqa: N801 (mirrors the actor method)
            @staticmethod
            def remote(name: str, frames: int) -> None:
                pass

    cfg = TrackRunConfig(detector=DetectorConfig(weights=str(DETECTOR)))
    cfg = dataclasses.replace(cfg, predictor=dataclasses.replace(cfg.predictor, kind="cv"))
    for name, start in (("clip_a", 0), ("clip_b", 200)):
        job = batch_run.VideoJob(_clip(tmp_path / f"{name}.avi", start), name, "hash", "cfg")
        outcome = batch_run.process_video(job, cfg, tmp_path / "out", None, Progress())
        assert outcome.status == "done", outcome.error
        _assert_whole(tmp_path / "out" / name)
    assert len(built) == 1
    batch_run.worker_detectors.cache_clear()
