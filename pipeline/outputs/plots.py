"""Pictures of a whole run: every track over one frame (`trajectories.png`) and where objects went (`heatmap.png`).

Drawn with OpenCV, which the pipeline already has: no plotting library to install, and a few milliseconds
per frame to collect (points appended, a histogram bin incremented) so a run barely pays for them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.outputs.render import dashed_segments, color_for, put_label
from pipeline.core.types import Forecasts, Tracks

HEAT_CELL = 4  # heatmap bin, pixels
SNAPSHOT_EVERY_S = 1.0  # forecasts kept once per second of video; a few are drawn
MOMENTS = 4  # forecast moments drawn on trajectories.png
BACKGROUND_FRAMES = 7  # frames spread over the run whose median is the pictures' background
BACKGROUND_WIDTH = 960  # they are kept at most this wide (memory), the median is scaled back up
MAX_PATH_POINTS = 200_000  # track points held for trajectories.png; beyond, every other one is dropped
MAX_SNAPSHOTS = 64  # forecast moments held (MOMENTS are drawn); beyond, every other one is dropped


@dataclass
class _Snapshot:
    """The forecasts made at one moment: where each object was and where it was forecast to go."""

    time_s: float
    track_id: np.ndarray
    start: np.ndarray  # (N, 2)
    centers: np.ndarray  # (N, H, 2)


class RunPictures:
    """Collects, frame by frame, what the run's pictures show; writes them at the end."""

    def __init__(self, frame_size: tuple[int, int]) -> None:
        self.size = frame_size
        self.paths: dict[int, list[tuple[float, float]]] = {}
        w, h = frame_size
        self.heat = np.zeros((h // HEAT_CELL + 1, w // HEAT_CELL + 1), np.float32)
        self.snapshots: list[_Snapshot] = []
        self.frames = 0
        self.track_classes: dict[int, dict[int, int]] = {}  # track id -> class id -> frames
        self._samples: list[np.ndarray] = []
        self._stride = 1
        # a live run has no end: points and snapshots are thinned (halved, then taken half as often) at a bound
        self._points, self._path_stride, self._snap_every = 0, 1, SNAPSHOT_EVERY_S

    def add_image(self, index: int, image: np.ndarray) -> None:
        """Keep every `stride`-th frame (downscaled); when 2x BACKGROUND_FRAMES are kept, halve them, double the stride.

        So whatever the run's length, up to 14 frames spread evenly over it are held, never the whole video.
        """
        if index % self._stride:
            return
        w = image.shape[1]
        f = min(1.0, BACKGROUND_WIDTH / w)
        self._samples.append(cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else image)
        if len(self._samples) >= 2 * BACKGROUND_FRAMES:
            self._samples, self._stride = self._samples[::2], self._stride * 2

    def background(self) -> np.ndarray:
        """The median of the kept frames: the scene with the people who walked through mostly gone."""
        med = np.median(np.stack(self._samples), axis=0).astype(np.uint8)
        w, h = self.size
        return cv2.resize(med, (w, h), interpolation=cv2.INTER_LINEAR) if med.shape[:2] != (h, w) else med

    def add(self, time_s: float, tracks: Tracks, forecasts: Forecasts) -> None:
        """One frame: track centres for the paths, box bottoms (feet) for the heatmap, forecasts once a second."""
        self.frames += 1
        c = tracks.centers
        on_path = self.frames % self._path_stride == 0
        for tid, cls, (x, y) in zip(tracks.track_id.tolist(), tracks.class_id.tolist(), c.tolist()):
            path = self.paths.setdefault(tid, [])
            if on_path or not path:  # every track keeps at least its first point
                path.append((x, y))
                self._points += 1
            per = self.track_classes.setdefault(tid, {})
            per[cls] = per.get(cls, 0) + 1
        if self._points > MAX_PATH_POINTS:
            self._thin_paths()
        if len(tracks):
            feet = np.stack([c[:, 0], tracks.xyxy[:, 3]], 1) / HEAT_CELL
            ij = np.clip(np.round(feet).astype(int), 0, [self.heat.shape[1] - 1, self.heat.shape[0] - 1])
            np.add.at(self.heat, (ij[:, 1], ij[:, 0]), 1.0)
        due = not self.snapshots or time_s >= self.snapshots[-1].time_s + self._snap_every
        if len(forecasts) and due:
            by_id = {int(t): i for i, t in enumerate(tracks.track_id)}
            keep = [i for i, t in enumerate(forecasts.track_id.tolist()) if t in by_id]
            if keep:
                start = c[[by_id[int(forecasts.track_id[i])] for i in keep]]
                self.snapshots.append(_Snapshot(time_s, forecasts.track_id[keep], start, forecasts.centers[keep]))
                if len(self.snapshots) > MAX_SNAPSHOTS:
                    self.snapshots, self._snap_every = self.snapshots[::2], 2 * self._snap_every

    def _thin_paths(self) -> None:
        """Every other point of every path (each keeps its last), and half as many points from now on."""
        for tid, pts in self.paths.items():
            self.paths[tid] = pts[::2] + ([pts[-1]] if len(pts) % 2 == 0 else [])
        self._points = sum(len(p) for p in self.paths.values())
        self._path_stride *= 2

    def class_counts(self, names: dict[int, str]) -> dict[str, tuple[int, int]]:
        """class name -> (tracks whose most frequent class it is, detections in tracks)."""
        out: dict[str, list[int]] = {}
        for per in self.track_classes.values():
            main = max(per, key=per.__getitem__)
            out.setdefault(names.get(main, str(main)), [0, 0])[0] += 1
            for cls, n in per.items():
                out.setdefault(names.get(cls, str(cls)), [0, 0])[1] += n
        return {k: (v[0], v[1]) for k, v in out.items()}

    def moments(self) -> list[_Snapshot]:
        """Up to MOMENTS snapshots spread evenly over the run."""
        if len(self.snapshots) <= MOMENTS:
            return self.snapshots
        idx = np.linspace(0, len(self.snapshots) - 1, MOMENTS).round().astype(int)
        return [self.snapshots[i] for i in idx]

    def trajectories(self) -> np.ndarray:
        """Every track's path (ring: first seen, dot: last seen) and the forecasts made at a few moments (dashed)."""
        out = _dimmed(self.background())
        thick = max(1, round(min(out.shape[:2]) / 360))
        for tid, pts in self.paths.items():
            p = np.round(np.asarray(pts)).astype(np.int32)
            col = color_for(tid)
            if len(p) > 1:
                cv2.polylines(out, [p], False, col, thick, cv2.LINE_AA)
            cv2.circle(out, tuple(int(v) for v in p[0]), 2 * thick + 1, col, thick, cv2.LINE_AA)
            cv2.circle(out, tuple(int(v) for v in p[-1]), 2 * thick + 1, col, -1, cv2.LINE_AA)
        moments = self.moments()
        for snap in moments:
            _draw_snapshot(out, snap, thick)
        times = ", ".join(f"{s.time_s:.1f}" for s in moments) or "none"
        _caption(out, [f"{len(self.paths)} tracks over {self.frames} frames: solid = tracked path (ring: first seen, "
                       f"dot: last seen)", f"dashed = forecasts made at t = {times} s (white dot: where the object was)"])
        return out

    def conflict_map(self, places: list[tuple[float, float, str]]) -> np.ndarray:
        """Where each conflict happened (the pair's midpoint at its closest) over the dimmed scene, by severity."""
        out = _dimmed(self.background())
        thick = max(1, round(min(out.shape[:2]) / 360))
        colour = {"serious": (40, 40, 230), "potential": (0, 160, 255)}  # BGR: red, orange
        for x, y, severity in places:
            c = (int(round(x)), int(round(y)))
            cv2.circle(out, c, 5 * thick, colour.get(severity, (200, 200, 200)), -1, cv2.LINE_AA)
            cv2.circle(out, c, 5 * thick, (255, 255, 255), 1, cv2.LINE_AA)
        n = Counter(s for _, _, s in places)
        _caption(out, [f"{len(places)} conflicts where the pair was closest: red = serious ({n['serious']}), "
                       f"orange = potential ({n['potential']})"])
        return out

    def heatmap(self) -> np.ndarray:
        """Where objects' feet (box bottom centres) were, summed over all frames, over the dimmed scene."""
        out = _dimmed(self.background())
        h, w = out.shape[:2]
        heat = cv2.GaussianBlur(self.heat, (0, 0), max(1.0, 0.012 * w / HEAT_CELL))
        heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
        top = float(heat.max())
        if top > 0:
            level = np.sqrt(heat / top)  # square root: paths walked once still show next to busy spots
            colour = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
            alpha = np.clip(level * 1.6, 0, 0.85)[..., None]
            out = (out * (1 - alpha) + colour * alpha).astype(np.uint8)
        _colour_bar(out)
        _caption(out, [f"where objects went: box bottom centres of {len(self.paths)} tracks over {self.frames} frames",
                       "colour: time spent there (square-root scale, brightest = most)"])
        return out


def _dimmed(image: np.ndarray) -> np.ndarray:
    """The frame greyed and darkened, so coloured marks on it stand out (and the PNG stays small)."""
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(grey, 0.45, np.zeros_like(grey), 0, 25)


def _draw_snapshot(out: np.ndarray, snap: _Snapshot, thick: int) -> None:
    for tid, start, centers in zip(snap.track_id.tolist(), snap.start, snap.centers):
        path = np.vstack([start[None], centers])
        col = color_for(tid)
        cv2.polylines(out, dashed_segments(path, 4.0 * thick + 2, 3.0 * thick + 2), False, col, thick, cv2.LINE_AA)
        cv2.circle(out, tuple(int(v) for v in np.round(start)), thick + 2, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, tuple(int(v) for v in np.round(path[-1])), thick + 1, col, -1, cv2.LINE_AA)


def _caption(out: np.ndarray, lines: list[str]) -> None:
    """Lines of text at the top-left, on dark boxes, kept inside the frame."""
    scale = 0.3 + 0.12 * max(1, round(min(out.shape[:2]) / 360))
    step = int(30 * scale) + 4
    for k, line in enumerate(lines):
        put_label(out, line, 4, 4 + step * (k + 1) - 4, (0, 0, 0), (235, 235, 235), scale)


def _colour_bar(out: np.ndarray) -> None:
    """The colour scale (few to many) in the bottom-right corner."""
    h, w = out.shape[:2]
    bw, bh = max(60, w // 6), max(8, h // 60)
    ramp = cv2.applyColorMap(np.linspace(0, 255, bw).astype(np.uint8)[None].repeat(bh, 0), cv2.COLORMAP_INFERNO)
    x0, y0 = w - bw - 10, h - bh - 10
    out[y0:y0 + bh, x0:x0 + bw] = ramp
    scale = 0.3 + 0.12 * max(1, round(min(h, w) / 360))
    put_label(out, "few", x0, y0 - 3, (0, 0, 0), (235, 235, 235), scale)
    (tw, _), _ = cv2.getTextSize("many", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    put_label(out, "many", x0 + bw - tw - 2, y0 - 3, (0, 0, 0), (235, 235, 235), scale)
