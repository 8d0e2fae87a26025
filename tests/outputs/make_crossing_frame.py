"""Writes tests/outputs/data/crossing_frame150.json: what frame 150 of the yellow crossing gave the annotator.

The label tests read this file instead of running the detector, so they take milliseconds and do not depend
on the machine: `.venv/bin/python -m tests.outputs.make_crossing_frame` regenerates it (seconds on a CPU).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from pipeline.apps.processing import FrameProcessor
from pipeline.core.config import TrackRunConfig, ZonesFileConfig, from_dict, load_yaml
from pipeline.io.frames import VideoFileSource
from tests.conftest import ROOT, SHARED, VIDEOS

FRAME = 150
OUT = Path(__file__).resolve().parent / "data" / "crossing_frame150.json"
WEIGHTS = SHARED / "weights" / "yolo11n_int8_dynamic_openvino_model"


def _r(a: np.ndarray | None) -> list | None:
    return None if a is None else np.round(np.asarray(a, float), 2).tolist()


def main() -> None:
    """Run the crossing to FRAME with its zones and dump that frame's tracks, trails, forecasts and overlay."""
    cfg = from_dict(TrackRunConfig, load_yaml(ROOT / "configs" / "default.yaml"))
    zf = from_dict(ZonesFileConfig, load_yaml(ROOT / "configs" / "zones_yellow_crosswalk.yaml"))
    cfg = dataclasses.replace(cfg, detector=dataclasses.replace(cfg.detector, weights=str(WEIGHTS)),
                              events=dataclasses.replace(cfg.events, zones=zf.zones, lines=zf.lines))
    src = VideoFileSource(VIDEOS / "yellow_crosswalk_640x360.mp4")
    proc = FrameProcessor(cfg, src.info.fps, (src.info.width, src.info.height))
    r = None
    for frame, _ in zip(src, range(FRAME + 1)):
        r = proc.update(frame, proc.detector.detect(frame.image))
    assert r is not None and r.events is not None
    t, fc, ov = r.tracks, r.shown if r.shown is not None else r.forecasts, r.events.overlay
    data = {
        "size": [src.info.width, src.info.height], "names": {str(k): v for k, v in proc.detector.names.items()},
        "tracks": {"xyxy": _r(t.xyxy), "confidence": _r(t.confidence), "class_id": t.class_id.tolist(),
                   "track_id": t.track_id.tolist()},
        "trails": {str(k): _r(v) for k, v in r.trails.items()},
        "forecasts": {"track_id": fc.track_id.tolist(), "t_future_s": _r(fc.t_future_s), "centers": _r(fc.centers),
                      "std": _r(fc.std), "std2": _r(fc.std2)},
        "overlay": {"zones": [[n, _r(p)] for n, p in ov.zones], "lines": [[n, _r(p)] for n, p in ov.lines],
                    "arrows": [[n, _r(a), _r(b)] for n, a, b in ov.arrows], "unit": ov.unit,
                    "alerts": [dataclasses.asdict(a) for a in ov.alerts],
                    "conflicts": [{**dataclasses.asdict(c), "points": _r(c.points)} for c in ov.conflicts]},
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}: {len(t)} tracks, {len(ov.alerts)} alerts, {len(ov.conflicts)} conflicts")


if __name__ == "__main__":
    main()
