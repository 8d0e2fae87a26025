"""core.atomic: a file is replaced whole or not at all, and no temporary is ever left behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pipeline.core.atomic import replacing, temporary_name, write_atomic, write_error
from pipeline.core.errors import DiskFullError, UserError


def test_write_atomic_replaces_text_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    assert write_atomic(path, "{}\n") == path and path.read_text(encoding="utf-8") == "{}\n"
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_the_temporary_is_hidden_beside_the_file(tmp_path: Path) -> None:
    assert temporary_name(tmp_path / "a.csv") == tmp_path / ".a.csv.tmp"
    assert temporary_name(tmp_path / ".run_manifest.json") == tmp_path / ".run_manifest.json.tmp"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with replacing(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer failed")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_a_failed_rename_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "table.csv"
    path.write_text("old\n")

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_write_error_tells_a_full_disk_apart(tmp_path: Path) -> None:
    full = write_error(tmp_path / "x", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    other = write_error(tmp_path / "x", OSError(errno.EACCES, os.strerror(errno.EACCES)))
    assert isinstance(full, DiskFullError) and "disk is full" in str(full)
    assert type(other) is UserError and str(other) == f"cannot write {tmp_path / 'x'}: {os.strerror(errno.EACCES)}"
