"""Whole-process A/B: our `run.py track` (annotated video + CSVs + report) against ultralytics' model.track loop.

Each pair runs both as fresh processes, one after the other (A then B, then B then A for the next pair, so
drift in the machine's load hits both), and the ratio of the pair's wall-clock times is kept; the median of
the pairs is printed (the issue's acceptance measure). Start-up, model loading and the end of the run count.

    python benchmarks/ab_track.py --source ../shared/data/videos/oxford_street_pedestrians_1080p.mp4 --pairs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT.parent / "shared" / "weights" / "yolo11n_int8_dynamic_openvino_model"

# what a user writes: decode with OpenCV, model.track(frame, persist=True), nothing written
LOOP = """
import sys, cv2
from ultralytics import YOLO
model = YOLO(sys.argv[2], task="detect")
cap = cv2.VideoCapture(sys.argv[1])
n, limit = 0, int(sys.argv[3]) or 10**9
while n < limit:
    ok, frame = cap.read()
    if not ok:
        break
    model.track(frame, persist=True, conf=0.25, iou=0.7, classes=[0, 1, 2, 3, 5, 7], verbose=False)
    n += 1
"""


def _run(cmd: list[str]) -> float:
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True)
    p.add_argument("--weights", default=str(WEIGHTS))
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--max-frames", type=int, default=0, help="0: the whole video")
    p.add_argument("--json", help="append the result as one JSON line to this file")
    p.add_argument("--config", help="our track's --config (e.g. one with output.report: false, to see its cost)")
    a = p.parse_args()
    ratios, ours_s, theirs_s = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for k in range(a.pairs):
            ours = [sys.executable, "run.py", "track", "--source", a.source, "--weights", a.weights, "--quiet",
                    "--out", str(Path(d) / f"run{k}"), *(["--max-frames", str(a.max_frames)] if a.max_frames else []),
                    *(["--config", a.config] if a.config else [])]
            theirs = [sys.executable, "-c", LOOP, a.source, a.weights, str(a.max_frames)]
            if k % 2 == 0:
                o, t = _run(ours), _run(theirs)
            else:
                t, o = _run(theirs), _run(ours)
            ours_s.append(o)
            theirs_s.append(t)
            ratios.append(t / o)
            print(f"pair {k + 1}: ours {o:.1f} s, model.track loop {t:.1f} s, ratio {t / o:.2f}x", flush=True)
    med = statistics.median(ratios)
    print(f"{Path(a.source).name}: median of {a.pairs} pairs: our track is {med:.2f}x the speed of the model.track loop")
    if a.json:
        with open(a.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"source": Path(a.source).name, "config": a.config, "ours_s": ours_s, "model_track_s": theirs_s,
                                 "ratios": ratios, "median_ratio": med, "load_1min": os.getloadavg()[0]}) + "\n")


if __name__ == "__main__":
    main()
