"""Stanford Drone Dataset raw annotations (`<scene>/videoN/annotations.txt`, pixel boxes, every frame at 30 fps)
as ground-plane points in metres.

Columns: track_id xmin ymin xmax ymax frame lost occluded generated "label". The box centre times the video's
metres per pixel from `estimated_scales.yaml` (the scale the SDD README says to use; `sdd_video_index.tsv`
repeats the same numbers; hyang video13/14 are guesses) gives metres, image axes (y down).

Dropped and counted in `skipped`: non-finite rows, "lost" (out of view), "occluded", then every frame but each
3rd ("subsampled to 10 Hz": 30 fps rows are 3x more than any model step needs), then repeated (id, frame).
Generated rows are KEPT: annotators drew key frames and the tool interpolated the rest, so about 98% of rows
are generated and dropping them would leave a few points per track; the interpolation is between real clicks.
Subsampling uses the global frame number (frame % 3 == 0), so all objects of a video share time stamps.
Tracks unseen for more than 1 s are split (keys `sdd/gates/video2:17`, `...:17.1`); the label is the file's
(Pedestrian, Biker, Skater, Cart, Car, Bus).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from pipeline.core.errors import UserError
from pipeline.learning.datasets import Trajectory
from pipeline.learning.loaders._common import Member, build, drop_nonfinite, drop_rows, find_beside, members, read_table

FPS = 30.0
EVERY = 3  # keep frames divisible by this: 30 fps -> 10 Hz
ARCHIVE = "sdd_annotations.tar.xz"
SCALES = "estimated_scales.yaml"
EXPECTED = 'track_id xmin ymin xmax ymax frame lost occluded generated "label" (10 space-separated columns)'


def load(path: Path, skipped: Counter[str]) -> list[Trajectory]:
    """All videos under `path`: the archive, the sdd/ folder holding it, an unpacked folder or one annotations.txt."""
    scales: dict | None = None
    out: list[Trajectory] = []
    for m in members(path, "SDD annotations", ARCHIVE, ("annotations.txt",)):
        scales = _scales(path) if scales is None else scales
        out += _video(m, scales, skipped)
    return out


def _scales(path: Path) -> dict:
    """{scene: {video: {scale: metres per pixel, certainty}}} from the yaml beside the data."""
    f = find_beside(path, SCALES, "to turn SDD pixels into metres")
    try:
        scales = yaml.safe_load(f.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{f} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(scales, dict):
        raise UserError(f"{f} should map scene -> video -> scale")
    return scales


def _scale(scales: dict, scene: str, video: str, where: str) -> float:
    entry = (scales.get(scene) or {}).get(video)
    scale = entry.get("scale") if isinstance(entry, dict) else None
    if not isinstance(scale, int | float) or not np.isfinite(scale) or scale <= 0:
        raise UserError(f"no positive scale for {scene}/{video} in {SCALES} (needed for {where})")
    return float(scale)


def _video(m: Member, scales: dict, skipped: Counter[str]) -> list[Trajectory]:
    """One annotations.txt: rows filtered as the module says, box centres in metres."""
    if len(m.rel.parts) < 3:
        raise UserError(f"{m.where}: cannot tell scene and video; expected <scene>/videoN/annotations.txt")
    scene, video = m.rel.parts[-3], m.rel.parts[-2]
    scale = _scale(scales, scene, video, m.where)
    a, labels = read_table(m, 10, EXPECTED, text_col=9)
    a = drop_nonfinite(a, skipped)
    a = drop_rows(a, a[:, 6] == 1, "lost", skipped)
    a = drop_rows(a, a[:, 7] == 1, "occluded", skipped)
    a = drop_rows(a, a[:, 5] % EVERY != 0, "subsampled to 10 Hz", skipped)
    xy = np.stack([a[:, 1] + a[:, 3], a[:, 2] + a[:, 4]], axis=1) * (scale / 2)
    return build(f"sdd/{scene}/{video}", a[:, 0], a[:, 5] / FPS, xy, skipped,
                 codes=a[:, 9].astype(np.int64), names=labels or [""])
