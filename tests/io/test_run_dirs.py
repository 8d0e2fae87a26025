"""Run folders: numbering, the up-front checks, the manifest, --overwrite of our own files only, and the lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from pipeline.io.run_dirs import RunDir, choose_run_dir, next_run_dir, read_manifest


def test_next_run_dir_takes_the_first_free_number(tmp_path: Path) -> None:
    assert next_run_dir(tmp_path) == tmp_path / "exp"
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp2").mkdir()
    assert next_run_dir(tmp_path) == tmp_path / "exp3"
    assert next_run_dir(tmp_path, "cam") == tmp_path / "cam"


def test_choose_run_dir_numbers_runs_or_reuses_one_with_exist_ok(tmp_path: Path) -> None:
    (tmp_path / "exp").mkdir()
    assert choose_run_dir(None, False, base=tmp_path) == tmp_path / "exp2"
    assert choose_run_dir(None, False, base=tmp_path, exist_ok=True) == tmp_path / "exp"
    assert choose_run_dir(str(tmp_path / "new" / "deeper"), False) == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is created up front


@pytest.mark.parametrize("name", ["a/b", "", ".", ".."])
def test_a_name_must_be_a_plain_folder_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError, match="plain folder name"):
        choose_run_dir(None, False, base=tmp_path, name=name)


def test_choose_run_dir_refuses_a_file_an_earlier_run_and_an_input(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        choose_run_dir(str(tmp_path / "file"), False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "tracks.csv").write_text("frame\n")
    with pytest.raises(UserError, match="--overwrite"):
        choose_run_dir(str(run), False)
    assert choose_run_dir(str(run), True) == run
    with pytest.raises(UserError, match="never replaces its input"):
        choose_run_dir(str(run), True, inputs=[run / "tracks.csv"])


def test_a_run_records_its_files_and_overwrite_clears_only_those(tmp_path: Path) -> None:
    path = tmp_path / "run"
    with RunDir(path) as rd:
        rd.file("tracks.csv").write_text("first\n")
        rd.file("tracks.csv")  # handed out twice, recorded once
        rd.file("report.html").write_text("<html>")
    assert read_manifest(path) == ["tracks.csv", "report.html"]
    (path / "notes.txt").write_text("the user's")  # not a name this program writes: left alone
    with pytest.raises(UserError, match="already holds a run"):
        RunDir(path).open()
    with RunDir(path, overwrite=True) as rd:
        assert not (path / "tracks.csv").exists() and not (path / "report.html").exists()
        assert read_manifest(path) == [] and rd.file("tracks.csv").parent == path
    assert (path / "notes.txt").read_text() == "the user's"


def test_overwrite_refuses_a_file_of_ours_that_another_program_wrote(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir()
    (path / "tracks.csv").write_text("someone else's\n")  # no manifest names it
    with pytest.raises(UserError, match="not written by this program"):
        RunDir(path, overwrite=True).open()
    assert (path / "tracks.csv").read_text() == "someone else's\n"


def test_a_second_run_in_a_held_folder_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "run"
    with RunDir(path):
        with pytest.raises(UserError, match=r"in use by another run \(pid \d+\)"):
            RunDir(path).open()
    with RunDir(path, overwrite=True):  # released on exit
        pass


def test_an_output_never_replaces_an_input(tmp_path: Path) -> None:
    video = tmp_path / "run" / "annotated.mp4"
    with RunDir(tmp_path / "run", inputs=[video]) as rd:
        with pytest.raises(UserError, match="never replaces its input"):
            rd.file("annotated.mp4")
        assert rd.file("tracks.csv") == tmp_path / "run" / "tracks.csv"


def test_an_unreadable_manifest_names_no_files(tmp_path: Path) -> None:
    (tmp_path / ".run_manifest.json").write_text("{not json")
    assert read_manifest(tmp_path) == []
    (tmp_path / ".run_manifest.json").write_text(json.dumps({"files": ["tracks.csv", "../etc/passwd", 3]}))
    assert read_manifest(tmp_path) == ["tracks.csv"]
