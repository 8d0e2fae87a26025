"""JAAD CVAT XML boxes (pixels, 30 fps)."""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import IO, cast

import numpy as np

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory
from pipeline.learning.loaders._common import need_file


def _jaad_tracks(xml_bytes: bytes, video: str, fps: float, min_boxes: int) -> list[Trajectory]:
    root = ET.fromstring(xml_bytes)
    size = root.find("meta/task/original_size")
    fs = (float(size.findtext("width", "1920")), float(size.findtext("height", "1080"))) if size is not None else (1920.0, 1080.0)
    out = []
    for track in root.iter("track"):
        if track.get("label") not in ("pedestrian", "ped"):
            continue
        rows, pid = [], None
        for box in track.iter("box"):
            if box.get("outside") == "1":
                continue
            pid = pid or box.findtext("attribute[@name='id']")
            x1, y1, x2, y2 = (float(cast(str, box.get(k))) for k in ("xtl", "ytl", "xbr", "ybr"))  # CVAT boxes have all four
            rows.append((int(cast(str, box.get("frame"))), x1, y1, x2, y2))
        if pid is None or "p" in pid.split("_")[-1] or len(rows) < min_boxes:
            continue
        a = np.asarray(sorted(rows), np.float64)
        xywh = np.stack([(a[:, 1] + a[:, 3]) / 2, (a[:, 2] + a[:, 4]) / 2, a[:, 3] - a[:, 1], a[:, 4] - a[:, 2]], axis=1)
        out.append(Trajectory(f"{video}:{pid}", a[:, 0] / fps, xywh, True, fs))
    return out



def load_jaad(archive: str | Path, split: str = "test", fps: float = 30.0, min_boxes: int = 61) -> list[Trajectory]:
    """JAAD pedestrian box tracks from the annotation archive, for the `split_ids/default/<split>.txt` videos.

    Group ids (ending in 'p') are skipped; occluded boxes are kept; tracks shorter than min_boxes dropped.
    """
    archive = Path(archive)
    need_file(archive, "JAAD archive")
    if split not in ("train", "val", "test", "all"):
        raise UserError(f"JAAD split must be train, val, test or all, got {split!r}")
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"{archive} is not a readable JAAD annotation archive: {exc}") from None
    with tar:
        names = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        splits = ("train", "val", "test") if split == "all" else (split,)
        videos: list[str] = []
        for s in splits:
            member = next((m for m in tar.getmembers() if m.name.endswith(f"split_ids/default/{s}.txt")), None)
            if member is None:
                raise UserError(f"{archive} has no split_ids/default/{s}.txt; is it the JAAD annotations archive?")
            videos += cast(IO[bytes], tar.extractfile(member)).read().decode().split()  # a file member
        out: list[Trajectory] = []
        for v in videos:
            m = names.get(f"{v}.xml")
            if m is not None:
                out += _jaad_tracks(cast(IO[bytes], tar.extractfile(m)).read(), v, fps, min_boxes)
    return out


def load(path: Path, skipped: Counter[str], split: str = "test") -> list[Trajectory]:
    """The registry's entry: the annotation archive's `split` videos (JAAD drops no rows it would count)."""
    return load_jaad(path, split)
