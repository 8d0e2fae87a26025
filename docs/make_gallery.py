"""Regenerate the README gallery from a run of the sample clip (`make gallery` runs it).

Usage: python docs/make_gallery.py RUN_DIR OUT_DIR. Picks the frame whose forecast moves the most (so the
picture shows trail, forecast, ticks and cone), and keeps every picture under MAX_BYTES by scaling it down.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

MAX_BYTES = 150_000


def busiest_forecast_frame(predictions: Path, size: tuple[int, int]) -> int:
    """The frame index where some object's forecast travels farthest (first step to last) inside the frame."""
    ends: dict[tuple[str, str], list[tuple[int, float, float]]] = defaultdict(list)
    with predictions.open(newline="") as fh:
        for r in csv.DictReader(fh):
            ends[(r["frame"], r["track_id"])].append((int(r["step"]), float(r["pred_cx"]), float(r["pred_cy"])))
    best, frame = -1.0, 0
    for (f, _), pts in ends.items():
        pts.sort()
        inside = all(0.05 * size[0] < x < 0.95 * size[0] and 0.05 * size[1] < y < 0.95 * size[1] for _, x, y in pts)
        d = float(np.hypot(pts[-1][1] - pts[0][1], pts[-1][2] - pts[0][2])) if inside else -1.0
        if d > best:
            best, frame = d, int(f)
    return frame


def read_frame(video: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"cannot read frame {index} of {video}")
    return image


def save_small(image: np.ndarray, path: Path) -> int:
    """Write PNG/JPEG, scaling down by 10 % steps until it is under MAX_BYTES; returns the size."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 82] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 9]
    while True:
        ok, buf = cv2.imencode(path.suffix, image, params)
        if ok and len(buf) <= MAX_BYTES:
            path.write_bytes(buf.tobytes())
            return len(buf)
        image = cv2.resize(image, None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)


def main(run: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    size = cv2.imread(str(run / "trajectories.png")).shape[1::-1]
    index = busiest_forecast_frame(run / "predictions.csv", size)
    items = {"frame.jpg": read_frame(run / "annotated.mp4", index),
             "trajectories.png": cv2.imread(str(run / "trajectories.png")),
             "heatmap.png": cv2.imread(str(run / "heatmap.png"))}
    for name, image in items.items():
        print(f"{out / name}: {save_small(image, out / name):,} bytes" + (f" (frame {index})" if name == "frame.jpg" else ""))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
