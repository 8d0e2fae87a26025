"""Image <-> ground plane: a homography fitted from point pairs, or a scale for overhead cameras.

Why: forecasts in pixels cannot say "1.2 m/s" or "within 1 m"; mapping each box's foot point (bottom centre,
where the object touches the ground) onto a calibrated ground plane can. Both camera kinds are one 3x3
matrix, so every consumer maps points the same way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import combinations
from typing import cast

import cv2
import numpy as np

from pipeline.core.config import CameraConfig
from pipeline.core.errors import UserError

_COLLINEAR = 1e-3  # triangle area / spread^2 below this: three points on one line


@dataclass(frozen=True)
class Camera:
    """Maps image pixels to ground metres (`to_ground`) and back (`to_image`).

    `H` maps homogeneous (u, v, 1) to the ground; `side` is the sign of the homogeneous w of points on the
    calibrated ground, so points at or beyond the horizon (w of the other sign) map to NaN, never to garbage.
    """

    H: np.ndarray
    kind: str  # "homography" or "scale"
    side: float = 1.0

    @staticmethod
    def _apply(M: np.ndarray, pts: np.ndarray, side: float) -> np.ndarray:
        pts = np.asarray(pts, np.float64)
        flat = pts.reshape(-1, 2)
        w = flat @ M[2, :2] + M[2, 2]
        out = (flat @ M[:2, :2].T + M[:2, 2]) / np.where(w * side > 1e-12, w, np.nan)[:, None]
        return out.reshape(pts.shape)

    def to_ground(self, pts: np.ndarray) -> np.ndarray:
        """(..., 2) pixels -> (..., 2) metres; NaN for points at or above the horizon."""
        return self._apply(self.H, pts, self.side)

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        """(..., 2) metres -> (..., 2) pixels."""
        # H^-1 (H p / w) = p / w: the image point's homogeneous w is 1/w, of the same sign as on the ground side
        return self._apply(np.linalg.inv(self.H), pts, self.side)


@dataclass(frozen=True)
class CalibrationReport:
    """How well the fitted homography reproduces the given pairs (metres), and which pairs RANSAC rejected."""

    pairs: int
    inliers: np.ndarray  # (N,) bool
    errors_m: np.ndarray  # (N,) reprojection error of each pair on the ground
    loo_m: np.ndarray | None = None  # (N,) each pair's error under the fit of the other inliers (5+ pairs)

    def lines(self) -> list[str]:
        e = self.errors_m[self.inliers]
        out = [f"homography from {self.pairs} point pairs ({int(self.inliers.sum())} inliers): reprojection "
               f"error RMS {np.sqrt(np.mean(e ** 2)):.3f} m, max {e.max():.3f} m"]
        if self.loo_m is None:
            out.append("  4 pairs: any homography fits them exactly, so these errors are 0 and check nothing; give 5 or "
                       "more pairs to see each one's error from the others (leave-one-out)")
        for i, (err, ok) in enumerate(zip(self.errors_m, self.inliers)):
            loo = "" if self.loo_m is None else f", {self.loo_m[i]:.3f} m from the others (leave-one-out)"
            out.append(f"  pair {i + 1}: {err:.3f} m{loo}{'' if ok else ' (outlier, not used)'}")
        return out


def camera_from_config(cfg: CameraConfig) -> tuple[Camera, CalibrationReport | None]:
    """The camera a config describes; point pairs are fitted (and checked) here."""
    if cfg.metres_per_pixel or cfg.pixels_per_metre:
        s = cfg.metres_per_pixel or 1.0 / cfg.pixels_per_metre
        return Camera(np.diag([s, s, 1.0]), "scale"), None
    return fit_homography(np.array(cfg.image_points, float), np.array(cfg.world_points, float), cfg.ransac_threshold_m)


def check_pairs(image: np.ndarray, world: np.ndarray) -> None:
    """Refuse point sets no homography can come from, with a one-line reason."""
    if len(image) != len(world):
        raise UserError(f"camera: {len(image)} image points but {len(world)} world points; give one world point per image point")
    if len(image) < 4:
        raise UserError(f"camera: a homography needs at least 4 image/world point pairs, got {len(image)}")
    if not (np.isfinite(image).all() and np.isfinite(world).all()):
        raise UserError("camera: points must be finite numbers")
    for pts, what in ((image, "image"), (world, "world")):
        for i, j in combinations(range(len(pts)), 2):
            if np.allclose(pts[i], pts[j], atol=1e-9):
                raise UserError(f"camera: {what} points {i + 1} and {j + 1} are the same point {pts[i].tolist()}; "
                                "each pair must be a distinct place")
        if _collinear(pts, every_triple=len(pts) == 4):
            which = "three of the 4" if len(pts) == 4 and not _collinear(pts, every_triple=False) else "all"
            raise UserError(f"camera: {which} {what} points lie on one line; pick points spread over the ground, "
                            "no three on a line")


def _collinear(pts: np.ndarray, every_triple: bool) -> bool:
    """All points on one line, or (every_triple) any three of them on one line."""
    spread = float(np.ptp(pts, axis=0).max()) ** 2
    if not every_triple:
        c = pts - pts.mean(axis=0)
        s = np.linalg.svd(c, compute_uv=False)
        return bool(s[1] <= _COLLINEAR * max(s[0], 1e-12))
    for a, b, c in combinations(pts, 3):
        area = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) / 2
        if area <= _COLLINEAR * spread:
            return True
    return False


def fit_homography(image: np.ndarray, world: np.ndarray, ransac_m: float = 0.5) -> tuple[Camera, CalibrationReport]:
    """Image -> ground homography by OpenCV's RANSAC, with the reprojection error of every pair in metres."""
    check_pairs(image, world)
    H, mask = cv2.findHomography(image, world, cv2.RANSAC, ransac_m)
    if H is None or not np.isfinite(H).all() or abs(np.linalg.det(cast(np.ndarray, H))) < 1e-15:
        raise UserError("camera: no homography fits these point pairs (degenerate set); check that each image point "
                        "matches its world point")
    inliers = mask.reshape(-1).astype(bool)
    if inliers.sum() < 4:
        raise UserError(f"camera: only {int(inliers.sum())} of {len(image)} pairs agree with one homography; "
                        "check the pairs (or raise ransac_threshold_m)")
    w = image @ H[2, :2] + H[2, 2]
    side = float(np.sign(np.median(w[inliers])))
    if not np.all(w[inliers] * side > 0):
        raise UserError("camera: the fitted homography puts some image points beyond the horizon; check the pairs")
    cam = Camera(H, "homography", side)
    errors = np.linalg.norm(cam.to_ground(image) - world, axis=1)
    return cam, CalibrationReport(len(image), inliers, errors, leave_one_out(image, world, inliers))


