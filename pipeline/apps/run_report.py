"""At the end of a run (`track`, each `batch` video, `live --save`): trajectories.png, heatmap.png and report.html.

Fed by the run's sinks (`apps/sinks.py`): each FrameResult goes to `add` (cheap), and `write` runs once the
run's other files are finalised (the report inlines the finished video and scores).
"""

from __future__ import annotations

import dataclasses
import errno
import json
from pathlib import Path

import cv2
import numpy as np
import yaml

from pipeline.core.config import TrackRunConfig
from pipeline.core.errors import UserError
from pipeline.io.run_dirs import RunDir
from pipeline.outputs.plots import RunPictures
from pipeline.outputs.render import shade_zones
from pipeline.apps.processing import FrameProcessor, FrameResult, StopFlag
from pipeline.outputs.report import ReportInputs, render_report
from pipeline.core.errors import FULL_ERRNOS, disk_full_error

PICTURES = ("trajectories.png", "heatmap.png")
REPORT = "report.html"


def _save(path: Path, data: bytes) -> Path:
    """Write a whole file; a full disk is the run's usual one-line DiskFullError."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise disk_full_error(path, exc) from None
        raise UserError(f"cannot write {path}: {exc.strerror or errno.errorcode.get(exc.errno or 0, exc)}") from None
    return path


def _encode(ext: str, image: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise UserError(f"cannot encode a {ext} picture of the run")
    return buf.tobytes()


def _config_yaml(cfg: TrackRunConfig) -> str:
    """The run's effective configuration (YAML file + flags) as YAML; odd values (paths, arrays) as text."""
    plain = json.loads(json.dumps(dataclasses.asdict(cfg), default=lambda v: getattr(v, "tolist", lambda: str(v))()))
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)


class RunReport:
    """Collects the run's pictures frame by frame and the frame with the most tracks (the poster)."""

    def __init__(self, frame_size: tuple[int, int]) -> None:
        self.pictures = RunPictures(frame_size)
        self.poster: FrameResult | None = None

    def add(self, r: FrameResult) -> None:
        self.pictures.add(r.frame.time_s, r.tracks, r.forecasts)
        self.pictures.add_image(r.frame.index, r.frame.image)
        if self.poster is None or len(r.tracks) > len(self.poster.tracks):
            self.poster = r

    def write(self, run_dir: RunDir, proc: FrameProcessor, source: str | Path, summary_lines: list[str],
              video: Path | None) -> list[Path]:
        """The two PNGs and report.html, under the folder's lock; signals wait until they are whole."""
        if self.poster is None:
            return []
        # zlib level 3: a 1080p picture in 0.14 s and 1.4 MB; level 9 took 2.5 s for 1.2 MB (18x the time for 15 %)
        pictures: tuple[np.ndarray, ...] = (self.pictures.trajectories(), self.pictures.heatmap())
        if proc.events is not None:  # the zones and lines the run counted on, with their directions
            pictures = tuple(shade_zones(img, proc.events.static, fill=False) for img in pictures)
        pngs = {name: _encode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3]) for name, img in zip(PICTURES, pictures)}
        poster = _encode(".jpg", proc.annotate(self.poster), [cv2.IMWRITE_JPEG_QUALITY, 85])
        shown = {"Every track, with forecasts made at a few moments": pngs[PICTURES[0]],
                 "Where objects went (heatmap)": pngs[PICTURES[1]]}
        places = proc.events.conflict_places() if proc.events is not None else []
        if places and proc.events is not None:  # the conflict map: in the page only (conflicts.csv has every place)
            img = shade_zones(self.pictures.conflict_map(places), proc.events.static, fill=False)
            shown["Where conflicts happened (red: serious, orange: potential)"] = _encode(
                ".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        with run_dir.relocked(), StopFlag().installed():
            written = [_save(run_dir.file(name), data) for name, data in pngs.items()]
            report = run_dir.file(REPORT)
            inp = ReportInputs(
                source=str(source), summary_lines=[ln for ln in summary_lines if not ln.startswith("wrote ")],
                class_counts=self.pictures.class_counts(proc.detector.names),
                scores_csv=run_dir.path / "forecast_scores.csv",
                pictures=shown,
                poster_jpeg=poster, video=video, config_yaml=_config_yaml(proc.cfg),
                files=list(run_dir.files), event_scores_csv=run_dir.path / "event_scores.csv",
                counts_csv=run_dir.path / "counts.csv", events_csv=run_dir.path / "events.csv")
            written.append(_save(report, render_report(inp).encode("utf-8")))
        return written

