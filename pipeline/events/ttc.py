"""Two-dimensional time to collision between road users with extents: oriented rectangular footprints moving at
constant velocity, overlap by the separating-axis test.

Why extents: a pedestrian is never within 1 m of a car's centre, yet walks into its side; a point-to-point
distance cannot tell a near-miss from a pass. Footprints come from per-class sizes in metres with a camera (a
car 4.5 x 1.8 m along its heading: `events.footprints_m`), else from one size in body heights for everyone.
"""

from __future__ import annotations

import numpy as np

TTC_STEP_S = 0.05  # the time grid the first overlap is searched on, then refined by bisection


def half_sizes(classes: list[str] | None, n: int, sizes: dict[str, tuple[float, float]] | None,
               default: float) -> np.ndarray:
    """(n, 2) half length and half width per object: from `sizes` by class name (metres), else `default` (a
    square of side 2 * default) for unknown classes or when there are no sizes (body heights)."""
    out = np.full((n, 2), float(default))
    if sizes and classes is not None:
        for k, c in enumerate(classes):
            if c in sizes:
                out[k] = np.asarray(sizes[c], float) / 2
    return out


def _perp(u: np.ndarray) -> np.ndarray:
    return np.stack([-u[..., 1], u[..., 0]], axis=-1)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...) dot products of 2-vectors (..., 2): written out, as a sum over a last axis of 2 is slow in numpy."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]


def overlap(rel: np.ndarray, ha: np.ndarray, sa: np.ndarray, hb: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """(...) whether footprint b, centred at `rel` from a's centre, overlaps footprint a. ha, hb: unit headings
    (..., 2); sa, sb: half length and half width (..., 2); all broadcast together."""
    ua, va, ub, vb = ha, _perp(ha), hb, _perp(hb)
    hit = np.ones(np.broadcast_shapes(rel.shape[:-1], ha.shape[:-1], hb.shape[:-1]), bool)
    for n in (ua, va, ub, vb):
        ra = sa[..., 0] * np.abs(_dot(ua, n)) + sa[..., 1] * np.abs(_dot(va, n))
        rb = sb[..., 0] * np.abs(_dot(ub, n)) + sb[..., 1] * np.abs(_dot(vb, n))
        hit &= np.abs(_dot(rel, n)) <= ra + rb
    return hit


def ttc_2d(rel_pos: np.ndarray, rel_vel: np.ndarray, ha: np.ndarray, sa: np.ndarray, hb: np.ndarray,
           sb: np.ndarray, t_max: float) -> np.ndarray:
    """(P,) time until footprint b (at rel_pos from a, moving at rel_vel relative to a) first overlaps a, both
    keeping their velocity and heading: 0 when they overlap now, inf when not within t_max."""
    if not len(rel_pos):
        return np.zeros(0)
    grid = np.arange(0.0, t_max + TTC_STEP_S / 2, TTC_STEP_S)
    rel = rel_pos[:, None] + rel_vel[:, None] * grid[None, :, None]  # (P, K, 2)
    hits = overlap(rel, ha[:, None], sa[:, None], hb[:, None], sb[:, None])
    any_hit = hits.any(axis=1)
    k = np.argmax(hits, axis=1)
    lo, hi = grid[np.maximum(k - 1, 0)], grid[k]
    for _ in range(6):  # bisection between the last free and the first overlapping grid time
        mid = (lo + hi) / 2
        m = overlap(rel_pos + rel_vel * mid[:, None], ha, sa, hb, sb)
        hi, lo = np.where(m, mid, hi), np.where(m, lo, mid)
    t = np.where(k > 0, hi, 0.0)
    return np.where(any_hit, t, np.inf)


def headings(vel: np.ndarray, previous: np.ndarray, min_speed: float) -> np.ndarray:
    """(N, 2) unit headings: the velocity's direction when moving, else the previous heading."""
    speed = np.linalg.norm(vel, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        moving = vel / speed
    return np.where(speed >= min_speed, moving, previous)
