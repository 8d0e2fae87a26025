"""DUT (Dalian University of Technology) drone clips: pedestrians and vehicles at intersections and a roundabout.

`data/trajectories_filtered/<clip>_traj_{ped,veh}_filtered.csv` hold Kalman-filtered positions in metres
(columns by header: id, frame, label, x_est, y_est, ...), axes as in the top-down image (y down, inferred).
The filtered pedestrian file of roundabout_05 is missing, so its raw pixel file
`data/trajectories/roundabout_05_traj_ped.csv` (id,x,y,frame,label) is used, divided by the clip's
`data/ratios/<clip>_ratio_pixel2meter.txt` (pixels per metre, 23.0809). roundabout_03 has no pedestrians.

Frames are every video frame at 23.976 fps (24000/1001): time = frame / 23.976. Keys are one recording per clip:
`dut/intersection_01:4` for pedestrian 4, `dut/intersection_01:veh4` for vehicle 4 (ids restart per file).
Labels are the file's ("ped", "veh").
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory
from pipeline.learning.loaders._common import Member, build, drop_nonfinite, members, read_table

FPS = 24000 / 1001
ARCHIVE = "DUT_filtered_ratios.tar.xz"
FILTERED = ("id", "frame", "label", "x_est", "y_est")  # leading columns of both filtered kinds
RAW = ("id", "x", "y", "frame", "label")
PATTERNS = ("*_traj_ped_filtered.csv", "*_traj_veh_filtered.csv", "*_traj_ped.csv", "*_ratio_pixel2meter.txt")


def load(path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """The archive, the dut/ folder holding it, or an unpacked data/ folder; raw pedestrian files only fill in
    clips whose filtered pedestrian file is missing."""
    filtered: dict[str, Member] = {}
    raw: dict[str, Member] = {}
    ratios: dict[str, Member] = {}
    for m in members(path, "DUT trajectories", ARCHIVE, PATTERNS):
        clip, _, kind = m.rel.name.partition("_traj_")
        if m.rel.name.endswith("_ratio_pixel2meter.txt"):
            ratios[m.rel.name.removesuffix("_ratio_pixel2meter.txt")] = m
        elif kind in ("ped_filtered.csv", "veh_filtered.csv"):
            filtered[f"{clip}/{kind.removesuffix('_filtered.csv')}"] = m
        else:  # <clip>_traj_ped.csv, raw pixels
            raw[f"{clip}/ped"] = m
    out: list[Trajectory] = []
    for name, m in sorted(filtered.items()):
        out += _file(m, name, 1.0, skipped)
    for name, m in sorted(raw.items()):
        if name not in filtered:
            out += _file(m, name, 1.0 / _ratio(ratios, name.split("/")[0], m.where), skipped)
    return out


def _ratio(ratios: dict[str, Member], clip: str, where: str) -> float:
    """Pixels per metre of a clip, needed to turn its raw pixel file into metres."""
    m = ratios.get(clip)
    if m is None:
        raise UserError(f"{where} is in pixels but there is no {clip}_ratio_pixel2meter.txt beside it")
    try:
        ratio = float(m.text.strip())
    except ValueError:
        raise UserError(f"{m.where} line 1: expected one number (pixels per metre)") from None
    if not np.isfinite(ratio) or ratio <= 0:
        raise UserError(f"{m.where} line 1: pixels per metre must be positive, got {ratio}")
    return ratio


def _file(m: Member, name: str, metres_per_unit: float, skipped: Counter[str]) -> list[Trajectory]:
    """One csv: columns found by header name; vehicles' ids get a 'veh' prefix so they do not meet pedestrians'."""
    clip, kind = name.split("/")
    header = [c.strip() for c in m.text.split("\n", 1)[0].split(",")]
    need = FILTERED if m.rel.name.endswith("_filtered.csv") else RAW
    missing = [c for c in need if c not in header]
    if missing:
        raise UserError(f"{m.where} line 1: header {','.join(header)!r} lacks {', '.join(missing)}; "
                        f"expected {','.join(need)},...")
    col = {c: header.index(c) for c in need}
    x, y = (col["x_est"], col["y_est"]) if "x_est" in col else (col["x"], col["y"])
    expected = f"{len(header)} comma-separated columns {','.join(header)}"
    a, labels = read_table(m, len(header), expected, delimiter=",", header=1, text_col=col["label"])
    a = drop_nonfinite(a, skipped)
    return build(f"dut/{clip}", a[:, col["id"]], a[:, col["frame"]] / FPS, a[:, [x, y]] * metres_per_unit, skipped,
                 id_prefix="" if kind == "ped" else kind, codes=a[:, col["label"]].astype(np.int64),
                 names=labels or [""])
