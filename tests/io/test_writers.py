"""The CSV sinks on constructed tracks and forecasts: columns, numbers, and whole frames when a write fails."""

from __future__ import annotations

import csv
import errno
import os
from io import FileIO
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import DiskFullError, UserError
from pipeline.core.tables import write_csv_atomic
from pipeline.core.types import Forecasts, Tracks
from pipeline.io import writers
from pipeline.io.writers import (PREDICTION_COLUMNS, TRACK_COLUMNS, MotTxt, PredictionsCsv, TracksCsv, whole_frame)

NAMES = {0: "person", 2: "car"}


def _tracks() -> Tracks:
    return Tracks(np.array([[10, 20, 30, 60], [100.5, 0, 120.25, 40]]), np.array([0.9, 0.456]), np.array([0, 7]),
                  np.array([3, 11]))


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_tracks_csv_rows_name_classes_and_give_centres(tmp_path: Path) -> None:
    path = tmp_path / "tracks.csv"
    with TracksCsv(path, NAMES) as sink:
        sink.write(5, 0.2, _tracks())
        sink.write(6, 0.24, Tracks.empty())  # an empty frame adds no row
    header, *rows = _read(path)
    assert header == TRACK_COLUMNS
    assert rows == [
        ["5", "0.2000", "3", "person", "0.900", "10.00", "20.00", "30.00", "60.00", "20.00", "40.00"],
        ["5", "0.2000", "11", "7", "0.456", "100.50", "0.00", "120.25", "40.00", "110.38", "20.00"],  # no name: the id
    ]


def test_tracks_csv_ground_columns_leave_points_beyond_the_horizon_empty(tmp_path: Path) -> None:
    path = tmp_path / "tracks.csv"
    with TracksCsv(path, NAMES, ground=True) as sink:
        sink.write(0, 0.0, _tracks(), np.array([[1.23456, -2.0, 0.5], [np.nan, np.nan, np.nan]]))
    header, first, second = _read(path)
    assert header[-3:] == ["x_m", "y_m", "speed_mps"]
    assert first[-3:] == ["1.235", "-2.000", "0.500"] and second[-3:] == ["", "", ""]


def test_predictions_csv_has_a_row_per_track_and_step_and_empty_optional_columns(tmp_path: Path) -> None:
    t = np.array([0.5, 1.0])
    centers = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], float)
    std = np.full((2, 2, 2), 0.25)
    path = tmp_path / "predictions.csv"
    with PredictionsCsv(path) as sink:
        sink.write(9, 1.5, Forecasts(np.array([4, 2]), t, centers, std=std))
    header, *rows = _read(path)
    assert header == PREDICTION_COLUMNS
    by = [dict(zip(header, r)) for r in rows]
    assert [(r["track_id"], r["step"], r["t_future_s"], r["t_target_s"]) for r in by] == [
        ("4", "1", "0.500", "2.0000"), ("4", "2", "1.000", "2.5000"), ("2", "1", "0.500", "2.0000"),
        ("2", "2", "1.000", "2.5000")]
    assert [(r["pred_cx"], r["pred_cy"]) for r in by] == [("1.00", "2.00"), ("3.00", "4.00"), ("5.00", "6.00"),
                                                          ("7.00", "8.00")]
    assert all(r["pred_x1"] == r["pred_y2"] == "" for r in by)  # no boxes: empty
    assert all(r["std_x"] == "0.25" and r["std2_x"] == "" for r in by)  # std without std2


def test_mot_txt_counts_frames_from_one_and_writes_width_and_height(tmp_path: Path) -> None:
    path = tmp_path / "tracks.txt"
    with MotTxt(path) as sink:
        sink.write(0, _tracks())
    assert path.read_text().splitlines() == [
        "1,3,10.00,20.00,20.00,40.00,0.900,-1,-1,-1",
        "1,11,100.50,0.00,19.75,40.00,0.456,-1,-1,-1",
    ]


class _FullAfter(FileIO):
    """predictions.csv on a disk that fills up after `ROOM` bytes (a short write, then ENOSPC); others have room."""

    ROOM = 10**9

    def write(self, b) -> int:
        room = (self.ROOM if str(self.name).endswith("predictions.csv") else 10**9) - self.tell()
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(memoryview(b)[:room])


def test_a_full_disk_cuts_both_csvs_back_to_the_last_whole_frame(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(writers, "FileIO", _FullAfter)
    tracks_path, preds_path = tmp_path / "tracks.csv", tmp_path / "predictions.csv"
    fc = Forecasts(np.array([3, 11]), np.array([0.5]), np.zeros((2, 1, 2)))
    with TracksCsv(tracks_path, NAMES) as tr, PredictionsCsv(preds_path) as pr:
        with whole_frame(tr, pr, None):  # None: a sink that is not written
            tr.write(0, 0.0, _tracks())
            pr.write(0, 0.0, fc)
        whole = tracks_path.read_bytes(), preds_path.read_bytes()
        monkeypatch.setattr(_FullAfter, "ROOM", len(whole[1]) + 30)  # the next frame's predictions do not fit
        with pytest.raises(DiskFullError, match="disk is full"):
            with whole_frame(tr, pr):
                tr.write(1, 0.04, _tracks())  # fits, then is cut back with the frame
                assert len(tracks_path.read_bytes()) > len(whole[0])
                pr.write(1, 0.04, fc)
    assert (tracks_path.read_bytes(), preds_path.read_bytes()) == whole
    assert len(_read(tracks_path)) == 3 and len(_read(preds_path)) == 3  # header + frame 0 only


def test_a_sink_that_cannot_open_its_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot write"):
        with TracksCsv(tmp_path / "missing" / "tracks.csv", NAMES):
            pass


def test_write_csv_atomic_replaces_whole_and_keeps_the_old_table_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "scores.csv"
    write_csv_atomic(path, ["a", "b"], [[1, 2.5], ["x", ""]])
    assert _read(path) == [["a", "b"], ["1", "2.5"], ["x", ""]]

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(DiskFullError):
        write_csv_atomic(path, ["a", "b"], [[3, 4]])
    assert _read(path) == [["a", "b"], ["1", "2.5"], ["x", ""]]  # the last complete table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]  # no temp file left
