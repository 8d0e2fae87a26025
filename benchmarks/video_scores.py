"""The forecasts `track` really writes, scored on every shared video (issue 10's table): `make bench-videos`.

For each video it runs `run.py track` with the default settings (`--predictor auto`, which also runs lstm, cv
and kalman side by side and scores all of them, and what it served, on exactly the same windows), then prints
one markdown row per video from the run's forecast_scores.csv: ADE / FDE at 1 and 2 s in body heights.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
DETECTOR = ROOT.parent / "shared" / "weights" / "yolo11n_int8_dynamic_openvino_model"
METHODS = ("auto", "lstm", "cv", "kalman")


def run(video: Path, out: Path) -> dict[tuple[str, str], tuple[int, float, float]]:
    """Track one video with the defaults; its forecast_scores.csv as {(predictor, horizon): (n, ade, fde)}."""
    cmd = [sys.executable, str(ROOT / "run.py"), "track", "--source", str(video), "--weights", str(DETECTOR),
           "--no-video", "--quiet", "--overwrite", "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    with (out / "forecast_scores.csv").open(newline="") as fh:
        return {(r["predictor"], r["horizon_s"]): (int(r["windows"]), float(r["ade_bh"]), float(r["fde_bh"]))
                for r in csv.DictReader(fh)}


def main() -> None:
    out_root = ROOT / "runs" / "bench_videos"
    print("| video | windows @2 s | auto (served) ADE/FDE @2 s | lstm | cv | kalman | auto / best baseline |")
    print("|---|---|---|---|---|---|---|")
    for video in sorted(VIDEOS.iterdir()):
        s = run(video, out_root / video.stem)
        cells = [f"{s[(m, '2')][1]:.3f} / {s[(m, '2')][2]:.3f}" for m in METHODS]
        best = min(s[("cv", "2")][1], s[("kalman", "2")][1])
        print(f"| {video.name} | {s[('auto', '2')][0]} | {' | '.join(cells)} | {s[('auto', '2')][1] / best:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
