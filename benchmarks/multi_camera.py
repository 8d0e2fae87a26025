"""Three 640x360 cameras at once through `run.py live --source cameras.yaml`: per-camera fps and latency.

Why: with several cameras on one machine every camera gets a share of the cores; this measures the share, and
what watching all of them in a browser costs (the actors then JPEG-encode every frame and ship it to the driver).
Each camera is a local MJPEG server (tests/mjpeg_server.py) looping a shared 640x360 video at its own frame rate
(crosswalk 30 fps, street 10 fps), run headless with the shipped detector and default config for `--seconds`
of processing per camera. Configurations: one camera alone (the baseline), three cameras with a client reading
each camera's MJPEG stream from `--serve` (the page's cost), three cameras with `--save` (video + CSVs).
Figures come from each camera's own summary: processed fps and latency (age of a frame when it was done).
Run: `.venv/bin/python benchmarks/multi_camera.py [--seconds 30]`; writes benchmarks/multi_camera.md.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
CAMERAS = {"crosswalk": VIDEOS / "yellow_crosswalk_640x360.mp4", "street": VIDEOS / "street_traffic_640x360.mp4",
           "crosswalk2": VIDEOS / "yellow_crosswalk_640x360.mp4"}
SUMMARY = re.compile(r"^camera (\S+): .*?\n  live: .*?processed (\d+) of (\d+) captured frames in ([\d.]+) s "
                     r"\(([\d.]+) fps\), dropped (\d+).*?\n  latency .*?median (\d+) ms, p95 (\d+) ms", re.M | re.S)


@dataclass
class Figures:
    camera: str
    processed: int
    captured: int
    seconds: float
    fps: float
    latency_median_ms: int
    latency_p95_ms: int
    page_frames: int = 0  # JPEGs a reader of the camera's --serve stream received


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streams(names: list[str]) -> tuple[list[subprocess.Popen], dict[str, str]]:
    procs, urls = [], {}
    for name in names:
        port = free_port()
        p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "mjpeg_server.py"), str(CAMERAS[name]), str(port),
                              "--loop"], stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        procs.append(p)
        urls[name] = f"http://127.0.0.1:{port}/video.mjpg"
    return procs, urls


def read_stream(url: str, counts: dict[str, int], name: str, stop: threading.Event) -> None:
    """A browser watching one camera: counts the JPEGs it gets (retries until the server is up)."""
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                while not stop.is_set():
                    line = r.readline()
                    if not line:
                        break
                    if line.startswith(b"Content-Length:"):
                        counts[name] = counts.get(name, 0) + 1
        except OSError:  # not serving yet, or the run ended: try again until told to stop
            time.sleep(0.5)


def run_config(names: list[str], seconds: float, extra: list[str], watch: bool) -> tuple[list[Figures], float]:
    """One `live --source cameras.yaml` run; each camera's figures and the run's wall time."""
    procs, urls = start_streams(names)
    web = free_port()
    counts: dict[str, int] = {}
    stop = threading.Event()
    readers = [threading.Thread(target=read_stream, args=(f"http://127.0.0.1:{web}/stream.mjpg?camera={n}", counts,
                                                          n, stop), daemon=True) for n in names] if watch else []
    with tempfile.TemporaryDirectory() as tmp:
        yaml = Path(tmp) / "cameras.yaml"
        yaml.write_text("cameras:\n" + "".join(f"  - {{name: {n}, source: '{u}'}}\n" for n, u in urls.items()))
        cmd = [sys.executable, str(ROOT / "run.py"), "live", "--source", str(yaml), "--no-show", "--out",
               str(Path(tmp) / "out"), "--max-seconds", str(seconds), "--serve", f"127.0.0.1:{web}", *extra]
        t0 = time.monotonic()
        for t in readers:
            t.start()
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=seconds + 600,
                                 env={**os.environ, "YOLO_OFFLINE": "1"})
        finally:
            stop.set()
            for p in procs:
                p.kill()
                p.wait()
        wall = time.monotonic() - t0
    if out.returncode != 0:
        raise SystemExit(f"live failed ({out.returncode}): {out.stderr[-2000:]}")
    figs = [Figures(m[1], int(m[2]), int(m[3]), float(m[4]), float(m[5]), int(m[7]), int(m[8]),
                    counts.get(m[1], 0)) for m in SUMMARY.finditer(out.stdout)]
    assert len(figs) == len(names), out.stdout
    return figs, wall


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if ln.startswith("Model name")), "unknown CPU")
    return f"{model}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start"


def table(rows: list[tuple[str, list[Figures], float]]) -> list[str]:
    out = ["| configuration | camera | processed fps | latency median ms | latency p95 ms | frames on the page | run wall s |",
           "|---|---|---|---|---|---|---|"]
    for config, figs, wall in rows:
        for f in figs:
            page = f"{f.page_frames} ({f.page_frames / f.seconds:.1f}/s)" if f.page_frames else "-"
            out.append(f"| {config} | {f.camera} | {f.fps:.1f} | {f.latency_median_ms} | {f.latency_p95_ms} | {page} | "
                       f"{wall:.0f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="processing time per camera (--max-seconds)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "multi_camera.md"))
    a = ap.parse_args()
    where = machine()
    configs = [("1 camera, page watched", ["crosswalk"], [], True),
               ("3 cameras, every camera watched on the page", list(CAMERAS), [], True),
               ("3 cameras, --save (video + CSVs), nobody watching", list(CAMERAS), ["--save"], False)]
    rows = []
    for label, names, extra, watch in configs:
        print(f"{label} ...", file=sys.stderr, flush=True)
        figs, wall = run_config(names, a.seconds, extra, watch)
        rows.append((label, figs, wall))
        print("\n".join(table([(label, figs, wall)])[2:]), flush=True)
    lines = ["# Several cameras at once (`live --source cameras.yaml`)", "",
             f"`benchmarks/multi_camera.py --seconds {a.seconds:g}` on {where}. Each camera: a local MJPEG server "
             "looping a 640x360 video (crosswalk 30 fps, street 10 fps), the shipped detector, default config, headless; `--max-seconds` of "
             "processing per camera (the wall time adds Ray's start, three model loads and the files' finishing). "
             "Figures from each camera's own summary; 'frames on the page': JPEGs a client reading that camera's "
             "`/stream.mjpg?camera=NAME` received.", "", *table(rows), ""]
    Path(a.out).write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
