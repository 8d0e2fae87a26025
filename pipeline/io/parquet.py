"""Parquet copies of a run's CSV files: typed columns, each column's unit in the schema metadata.

The CSV writers stay the crash-safe path (whole frames on Ctrl-C or a full disk); at the end of a run each
finished CSV is converted whole with an explicit schema. `--format parquet` then removes the CSVs, `both`
keeps them, so a killed run still has its CSV rows and a finished one has only whole Parquet files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.core.atomic import replacing
from pipeline.core.errors import UserError

FORMATS = ("csv", "parquet", "both")
CONVERTED = ("tracks", "predictions", "events", "counts", "conflicts", "track_summary", "forecast_scores", "event_scores")

_I, _F, _S = pa.int64(), pa.float64(), pa.string()
# column -> (type, unit); units: px of the input video, s, m, m/s, "1" for a plain ratio, "" for names and ids;
# "a|b": a with a camera (--camera), b without: the file says the one of its run
COLUMNS: dict[str, dict[str, tuple[pa.DataType, str]]] = {
    "tracks": {
        "frame": (_I, "frame"), "time_s": (_F, "s"), "track_id": (_I, ""), "class_name": (_S, ""),
        "confidence": (_F, "1"), "x1": (_F, "px"), "y1": (_F, "px"), "x2": (_F, "px"), "y2": (_F, "px"),
        "cx": (_F, "px"), "cy": (_F, "px"), "x_m": (_F, "m"), "y_m": (_F, "m"), "speed_mps": (_F, "m/s"),
    },
    "predictions": {
        "frame": (_I, "frame"), "time_s": (_F, "s"), "track_id": (_I, ""), "class_name": (_S, ""),
        "step": (_I, "step"),
        "t_future_s": (_F, "s"), "t_target_s": (_F, "s"), "pred_cx": (_F, "px"), "pred_cy": (_F, "px"),
        "pred_x1": (_F, "px"), "pred_y1": (_F, "px"), "pred_x2": (_F, "px"), "pred_y2": (_F, "px"),
        "std_x": (_F, "px"), "std_y": (_F, "px"), "std2_x": (_F, "px"), "std2_y": (_F, "px"), "pred_x_m": (_F, "m"), "pred_y_m": (_F, "m"),
    },
    "events": {
        "frame": (_I, "frame"), "time_s": (_F, "s"), "track_id": (_I, ""), "other_id": (_I, ""), "event": (_S, ""),
        "name": (_S, ""), "eta_s": (_F, "s"), "probability": (_F, "1"), "distance": (_F, "m|bh"),
        "direction": (_S, ""), "dwell_s": (_F, "s"),
    },
    "counts": {
        "period": (_S, ""), "start_s": (_F, "s"), "end_s": (_F, "s"), "kind": (_S, ""), "name": (_S, ""),
        "class_name": (_S, ""), "direction": (_S, ""), "count": (_I, ""), "occupancy_max": (_I, ""),
        "dwell_median_s": (_F, "s"), "dwell_p90_s": (_F, "s"),
    },
    "conflicts": {
        "track_a": (_I, ""), "track_b": (_I, ""), "class_a": (_S, ""), "class_b": (_S, ""), "start_s": (_F, "s"),
        "end_s": (_F, "s"), "min_distance": (_F, "m|bh"), "pet_s": (_F, "s"),
        "min_ttc_s": (_F, "s"), "speed_a": (_F, "km/h|bh/s"), "speed_b": (_F, "km/h|bh/s"),
        "delta_v": (_F, "km/h|bh/s"), "angle_deg": (_F, "deg"), "type": (_S, ""), "severity": (_S, ""),
        "predicted_probability": (_F, "1"), "predicted_lead_s": (_F, "s"), "distance_unit": (_S, ""),
        "speed_unit": (_S, ""), "x": (_F, "m|px"), "y": (_F, "m|px"),
    },
    "track_summary": {
        "track_id": (_I, ""), "class_name": (_S, ""), "first_s": (_F, "s"), "last_s": (_F, "s"),
        "duration_s": (_F, "s"), "path_length": (_F, "m|bh"), "length_unit": (_S, ""), "median_speed": (_F, "km/h|bh/s"),
        "max_speed": (_F, "km/h|bh/s"), "speed_unit": (_S, ""), "zones": (_S, ""), "lines": (_S, ""),
    },
    "forecast_scores": {  # errors in body heights (the box height at each point), so cameras compare
        "predictor": (_S, ""), "horizon_s": (_F, "s"), "windows": (_I, ""), "ade_bh": (_F, "bh"), "fde_bh": (_F, "bh"),
        "spread_windows": (_I, ""), "in_1sigma": (_F, "1"), "in_2sigma": (_F, "1"), "nll": (_F, "1"),
        "in_1sigma_raw": (_F, "1"), "in_2sigma_raw": (_F, "1"), "nll_raw": (_F, "1"),
    },
    "event_scores": {
        "event": (_S, ""), "name": (_S, ""), "alerts": (_I, ""), "hits": (_I, ""), "precision": (_F, "1"),
        "real_events": (_I, ""), "recall": (_F, "1"), "eta_mae_s": (_F, "s"), "eta_bias_s": (_F, "s"),
        "recall_all": (_F, "1"), "mean_probability": (_F, "1"), "brier": (_F, "1"),
    },
}


@dataclass(frozen=True)
class Converted:
    """One CSV turned into Parquet: where each lies and how many rows both hold."""

    csv: Path
    parquet: Path
    rows: int


def check_format(fmt: str) -> str:
    """Fail fast on an unknown --format / output.format."""
    if fmt not in FORMATS:
        raise UserError(f"output format must be csv, parquet or both, got {fmt!r}")
    return fmt


def read_csv(path: Path, kind: str, metric: bool = False) -> pa.Table:
    """A run CSV as a typed table; empty fields are nulls; a column this module does not know keeps its inferred type."""
    known = COLUMNS[kind]
    opts = pacsv.ConvertOptions(column_types={k: t for k, (t, _) in known.items()}, null_values=[""],
                                strings_can_be_null=True, quoted_strings_can_be_null=False)
    try:
        table = pacsv.read_csv(path, convert_options=opts)
    except (OSError, pa.ArrowInvalid) as exc:
        raise UserError(f"cannot convert {path} to Parquet: {str(exc).splitlines()[0]}") from None
    return with_units(table, kind, metric)


def unit_of(unit: str, metric: bool) -> str:
    """The unit of this run: "a|b" is a with a camera, b without."""
    with_camera, _, without = unit.partition("|")
    return with_camera if metric or not without else without


def with_units(table: pa.Table, kind: str, metric: bool = False) -> pa.Table:
    """The table with each known column's unit (the one of this run: metres with a camera, body heights or
    pixels without) as field metadata and all units as JSON in the schema metadata."""
    known = COLUMNS[kind]
    fields = [f.with_metadata({"unit": unit_of(known[f.name][1], metric)}) if f.name in known else f
              for f in table.schema]
    units = {f.name: unit_of(known[f.name][1], metric) for f in table.schema if f.name in known}
    meta = {"units": json.dumps(units), "table": kind, "written_by": "run.py (video trajectory prediction)"}
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=meta))


def write_table(table: pa.Table, path: Path) -> Path:
    """Write a Parquet file whole: to a temporary name, then renamed, so a reader never sees half a file."""
    try:
        with replacing(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc}; the CSV files are kept") from None
    return path


def convert_folder(folder: Path, fmt: str, names: Iterable[str] = CONVERTED, metric: bool = False) -> list[Converted]:
    """Convert the folder's CSVs named in `names` to Parquet (not with fmt csv); with fmt parquet remove the CSVs.
    `metric`: the run had a camera (distances in metres, speeds in km/h).

    Every conversion is written before any CSV is removed, so a failure leaves the CSVs in place.
    """
    if check_format(fmt) == "csv":
        return []
    done = []
    for kind in names:
        csv_path = folder / f"{kind}.csv"
        if csv_path.is_file():
            table = read_csv(csv_path, kind, metric)
            done.append(Converted(csv_path, write_table(table, folder / f"{kind}.parquet"), table.num_rows))
    if fmt == "parquet":
        for c in done:
            c.csv.unlink()
    return done


def read_run_table(folder: Path, kind: str) -> pa.Table | None:
    """A run folder's table from its Parquet file, else its CSV (None when it has neither)."""
    pq_path, csv_path = folder / f"{kind}.parquet", folder / f"{kind}.csv"
    if pq_path.is_file():
        return pq.read_table(pq_path)
    return read_csv(csv_path, kind) if csv_path.is_file() else None
