"""Spreads and alert probabilities through the product's own code on long streams: trajectory sources as cameras.

Each held-out trajectory source (its busiest scene, the first `--minutes` of it) is replayed frame by frame as
a camera would deliver it, through exactly what `track` runs after the tracker: TrackHistory ->
SelfScoringForecaster (`--predictor auto`, forecasts at the 0.4 s step) -> EventEngine. Metric points become
boxes 1 body height (1.7 m = 170 px) tall, standing on the point. Two lines are placed across the scene's main
walking direction (the principal axis of its displacements, at the 35th and 65th percentiles along it), so
there are crossings to announce. Each source runs twice: recalibration on (spreads and alert probabilities,
the defaults) and off (the trained spread, the raw share of sample paths).

Printed per source: the served (auto) forecasts' coverage and NLL at 2 s after the warm-up (on: recalibrated,
and in the same run the trained spread on the same windows), and the line-crossing alerts' mean probability,
the share that came true, the Brier score and the reliability bins, for both runs.
Run: `.venv/bin/python benchmarks/calibration_streams.py [--minutes 5]` (part of `make bench-calibration`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.core.config import EventsConfig, HistoryConfig, LineConfig, PredictorConfig  # noqa: E402
from pipeline.core.types import Tracks  # noqa: E402
from pipeline.events.engine import EventEngine  # noqa: E402
from pipeline.events.scoring import BINS, Tally  # noqa: E402
from pipeline.forecast.auto import SERVED, build_forecaster  # noqa: E402
from pipeline.forecast.history import TrackHistory  # noqa: E402
from pipeline.learning.loso_bench import SOURCES, load_sources  # noqa: E402

PX_PER_M = 100.0
BODY_M = 1.7
SKIP = ("mot15_tud", "jaad")  # too short for a stream / a moving dashcam (no fixed line to cross)


def camera_stream(trajs: list, minutes: float) -> tuple[list[tuple[float, Tracks]], tuple[int, int]]:
    """The busiest scene's first `minutes` as frames of Tracks (boxes in pixels), and the frame size."""
    scenes: dict[str, list] = {}
    for tr in trajs:
        scenes.setdefault(tr.key.split(":")[0], []).append(tr)
    trs = max(scenes.values(), key=lambda v: sum(len(t.times) for t in v))
    t0 = min(float(t.times[0]) for t in trs)
    rows = []
    for tid, tr in enumerate(trs, start=1):
        keep = tr.times <= t0 + 60 * minutes
        if not keep.any():
            continue
        xywh = tr.xywh[keep].astype(np.float64)
        if not tr.has_box:  # metres -> pixels, a 1.7 m tall box standing on the point
            xywh = np.column_stack([xywh[:, 0] * PX_PER_M, xywh[:, 1] * PX_PER_M - BODY_M * PX_PER_M / 2,
                                    np.full(len(xywh), 0.35 * BODY_M * PX_PER_M), np.full(len(xywh), BODY_M * PX_PER_M)])
        rows += [(round(float(t), 4), tid, b) for t, b in zip(tr.times[keep], xywh)]
    allb = np.array([r[2] for r in rows])
    off = np.array([allb[:, 0].min() - allb[:, 2].max(), allb[:, 1].min() - allb[:, 3].max()]) - 20
    frames: dict[float, list] = {}
    for t, tid, b in rows:
        frames.setdefault(t, []).append((tid, b - [off[0], off[1], 0, 0]))
    out = []
    for t in sorted(frames):
        ids = np.array([r[0] for r in frames[t]])
        b = np.array([r[1] for r in frames[t]])
        xyxy = np.column_stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2])
        out.append((t - t0, Tracks(xyxy, np.ones(len(ids)), np.zeros(len(ids)), ids)))
    size = (int(allb[:, 0].max() - off[0] + allb[:, 2].max() + 20), int(allb[:, 1].max() - off[1] + allb[:, 3].max() + 20))
    return out, size


