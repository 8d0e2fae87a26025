"""Would a camera's own past help? A probe of an online "scene memory" on top of the tuned Kalman forecast.

A fixed camera sees the same paths again and again (a pavement, a crossing, a station's exits): the residual
of a motion-only forecast where earlier people stood with a similar velocity might predict this person's turn.
This is the idea behind maps of dynamics (e.g. CLiFF-LHMP, Zhu et al. 2023). The probe measures it without
changing the product, every source in `run.py bench-forecast`'s list, honestly:

- causal: a window ending at time t only uses windows of the same camera whose 2 s future ended by t (the
  pipeline could have scored them), at most `CAP` of the most recent (bounded memory);
- the residual (truth - Kalman) of the memory's windows, in body heights, averaged with a Gaussian kernel on
  position and velocity distance (body heights, body heights per second) and shrunk towards 0 by k0;
- settings (kernel widths, k0) chosen leave-one-source-out: for each source, the grid point with the lowest
  mean ratio on all the other sources.

Prints one markdown row per source: windows, the best baseline's ADE at 2 s and memory / best baseline.
Run: `.venv/bin/python benchmarks/scene_memory_probe.py` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.core.config import PredictorConfig  # noqa: E402
from pipeline.forecast.features import FeatureSpec, Window, cv_velocity, window_scale  # noqa: E402
from pipeline.learning.datasets import Trajectory, anchor_times, concat_windows, track_windows  # noqa: E402
from pipeline.learning.evaluation import predict_batched, tuned_baselines  # noqa: E402
from pipeline.learning.loso_bench import SOURCES, load_sources  # noqa: E402

SPEC = FeatureSpec(step_s=0.4, obs_len=6, pred_len=5)  # 2 s ahead, the horizon the issue scores
HORIZON_S = SPEC.pred_len * SPEC.step_s
CAP = 4000  # most recent windows a camera remembers
BLOCK_S = 2.0  # the memory is refreshed every BLOCK_S of a camera's time
QUERIES = 8000  # windows scored per source (seeded subset; the memory holds all of them)
GRID = list(itertools.product((1.0, 2.0), (0.25, 0.5), (1.0, 5.0)))  # (position width, velocity width, k0)


def source_windows(trajs: list[Trajectory]) -> tuple[Window, np.ndarray, np.ndarray, np.ndarray]:
    """Every 2 s window of every trajectory: observed Window, future, the time "now" and the camera it is from."""
    parts, now, cam = [], [], []
    span = SPEC.step_s * (SPEC.obs_len + SPEC.pred_len - 1)
    for tr in trajs:
        if len(tr.times) < 2 or tr.times[-1] - tr.times[0] < span - 1e-6:
            continue
        anchors = anchor_times(tr.times, SPEC)
        win, fut, ok = track_windows(tr, anchors, SPEC)
        if ok.any():
            parts.append((win.take(ok), fut[ok]))
            now += list(anchors[ok])
            cam += [tr.key.split(":")[0]] * int(ok.sum())
    win, fut = concat_windows(parts, SPEC)
    return win, fut, np.asarray(now), np.asarray(cam)


def with_memory(base: np.ndarray, fut: np.ndarray, win: Window, now: np.ndarray, cam: np.ndarray,
                query: np.ndarray, setting: tuple[float, float, float]) -> np.ndarray:
    """`base` (N, H, 2) corrected by each camera's remembered residuals, for the `query` windows only."""
    h_pos, h_vel, k0 = setting
    scale = window_scale(win, SPEC)
    xy, vel = win.xywh[:, -1, :2], cv_velocity(win.xywh[:, :, :2], SPEC)
    resid = (fut[:, :, :2] - base) / scale[:, None, None]
    out = base.copy()
    for c in np.unique(cam):
        idx = np.where(cam == c)[0]
        idx = idx[np.argsort(now[idx], kind="stable")]
        block = np.floor((now[idx] - now[idx[0]]) / BLOCK_S).astype(int)
        for b in np.unique(block):
            q = idx[(block == b) & query[idx]]
            mem = idx[now[idx] + HORIZON_S <= now[idx[0]] + b * BLOCK_S][-CAP:]
            if len(q) == 0 or len(mem) == 0:
                continue
            s = scale[q][:, None]
            dp = np.linalg.norm(xy[q][:, None] - xy[mem][None], axis=2) / s
            dv = np.linalg.norm(vel[q][:, None] - vel[mem][None], axis=2) / s
            w = np.exp(-0.5 * ((dp / h_pos) ** 2 + (dv / h_vel) ** 2))
            r = np.einsum("qm,mhk->qhk", w, resid[mem]) / (w.sum(1)[:, None, None] + k0)
            out[q] += r * scale[q][:, None, None]
    return out


def ade(pred: np.ndarray, fut: np.ndarray, scale: np.ndarray) -> float:
    return float((np.linalg.norm(pred - fut[:, :, :2], axis=2) / scale[:, None]).mean())


def probe(win: Window, fut: np.ndarray, now: np.ndarray, cam: np.ndarray) -> tuple[int, float, list[float]]:
    """Windows scored, the better baseline's ADE at 2 s, and memory / better baseline for every grid setting."""
    query = np.random.default_rng(0).random(len(fut)) < min(1.0, QUERIES / len(fut))
    scale = window_scale(win, SPEC)[query]
    base = {m: predict_batched(p, win)[0][:, :, :2] for m, p in tuned_baselines(SPEC, PredictorConfig()).items()}
    best = min(ade(b[query], fut[query], scale) for b in base.values())
    ratios = [ade(with_memory(base["kalman"], fut, win, now, cam, query, g)[query], fut[query], scale) / best
              for g in GRID]
    return int(query.sum()), best, ratios


def main() -> None:
    data = load_sources(SimpleNamespace(data_root=ROOT.parent / "shared" / "data", project_root=ROOT), lambda s: None)
    results = {}
    for src in SOURCES:
        if src.held_out and data[src.name]:
            t0 = time.perf_counter()
            results[src.name] = probe(*source_windows(data[src.name]))
            print(f"{src.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print("| held-out source | windows | better baseline ADE @2 s | memory / better @2 s | setting (LOSO) |")
    print("|---|---|---|---|---|")
    for name, (n, best, _) in results.items():
        others = np.array([r[2] for k, r in results.items() if k != name])
        g = int(np.argmin(others.mean(axis=0)))
        print(f"| {name} | {n} | {best:.3f} | {results[name][2][g]:.3f} | {GRID[g]} |", flush=True)


if __name__ == "__main__":
    main()