def leave_one_out(image: np.ndarray, world: np.ndarray, inliers: np.ndarray) -> np.ndarray | None:
    """Each pair's ground error under the homography of the other inliers (least squares): a wrong pair stands
    out, which the fit's own errors never show when the pairs are few. None with fewer than 5 inliers."""
    if int(inliers.sum()) < 5:
        return None
    out = np.full(len(image), np.nan)
    for i in range(len(image)):
        rest = inliers.copy()
        rest[i] = False
        H, _ = cv2.findHomography(image[rest], world[rest], 0)
        if H is not None and np.isfinite(H).all():
            q = H @ np.array([image[i, 0], image[i, 1], 1.0])
            out[i] = float(np.linalg.norm(q[:2] / q[2] - world[i])) if abs(q[2]) > 1e-12 else np.inf
    return out


def draw_calibration(frame: np.ndarray, camera: Camera, image: np.ndarray, world: np.ndarray) -> np.ndarray:
    """The frame with the fitted ground grid (a line every 1, 2, 5 or 10 m over the pairs' area and half as much
    around it) and each pair: its image point (ring) and where its world point lands (cross), joined."""
    out = frame.copy()
    lo, hi = world.min(axis=0), world.max(axis=0)
    pad = 0.5 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    step = next(s for s in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0) if float((hi - lo).max()) / s <= 20)
    grid = (0, 200, 255)
    for axis in (0, 1):
        for v in np.arange(np.ceil(lo[axis] / step) * step, hi[axis] + 1e-9, step):
            along = np.linspace(lo[1 - axis], hi[1 - axis], 60)
            pts = np.stack([np.full_like(along, v), along], axis=1)[:, ::1 if axis == 0 else -1]
            px = camera.to_image(pts)
            ok = np.isfinite(px).all(axis=1)
            if ok.sum() > 1:
                cv2.polylines(out, [np.round(px[ok]).astype(np.int32)], False, grid, 1, cv2.LINE_AA)
    for k, (p, w) in enumerate(zip(image, camera.to_image(world))):
        a = tuple(int(v) for v in np.round(p))
        cv2.circle(out, a, 6, (0, 255, 0), 2, cv2.LINE_AA)
        if np.isfinite(w).all():
            b = tuple(int(v) for v in np.round(w))
            cv2.line(out, a, b, (0, 0, 255), 1, cv2.LINE_AA)
            cv2.drawMarker(out, b, (0, 0, 255), cv2.MARKER_CROSS, 12, 2, cv2.LINE_AA)
        cv2.putText(out, str(k + 1), (a[0] + 8, a[1] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1, cv2.LINE_AA)
    cv2.putText(out, f"ground grid every {step:g} m; ring: image point, cross: its world point", (8, 18),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


STILL_CHI2 = 5.99  # 95 % of chi-square with 2 dof: a fitted velocity within this of 0 (in its own noise) is 0


def window_speed(h: deque | list, window_s: float) -> float:
    """Speed of (t, x, y) points by least squares, NaN until they span half a window. A speed the points' own
    scatter cannot tell from standing still is 0: a parked car's foot point jitters by a few centimetres a frame,
    which a slope over 0.5 s reads as 5-8 km/h: a slope within its own standard error (|v|^2 / var(v) below
    chi-square's 95 % with 2 dof) is 0. Detector jitter is correlated from frame to frame (a box breathes), so
    `Path.speed` also asks whether the point stayed put over a longer time."""
    if len(h) < 2 or h[-1][0] - h[0][0] < window_s / 2:
        return np.nan
    a = np.array(h, np.float64)
    tc = a[:, 0] - a[:, 0].mean()
    xy = a[:, 1:] - a[:, 1:].mean(axis=0)
    v = (tc @ xy) / (tc @ tc)
    if len(a) >= 4:
        resid = xy - tc[:, None] * v[None, :]
        var_v = float((resid**2).sum()) / (2 * (len(a) - 2)) / float(tc @ tc)  # per axis, pooled
        if float(v @ v) < STILL_CHI2 * var_v:
            return 0.0
    return float(np.hypot(*v))


STILL_S = 2.0  # a foot point that stayed within `still` of its median this long stands still


class Path:
    """One track's recent foot points: over the speed window, and over STILL_S for the standing-still test."""

    def __init__(self) -> None:
        self.short: deque = deque()
        self.long: deque = deque()

    def add(self, t: float, p: np.ndarray, window_s: float) -> None:
        for q, span in ((self.short, window_s), (self.long, STILL_S)):
            q.append((t, float(p[0]), float(p[1])))
            while q and q[0][0] < t - span:
                q.popleft()

    def speed(self, window_s: float, still: float) -> float:
        """The window's speed; 0 when it is within its noise, or when the point stayed within `still` of its
        median for the last STILL_S (a parked car whose box breathes over the window)."""
        v = window_speed(self.short, window_s)
        if v > 0 and len(self.long) > 2 and self.long[-1][0] - self.long[0][0] >= 0.9 * STILL_S:
            a = np.array(self.long, np.float64)[:, 1:]
            if float(np.hypot(*(a - np.median(a, axis=0)).T).max()) < still:
                return 0.0
        return v


class GroundMotion:
    """Per-track ground positions over the last `window_s`: a smoothed speed (least-squares slope).

    Bounded: each track keeps only its last window, and tracks unseen for `forget_s` are dropped. A
    histogram of every speed reported (0.1 km/h bins up to 300 km/h) gives the summary's median and p95.
    """

    def __init__(self, window_s: float, forget_s: float = 2.0, still_m: float = 0.3) -> None:
        self.window_s, self.forget_s, self.still_m = window_s, forget_s, still_m
        self._hist: dict[int, Path] = {}
        self._last: dict[int, float] = {}
        self.kmh_hist = np.zeros(3001, np.int64)

    def update(self, t: float, track_id: np.ndarray, ground: np.ndarray) -> np.ndarray:
        """(N,) speed in m/s of each track (NaN until it spans half a window or where the point is unmapped)."""
        speeds = np.full(len(track_id), np.nan)
        for i, tid in enumerate(track_id.tolist()):
            h = self._hist.setdefault(tid, Path())
            if np.isfinite(ground[i]).all():
                h.add(t, ground[i], self.window_s)
            self._last[tid] = t
            speeds[i] = h.speed(self.window_s, self.still_m)
        for tid in [k for k, last in self._last.items() if t - last > self.forget_s]:
            del self._hist[tid], self._last[tid]
        ok = speeds[np.isfinite(speeds)]
        np.add.at(self.kmh_hist, np.clip(np.round(ok * 36).astype(int), 0, 3000), 1)
        return speeds

    def summary_line(self) -> str:
        n = int(self.kmh_hist.sum())
        if not n:
            return "ground speeds: none measured (no track was followed for half a speed window on the ground)"
        cum = np.cumsum(self.kmh_hist)
        med, p95 = (np.searchsorted(cum, q * n) / 10 for q in (0.5, 0.95))
        return f"ground speeds (foot points, smoothed over {self.window_s:g} s): median {med:.1f} km/h, p95 {p95:.1f} km/h over {n} track-frames"
