"""Parquet tables from a real run: typed columns, units in the schema, the same rows as the CSVs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.errors import UserError
from pipeline.io.parquet import COLUMNS, convert_folder, read_csv
from tests.conftest import DETECTOR, VTEST, run_cli


@pytest.fixture(scope="module")
def both_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames of vtest through `track --format both` (CSV and Parquet side by side)."""
    out = tmp_path_factory.mktemp("pq") / "run"
    proc = run_cli("track", "--source", str(VTEST), "--weights", str(DETECTOR), "--out", str(out), "--max-frames", "30",
                   "--no-video", "--quiet", "--format", "both")
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out / 'tracks.parquet'}" in proc.stdout and f"wrote {out / 'run.json'}" in proc.stdout
    return out


def _csv_rows(path: Path) -> int:
    return len(path.read_text().splitlines()) - 1


@pytest.mark.parametrize("kind", ["tracks", "predictions"])
def test_typed_columns_units_and_rows(both_run: Path, kind: str) -> None:
    table = pq.read_table(both_run / f"{kind}.parquet")
    assert table.num_rows == _csv_rows(both_run / f"{kind}.csv") > 0
    schema = table.schema
    assert schema.field("frame").type == pa.int64() and schema.field("track_id").type == pa.int64()
    assert schema.field("time_s").type == pa.float64()
    assert schema.field("time_s").metadata[b"unit"] == b"s"
    units = json.loads(schema.metadata[b"units"])
    assert set(units) == set(schema.names)  # every column of the run has its unit
    assert units == {k: COLUMNS[kind][k][1] for k in schema.names}
    if kind == "tracks":
        assert schema.field("class_name").type == pa.string() and units["cx"] == "px"
        names = [r.split(",")[3] for r in (both_run / "tracks.csv").read_text().splitlines()[1:]]
        assert table.column("class_name").to_pylist() == names and "person" in names
    else:
        assert units["pred_cx"] == "px" and units["t_future_s"] == "s"
        assert table.column("frame").to_pylist()[:3] == [int(r.split(",")[0]) for r in
                                                         (both_run / "predictions.csv").read_text().splitlines()[1:4]]
    frames = [int(r.split(",")[0]) for r in (both_run / f"{kind}.csv").read_text().splitlines()[1:]]
    assert table.column("frame").null_count == 0 and table.column("frame").to_pylist() == frames


def test_parquet_only_removes_the_csvs(both_run: Path, tmp_path: Path) -> None:
    for name in ("tracks.csv", "predictions.csv"):
        shutil.copy(both_run / name, tmp_path / name)
    rows = {k: _csv_rows(tmp_path / f"{k}.csv") for k in ("tracks", "predictions")}
    done = convert_folder(tmp_path, "parquet")
    assert {c.parquet.name: c.rows for c in done} == {f"{k}.parquet": n for k, n in rows.items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.parquet", "tracks.parquet"]
    assert convert_folder(tmp_path, "csv") == []
    with pytest.raises(UserError, match="csv, parquet or both"):
        convert_folder(tmp_path, "xlsx")


def test_empty_fields_are_nulls_and_unknown_columns_kept(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("frame,time_s,track_id,other_id,event,name,eta_s,probability,distance,direction,extra\n"
                    "3,0.3000,5,,zone_enter,door,,,,,x\n4,0.4000,5,7,conflict,,1.200,0.800,0.500,,y\n")
    t = read_csv(path, "events")
    assert t.column("other_id").to_pylist() == [None, 7] and t.schema.field("other_id").type == pa.int64()
    assert t.column("eta_s").to_pylist() == [None, 1.2]
    assert t.column("extra").to_pylist() == ["x", "y"] and b"unit" not in (t.schema.field("extra").metadata or {})
    bad = tmp_path / "tracks.csv"
    bad.write_text("frame,time_s\nnot-a-number,0.1\n")
    with pytest.raises(UserError, match="cannot convert"):
        read_csv(bad, "tracks")