def lines_across(frames: list[tuple[float, Tracks]], size: tuple[int, int]) -> list[LineConfig]:
    """Two lines across the main walking direction, through the 35th and 65th percentile of foot points along it."""
    last: dict[int, np.ndarray] = {}
    feet, moves = [], []
    for _, tr in frames:
        foot = np.column_stack([(tr.xyxy[:, 0] + tr.xyxy[:, 2]) / 2, tr.xyxy[:, 3]]).astype(np.float64)
        for tid, f in zip(tr.track_id.tolist(), foot):
            if tid in last:
                moves.append(f - last[tid])
            last[tid] = f
        feet.append(foot)
    pts, d = np.concatenate(feet), np.array(moves)
    d = d[np.linalg.norm(d, axis=1) > 1e-6]
    u = np.linalg.eigh(d.T @ d)[1][:, -1]  # main axis of motion (sign-free)
    n = np.array([-u[1], u[0]])
    along = pts @ u
    half = float(np.hypot(*size))
    centre = pts.mean(axis=0)
    out = []
    for name, q in (("a", 35), ("b", 65)):
        c = centre + (np.percentile(along, q) - centre @ u) * u
        out.append(LineConfig(name, [list(map(float, c - half * n)), list(map(float, c + half * n))]))
    return out


def replay(frames: list[tuple[float, Tracks]], size: tuple[int, int], lines: list[LineConfig], on: bool) -> tuple:
    """The served forecasts' 2 s score row and the line-crossing alerts' tally of one run."""
    dts = np.diff([t for t, _ in frames])
    fps = 1.0 / float(np.median(dts[dts > 0]))
    pcfg = PredictorConfig(recalibrate=on)
    ecfg = EventsConfig(lines=lines, recalibrate=on)
    hist_cfg = HistoryConfig()
    history = TrackHistory(hist_cfg, fps)
    forecaster = build_forecaster(pcfg, max_gap_s=max(1.0, 2.5 / fps), at_steps=True)
    events = EventEngine(ecfg, size, hist_cfg.max_lost_s)
    for k, (t, tracks) in enumerate(frames):
        history.update(tracks, t)
        fc = forecaster.update(t, tracks, lambda step_s, obs_len, tr=tracks, t=t: history.windows(
            tr.track_id, t, step_s, obs_len, size))
        events.update(k, t, tracks, fc)
    events.scorer.finish()
    row = next(s for s in forecaster.scorer.scores() if s.predictor == SERVED and s.horizon_s == 2.0)
    return row, events.scorer.tallies.get(("line_cross_predicted", "*"), Tally())


def _bins(tl: Tally) -> str:
    return " / ".join(f"{int(n)} ({p / n:.2f}, {c / n:.2f})" if n else "0" for n, p, c in tl.bins)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="minutes of each source's busiest scene")
    ap.add_argument("--only", nargs="*", default=[], help="only these sources")
    a = ap.parse_args()
    data = load_sources(SimpleNamespace(data_root=ROOT.parent / "shared" / "data", project_root=ROOT), lambda s: None)
    bins = " / ".join(f"{lo:g}-{hi:g}" for lo, hi in BINS)
    print(f"\n## Streams through track's code (busiest scene, first {a.minutes:g} min, auto @2 s after the warm-up; "
          "two lines across the main walking direction)\n")
    print(f"| source | frames | windows | in 1σ / 2σ recal. (trained) | NLL recal. (trained) | line alerts | said: recal. "
          f"/ raw share / spread off | came true | Brier recal. / raw share / spread off | bins {bins}: n (said, true) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for src in SOURCES:
        if not src.held_out or src.name.startswith("video/") or src.name in SKIP or not data.get(src.name):
            continue
        if a.only and src.name not in a.only:
            continue
        t0 = time.perf_counter()
        frames, size = camera_stream(data[src.name], a.minutes)
        lines = lines_across(frames, size)
        (s, on), (_, off) = replay(frames, size, lines, True), replay(frames, size, lines, False)
        said = f"{on.prob_sum / on.alerts:.2f} / {on.raw_sum / on.alerts:.2f} / {off.raw_sum / off.alerts:.2f}" \
            if on.alerts and off.alerts else "-"
        brier = f"{on.brier_sum / on.alerts:.3f} / {on.brier_raw_sum / on.alerts:.3f} / {off.brier_raw_sum / off.alerts:.3f}" \
            if on.alerts and off.alerts else "-"
        true = f"{on.hits / on.alerts:.2f} ({off.hits / off.alerts:.2f} off)" if on.alerts and off.alerts else "-"
        print(f"| {src.name} | {len(frames)} | {s.spread_windows} | {s.in_1sigma:.3f} / {s.in_2sigma:.3f} "
              f"({s.in_1sigma_raw:.3f} / {s.in_2sigma_raw:.3f}) | {s.nll:.2f} ({s.nll_raw:.2f}) | {on.alerts} | {said} | "
              f"{true} | {brier} | {_bins(on)} |", flush=True)
        print(f"{src.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
