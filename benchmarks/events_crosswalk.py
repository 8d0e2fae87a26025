"""Alert benchmark (issue 15): zone-entry and line-crossing alerts on the yellow crossing video, from the
served forecast (`--predictor auto`) vs from constant velocity (`--predictor cv`), same detections and zones.

    .venv/bin/python benchmarks/events_crosswalk.py [--frames N]      (or: make bench-events)

Runs `run.py track --zones configs/zones_yellow_crosswalk.yaml --no-video` once per predictor into
runs/bench_events/<predictor>/ and prints one markdown table from each run's event_scores.csv. Not part of
`make test` (two runs over the whole video take a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT.parent / "shared" / "data" / "videos" / "yellow_crosswalk_640x360.mp4"
DETECTOR = ROOT.parent / "shared" / "weights" / "yolo11n_int8_dynamic_openvino_model"
ZONES = ROOT / "configs" / "zones_yellow_crosswalk.yaml"


def run(predictor: str, frames: int | None) -> Path:
    out = ROOT / "runs" / "bench_events" / predictor
    cmd = [sys.executable, str(ROOT / "run.py"), "track", "--source", str(VIDEO), "--weights", str(DETECTOR),
           "--zones", str(ZONES), "--predictor", predictor, "--no-video", "--quiet", "--overwrite", "--out", str(out)]
    cmd += ["--max-frames", str(frames)] if frames else []
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "YOLO_OFFLINE": "1"})
    if done.returncode != 0:
        sys.exit(done.stderr)
    print(done.stdout, file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, help="only the first N frames (default: the whole video)")
    a = ap.parse_args()
    print("| forecast | alert | alerts | came true | precision | real events (forecast tracks) | announced | recall "
          "| ETA mean abs error | ETA bias |\n|---|---|---|---|---|---|---|---|---|---|")
    for predictor in ("auto", "cv"):
        with (run(predictor, a.frames) / "event_scores.csv").open(newline="") as fh:
            for r in csv.DictReader(fh):
                if r["name"] == "*":
                    print(f"| {predictor} | {r['event']} | {r['alerts']} | {r['hits']} | {r['precision'] or '-'} | "
                          f"{r['real_events']} ({r['forecastable']}) | {r['detected']} | {r['recall'] or '-'} | "
                          f"{r['eta_mae_s'] or '-'} s | {r['eta_bias_s'] or '-'} s |")


if __name__ == "__main__":
    main()
