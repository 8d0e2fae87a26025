"""Loaders for real trajectory data, all producing `Trajectory` objects, and the shared windowing.

Formats: ETH/UCY split files (metres, 2.5 Hz), JAAD CVAT XML boxes (pixels, 30 fps), MOTChallenge gt.txt
(pixels), and our own tracks.csv (pixels, time_s column). Windows are cut on the model's time grid by
`make_windows`, which every consumer (training, eval) uses, so they see the same samples.
"""

from __future__ import annotations

import csv
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, cast

import numpy as np

from pipeline.core.errors import UserError
from pipeline.forecast.features import FeatureSpec, Window
from pipeline.forecast.history import resample
from pipeline.learning.loaders import LOADERS, load_source

FORMATS = ("ethucy", "jaad", "mot", "tracks", *LOADERS)


@dataclass(frozen=True)
class Trajectory:
    """One object's observations: times (K,) seconds, xywh (K, 4); w = h = 0 for point data."""

    key: str
    times: np.ndarray
    xywh: np.ndarray
    has_box: bool
    frame_size: tuple[float, float] = (0.0, 0.0)
    label: str = ""  # object class as the source names it (pedestrian, biker, car, ...); "" when unknown

    def __post_init__(self) -> None:
        if self.xywh.shape != (len(self.times), 4):
            raise ValueError(f"{self.key}: xywh must be (K, 4) matching times")
        if len(self.times) > 1 and np.any(np.diff(self.times) <= 0):
            raise ValueError(f"{self.key}: times must increase")


def _need_file(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"{what} {path} is empty")


def _files(path: Path, what: str, pattern: str, recursive: bool, hint: str = "") -> list[Path]:
    """The file itself, or the matching files in a folder; fails when there are none."""
    _need_file(path, what)
    if not path.is_dir():
        return [path]
    files = sorted(path.rglob(pattern) if recursive else path.glob(pattern))
    if not files:
        raise UserError(f"no {pattern} files in {path}{hint}")
    return files


def _group(key_prefix: str, rows: Iterable[tuple[str, float, float, float, float, float]], has_box: bool,
           frame_size: tuple[float, float]) -> list[Trajectory]:
    by_id: dict[str, list[tuple[float, float, float, float, float]]] = defaultdict(list)
    for oid, t, x, y, w, h in rows:
        by_id[oid].append((t, x, y, w, h))
    out = []
    for oid, pts in by_id.items():
        arr = np.asarray(sorted(pts), np.float64)
        keep = np.concatenate([[True], np.diff(arr[:, 0]) > 0])  # drop duplicate timestamps
        arr = arr[keep]
        out.append(Trajectory(f"{key_prefix}:{oid}", arr[:, 0], arr[:, 1:5], has_box, frame_size))
    return out


def _finite_rows(data: np.ndarray, where: Path, skipped: Counter[str] | None) -> np.ndarray:
    """Rows with a NaN or infinite number are dropped and counted (never fed to training or scoring)."""
    ok = np.isfinite(data).all(axis=1)
    if skipped is not None and not ok.all():
        skipped[f"non-finite ({where.name})"] += int((~ok).sum())
    return data[ok]


