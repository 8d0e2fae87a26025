"""Spreads and alert probabilities through the product's own code on long streams: trajectory sources as cameras.

Each held-out trajectory source (its busiest scene, the first `--minutes` of it) is replayed frame by frame as
a camera would deliver it, through exactly what `track` runs after the tracker (`pipeline.learning.replay`, as
`run.py eval-events` does): TrackHistory -> SelfScoringForecaster (`--predictor auto`, forecasts at the 0.4 s
step) -> EventEngine. Metric points become 1.7 m boxes standing on the point, with a camera back to metres. Two lines are placed across the scene's main
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

from pipeline.core.config import EventsConfig, LineConfig, PredictorConfig  # noqa: E402
from pipeline.events.scoring import BINS, Tally  # noqa: E402
from pipeline.forecast.auto import SERVED  # noqa: E402
from pipeline.learning.loso_bench import SOURCES, load_sources  # noqa: E402
from pipeline.learning.replay import PX_PER_M, Recording, recordings, replay  # noqa: E402

SKIP = ("mot15_tud", "jaad")  # too short for a stream / a moving dashcam (no fixed line to cross)


def busiest(trajs: list, minutes: float) -> Recording:
    """The scene with the most observations, its first `minutes`, as `track` would see it."""
    recs = recordings(trajs, minutes)
    return max(recs, key=lambda r: sum(len(tr) for _, tr in r.frames))


def lines_across(rec: Recording) -> list[LineConfig]:
    """Two lines across the main walking direction, through the 35th and 65th percentile of foot points along
    it, in the units events use for this recording (the data's metres for metric data, else pixels)."""
    last: dict[int, np.ndarray] = {}
    feet, moves = [], []
    for _, tr in rec.frames:
        foot = np.column_stack([(tr.xyxy[:, 0] + tr.xyxy[:, 2]) / 2, tr.xyxy[:, 3]]).astype(np.float64)
        if rec.metric:
            foot = (foot + np.asarray(rec.offset_px)) / PX_PER_M
        for tid, f in zip(tr.track_id.tolist(), foot):
            if tid in last:
                moves.append(f - last[tid])
            last[tid] = f
        feet.append(foot)
    pts, d = np.concatenate(feet), np.array(moves)
    d = d[np.linalg.norm(d, axis=1) > 1e-9]
    u = np.linalg.eigh(d.T @ d)[1][:, -1]  # main axis of motion (sign-free)
    n = np.array([-u[1], u[0]])
    along = pts @ u
    half = float(np.ptp(pts, axis=0).max())
    centre = pts.mean(axis=0)
    out = []
    for name, q in (("a", 35), ("b", 65)):
        c = centre + (np.percentile(along, q) - centre @ u) * u
        out.append(LineConfig(name, [list(map(float, c - half * n)), list(map(float, c + half * n))]))
    return out


def run(rec: Recording, lines: list[LineConfig], on: bool) -> tuple:
    """The served forecasts' 2 s score row and the line-crossing alerts' tally of one run (both recalibrations
    on, or both off)."""
    forecaster, engine = replay(rec, PredictorConfig(recalibrate=on), EventsConfig(lines=lines, recalibrate=on))
    row = next(s for s in forecaster.scorer.scores() if s.predictor == SERVED and s.horizon_s == 2.0)
    return row, engine.scorer.tallies.get(("line_cross_predicted", "*"), Tally())


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
        rec = busiest(data[src.name], a.minutes)
        lines = lines_across(rec)
        (s, on), (_, off) = run(rec, lines, True), run(rec, lines, False)
        said = f"{on.prob_sum / on.alerts:.2f} / {on.raw_sum / on.alerts:.2f} / {off.raw_sum / off.alerts:.2f}" \
            if on.alerts and off.alerts else "-"
        brier = f"{on.brier_sum / on.alerts:.3f} / {on.brier_raw_sum / on.alerts:.3f} / {off.brier_raw_sum / off.alerts:.3f}" \
            if on.alerts and off.alerts else "-"
        true = f"{on.hits / on.alerts:.2f} ({off.hits / off.alerts:.2f} off)" if on.alerts and off.alerts else "-"
        print(f"| {src.name} | {len(rec.frames)} | {s.spread_windows} | {s.in_1sigma:.3f} / {s.in_2sigma:.3f} "
              f"({s.in_1sigma_raw:.3f} / {s.in_2sigma_raw:.3f}) | {s.nll:.2f} ({s.nll_raw:.2f}) | {on.alerts} | {said} | "
              f"{true} | {brier} | {_bins(on)} |", flush=True)
        print(f"{src.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