def load_ethucy(path: str | Path, fps: float = 25.0, skipped: Counter[str] | None = None) -> list[Trajectory]:
    """ETH/UCY split files (`frame ped_id x y`, metres; frames are 25 fps video frames, one row every 10).

    `path` may be a file or a folder of .txt files.
    """
    files = _files(Path(path), "ETH/UCY data", "*.txt", recursive=False)
    out: list[Trajectory] = []
    for f in files:
        try:
            data = np.loadtxt(f, dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise UserError(f"{f} is not an ETH/UCY file (frame id x y per line): {exc}") from None
        if data.size == 0 or data.shape[1] < 4:
            raise UserError(f"{f} is empty or has fewer than 4 columns (frame id x y)")
        data = _finite_rows(data[:, :4], f, skipped)
        rows = ((str(int(r[1])), r[0] / fps, r[2], r[3], 0.0, 0.0) for r in data)
        out += _group(f.stem, rows, False, (0.0, 0.0))
    return out


def load_mot(path: str | Path, fps: float = 25.0, frame_size: tuple[float, float] = (640.0, 480.0),
             skipped: Counter[str] | None = None) -> list[Trajectory]:
    """MOTChallenge gt.txt (`frame,id,x,y,w,h,conf,...`, pixels); rows with conf 0 (ignore regions) dropped."""
    files = _files(Path(path), "MOT ground truth", "gt.txt", recursive=True)
    out: list[Trajectory] = []
    for f in files:
        try:
            data = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise UserError(f"{f} is not a MOT gt.txt file: {exc}") from None
        if data.size == 0 or data.shape[1] < 6:
            raise UserError(f"{f} is empty or has fewer than 6 columns")
        if data.shape[1] > 6:
            data = data[data[:, 6] != 0]
        data = _finite_rows(data[:, :6], f, skipped)
        rows = ((str(int(r[1])), (r[0] - 1) / fps, r[2] + r[4] / 2, r[3] + r[5] / 2, r[4], r[5]) for r in data)
        out += _group(f.parent.name, rows, True, frame_size)
    return out


def load_tracks_csv(path: str | Path, frame_size: tuple[float, float] = (0.0, 0.0),
                    skipped: Counter[str] | None = None) -> list[Trajectory]:
    """Our own tracks.csv (one file, or a folder searched for tracks.csv files)."""
    files = _files(Path(path), "tracks.csv", "tracks.csv", recursive=True, hint="; run `python run.py track` first")
    out: list[Trajectory] = []
    for f in files:
        with f.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            need = {"time_s", "track_id", "x1", "y1", "x2", "y2"}
            if not reader.fieldnames or not need <= set(reader.fieldnames):
                raise UserError(f"{f} is not a tracks.csv (needs columns {', '.join(sorted(need))})")
            rows = []
            for r in reader:
                try:
                    t, x1, y1, x2, y2 = (float(r[k]) for k in ("time_s", "x1", "y1", "x2", "y2"))
                except (TypeError, ValueError):
                    raise UserError(f"{f} line {reader.line_num}: time_s, x1, y1, x2, y2 must be numbers") from None
                if not np.isfinite([t, x1, y1, x2, y2]).all():
                    if skipped is not None:
                        skipped[f"non-finite ({f.name})"] += 1
                    continue
                rows.append((r["track_id"], t, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
        out += _group(str(f.parent.name), rows, True, frame_size)
    return out


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
    _need_file(archive, "JAAD archive")
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


def load(fmt: str, path: str | Path, split: str = "test", skipped: Counter[str] | None = None) -> list[Trajectory]:
    """Dispatch on a format name (see FORMATS); `skipped` counts rows dropped, by reason."""
    skipped = Counter() if skipped is None else skipped
    loaders: dict[str, Callable[[], list[Trajectory]]] = {
        "ethucy": lambda: load_ethucy(path, skipped=skipped),
        "jaad": lambda: load_jaad(path, split),
        "mot": lambda: load_mot(path, skipped=skipped),
        "tracks": lambda: load_tracks_csv(path, skipped=skipped),
        **{name: partial(load_source, name, Path(path), skipped) for name in LOADERS},
    }
    if fmt not in loaders:
        raise UserError(f"unknown data format {fmt!r}; use one of {', '.join(FORMATS)}")
    trajs = loaders[fmt]()
    if not trajs:
        raise UserError(f"no trajectories found in {path} (format {fmt})")
    return trajs


def default_max_gap(spec: FeatureSpec) -> float:
    """Longest interval between real observations a window may bridge: 1.5 steps, at least 1 s.

    1 s lets sources sampled more coarsely than the grid (Grand Central: 0.8 s) and short detector misses in
    video tracks in; the pipeline bridges gaps up to history.max_lost_s the same way (gap_s tells the model).
    """
    return max(1.5 * spec.step_s, 1.0)


def anchor_times(times: np.ndarray, spec: FeatureSpec, stride: int = 1) -> np.ndarray:
    """The observation times a window may end at ("now"): the first observation in every stride*step slot."""
    slot = np.floor((times - times[0]) / (stride * spec.step_s) + 1e-6)
    return times[np.unique(slot, return_index=True)[1]]


def track_windows(
    tr: Trajectory, now_s: np.ndarray, spec: FeatureSpec, max_gap_s: float | None = None
) -> tuple[Window, np.ndarray, np.ndarray]:
    """The windows of one trajectory ending at the times `now_s` (A,), cut as the pipeline cuts them.

    Returns the observed `Window` (A, obs_len), the future xywh (A, pred_len, 4) and a mask (A,) of the windows
    that are whole: inside the trajectory, with no interval between real observations longer than max_gap_s.
    """
    max_gap = default_max_gap(spec) if max_gap_s is None else max_gap_s
    offsets = spec.step_s * np.arange(-(spec.obs_len - 1), spec.pred_len + 1)
    grid = np.asarray(now_s, np.float64)[:, None] + offsets[None, :]
    boxes, gap, span = resample(tr.times, tr.xywh, grid)
    inside = (grid[:, 0] >= tr.times[0] - 1e-6) & (grid[:, -1] <= tr.times[-1] + 1e-6)
    ok = inside & (span <= max_gap + 1e-9).all(axis=1)
    n, t = len(grid), spec.obs_len
    win = Window(boxes[:, :t], gap[:, :t], np.full(n, tr.has_box), np.tile(np.asarray(tr.frame_size, np.float64), (n, 1)))
    return win, boxes[:, t:], ok


def make_windows(
    trajs: list[Trajectory], spec: FeatureSpec, stride: int = 1, max_gap_s: float | None = None
) -> tuple[Window, np.ndarray, list[str]]:
    """Cut (obs_len + pred_len)-step windows on the spec's grid from every trajectory.

    Each window ends at a real observation ("now", as in the pipeline, which forecasts at every frame), at
    most one per `stride` steps; see `track_windows`. Returns the observed `Window`, the future xywh
    (N, pred_len, 4), and each window's trajectory key.
    """
    parts: list[tuple[Window, np.ndarray]] = []
    keys: list[str] = []
    span = spec.step_s * (spec.obs_len + spec.pred_len - 1)
    for tr in trajs:
        if len(tr.times) < 2 or tr.times[-1] - tr.times[0] < span - 1e-6:
            continue
        win, fut, ok = track_windows(tr, anchor_times(tr.times, spec, stride), spec, max_gap_s)
        if ok.any():
            parts.append((win.take(ok), fut[ok]))
            keys += [tr.key] * int(ok.sum())
    win, fut = concat_windows(parts, spec)
    return win, fut, keys


def concat_windows(parts: list[tuple[Window, np.ndarray]], spec: FeatureSpec) -> tuple[Window, np.ndarray]:
    """One batch from several (Window, future) pairs; an empty list gives an empty batch."""
    if not parts:
        empty = Window(np.zeros((0, spec.obs_len, 4)), np.zeros((0, spec.obs_len)), np.zeros(0, bool), np.zeros((0, 2)))
        return empty, np.zeros((0, spec.pred_len, 4))
    ws = [p[0] for p in parts]
    win = Window(np.concatenate([w.xywh for w in ws]), np.concatenate([w.gap_s for w in ws]),
                 np.concatenate([w.has_box for w in ws]), np.concatenate([w.frame_size for w in ws]))
    return win, np.concatenate([p[1] for p in parts])
