"""Online spread recalibration: each predictor's 1-sigma and 2-sigma regions made to hold what they promise.

A forecast's spread is an ellipse per future step, `std` (N, H, 2) on the x and y axes. A 1-sigma ellipse of
a 2-D Gaussian holds the true position 39.3 % of the time and the 2-sigma one 86.5 %; the trained spreads
miss both by a different amount on every camera, and errors are heavy-tailed (a scale that fixes 1 sigma
leaves 2 sigma at 0.6-0.78 on held-out sources). So the calibrator keeps, per predictor and horizon step, the
Mahalanobis radius of the predictor's own recent forecasts under their trained spread (once their future has
arrived: causal), and publishes two regions by split-conformal quantiles of those radii:

- `std`: the trained ellipse scaled so that it holds 39.3 % (the level a Gaussian's 1 sigma holds);
- `std2`: the trained ellipse scaled so that it holds 86.5 % (2 sigma's level; 2 x std only for Gaussian errors).

The distribution behind the two regions is the bivariate Student-t whose 39.3 % and 86.5 % ellipses they are
(at most 10 degrees of freedom; the trained spread, std2 = 2 std, stays the Gaussian it was trained as): its
radius has a closed-form CDF, so NLL and sample paths for the events
follow from the two written columns alone. Memory: at most `window` radii per predictor and step.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from pipeline.core.types import Forecasts

LEVEL_1SIGMA = 1.0 - math.exp(-0.5)  # 0.393: share inside a 2-D Gaussian's 1-sigma ellipse
LEVEL_2SIGMA = 1.0 - math.exp(-2.0)  # 0.865: ... inside its 2-sigma ellipse
NU_MAX = 10  # the lightest tail a recalibrated spread is given (see fit_nu)
MIN_STD = 1e-6  # source units: a spread is never exactly 0 (a standing object's forecast is still uncertain)


@dataclass(frozen=True)
class CalibrationSettings:
    """How the spreads are recalibrated (PredictorConfig carries the user's choice)."""

    window: int = 1000  # most recent scored points per predictor and step (bounded memory; 10-60 s of a busy scene)
    warmup: int = 30  # scored points at a step before its recalibrated spread is used; the trained one until then


def _radius_ratio(nu: np.ndarray) -> np.ndarray:
    """86.5 % over 39.3 % ellipse radius of a bivariate t with `nu` degrees of freedom (2 for a Gaussian)."""
    return np.sqrt(((1 - LEVEL_2SIGMA) ** (-2 / nu) - 1) / ((1 - LEVEL_1SIGMA) ** (-2 / nu) - 1))


def fit_nu(ratio: np.ndarray) -> np.ndarray:
    """Degrees of freedom of the bivariate t whose 86.5 % / 39.3 % radius ratio is `ratio`, at most NU_MAX; inf
    (a Gaussian) only where the ratio is exactly 2, the trained spread as it was trained. A recalibrated pair
    never gets a lighter tail than t with NU_MAX: every camera has rare gross errors (a box that jumps, an id
    that switches) that a window of recent points may not have seen yet, and under a Gaussian one of them costs
    an NLL in the thousands."""
    r = np.asarray(ratio, np.float64)
    out = np.full(r.shape, float(NU_MAX))
    out[np.abs(r - 2.0) <= 1e-6] = np.inf
    heavy = np.isfinite(r) & (r > _radius_ratio(np.array(float(NU_MAX))))
    if heavy.any():
        lo: np.ndarray
        hi: np.ndarray
        lo, hi, rr = np.full(int(heavy.sum()), 0.05), np.full(int(heavy.sum()), float(NU_MAX)), r[heavy]
        for _ in range(50):  # bisection in log nu; the ratio falls monotonically towards 2 as nu grows
            mid = np.sqrt(lo * hi)
            wider = _radius_ratio(mid) > rr
            lo, hi = np.where(wider, mid, lo), np.where(wider, hi, mid)
        out[heavy] = np.sqrt(lo * hi)
    return out


def _d2_at(level: float, nu: np.ndarray) -> np.ndarray:
    """Squared radius (in t-scale units) of the ellipse that holds `level`: P(D^2 <= x) = 1 - (1 + x/nu)^(-nu/2)."""
    gauss = ~np.isfinite(nu)
    n = np.where(gauss, 1.0, nu)
    return np.where(gauss, -2.0 * math.log(1.0 - level), n * ((1.0 - level) ** (-2.0 / n) - 1.0))


def t_params(std: np.ndarray, std2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale (..., 2), nu (...)) of the bivariate t whose 39.3 % / 86.5 % ellipses have semi-axes std / std2."""
    ratio = np.nanmean(np.asarray(std2) / np.maximum(np.asarray(std), MIN_STD), axis=-1)
    nu = fit_nu(ratio)
    return np.asarray(std) / np.sqrt(_d2_at(LEVEL_1SIGMA, nu))[..., None], nu


def nll(err: np.ndarray, std: np.ndarray, std2: np.ndarray | None = None) -> np.ndarray:
    """Negative log-likelihood (...,) of offsets `err` (..., 2) under the published distribution: the bivariate t
    of the two regions, or the Gaussian of `std` alone (std2 None). Units are those of the inputs."""
    std = np.maximum(std, MIN_STD)
    scale, nu = t_params(std, 2 * std if std2 is None else std2)  # 2:1 is the Gaussian (nu inf)
    d2 = ((err / scale) ** 2).sum(-1)
    gauss = ~np.isfinite(nu)
    n = np.where(gauss, 1.0, nu)
    tail = np.where(gauss, 0.5 * d2, 0.5 * (n + 2) * np.log1p(d2 / n))
    return np.log(2 * np.pi * scale[..., 0] * scale[..., 1]) + tail


def inside(err: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(...,) whether each offset (..., 2) lies inside the axis-aligned ellipse with semi-axes `axes` (..., 2)."""
    return ((err / np.maximum(axes, MIN_STD)) ** 2).sum(-1) <= 1.0


def region(std: np.ndarray, std2: np.ndarray | None, level: float) -> np.ndarray:
    """Semi-axes (..., 2) of the ellipse that holds `level` of true positions under the published distribution
    (a Gaussian of std when std2 is None)."""
    std = np.maximum(std, MIN_STD)
    scale, nu = t_params(std, 2 * std if std2 is None else std2)  # 2:1 is the Gaussian (nu inf)
    return scale * np.sqrt(_d2_at(level, nu))[..., None]


def sample_offsets(std: np.ndarray, std2: np.ndarray, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Offsets (N, S, T, 2) from the published distribution of each point (N, T, 2), one radius quantile u (N, S)
    and one direction theta (N, S) per sample path, the same along the path (a path's error grows together)."""
    scale, nu = t_params(std, std2)  # (N, T, 2), (N, T)
    n = np.where(np.isfinite(nu), nu, 1.0)[:, None]
    uu = np.clip(u, 0.0, 1.0 - 1e-9)[..., None]  # (N, S, 1)
    d2 = np.where(np.isfinite(nu)[:, None], n * ((1.0 - uu) ** (-2.0 / n) - 1.0), -2.0 * np.log1p(-uu))
    r = np.sqrt(d2)[..., None]  # (N, S, T, 1)
    direction = np.stack([np.cos(theta), np.sin(theta)], axis=-1)[:, :, None, :]  # (N, S, 1, 2)
    return r * direction * scale[:, None]


class SpreadCalibrator:
    """Per predictor and step: the recent Mahalanobis radii of its forecasts, and the regions they imply."""

    def __init__(self, settings: CalibrationSettings | None = None) -> None:
        self.settings = settings or CalibrationSettings()
        if self.settings.window < 1 or self.settings.warmup < 1:
            raise ValueError("recalibration needs window >= 1 and warmup >= 1")
        self._radii: dict[str, list[deque[float]]] = {}
        self._mult: dict[str, np.ndarray] = {}  # name -> (H, 2) multipliers of the trained std; NaN while warming up
        self._dirty: set[str] = set()

    def observe(self, name: str, step: np.ndarray, radius: np.ndarray) -> None:
        """Radii (trained-spread Mahalanobis distances) of scored points at horizon steps `step` (0-based)."""
        for k, r in zip(np.asarray(step, np.int64).tolist(), np.asarray(radius, np.float64).tolist()):
            if not math.isfinite(r):
                continue
            steps = self._radii.setdefault(name, [])
            while len(steps) <= k:
                steps.append(deque(maxlen=self.settings.window))
            steps[k].append(r)
            self._dirty.add(name)

    def multipliers(self, name: str, horizon: int) -> np.ndarray:
        """(horizon, 2): how much the trained std is scaled for the 39.3 % and the 86.5 % region at each step
        (NaN where that step is still warming up)."""
        if name in self._dirty:
            steps = self._radii.get(name, [])
            m = np.full((len(steps), 2), np.nan)
            for k, q in enumerate(steps):
                if len(q) >= self.settings.warmup:
                    m[k] = np.quantile(np.fromiter(q, np.float64, len(q)), [LEVEL_1SIGMA, LEVEL_2SIGMA])
            self._mult[name] = m
            self._dirty.discard(name)
        m = self._mult.get(name, np.zeros((0, 2)))
        out = np.full((horizon, 2), np.nan)
        out[: min(horizon, len(m))] = m[:horizon]
        return out

    def warm(self, name: str, horizon: int) -> bool:
        """Whether every one of the first `horizon` steps of a predictor has its recalibrated spread."""
        return bool(np.isfinite(self.multipliers(name, horizon)).all())

    def scored(self, name: str) -> int:
        """Points held for a predictor at its first step (how warm it is)."""
        steps = self._radii.get(name, [])
        return len(steps[0]) if steps else 0

    def apply(self, name: str, fc: Forecasts, fallback: str | None = None) -> Forecasts:
        """`fc` with its std replaced by the 39.3 % region and std2 set to the 86.5 % region. Steps still warming
        up take `fallback`'s multipliers where that predictor is warm (one of the same kind, e.g. the Kalman
        member for the young tracks' Kalman, which sees far fewer points), else the trained std and 2 x it."""
        if fc.std is None:
            return fc
        mult = self.multipliers(name, len(fc.t_future_s))
        if fallback is not None:
            cold = ~np.isfinite(mult).all(axis=1)
            mult[cold] = self.multipliers(fallback, len(fc.t_future_s))[cold]
        spread = calibrated(fc.std, mult)
        return replace(fc, std=spread["std"], std2=spread["std2"])


def calibrated(std_raw: np.ndarray, mult: np.ndarray | None) -> dict[str, np.ndarray]:
    """std and std2 from the trained std (N, H, 2) and per-step multipliers (H, 2) (NaN rows: Gaussian 1 and 2)."""
    m = np.array([[1.0, 2.0]]).repeat(std_raw.shape[1], 0) if mult is None else mult.copy()
    warming = ~np.isfinite(m).all(axis=1)
    m[warming] = (1.0, 2.0)
    m = np.maximum(m, 1e-3)
    raw = np.maximum(std_raw, MIN_STD)
    return {"std": raw * m[None, :, 0, None], "std2": raw * m[None, :, 1, None]}


def gaussian_regions(fc: Forecasts) -> Forecasts:
    """The trained spread as published without recalibration: std, and std2 = 2 std (a Gaussian)."""
    if fc.std is None:
        return fc
    spread = calibrated(fc.std, None)
    return replace(fc, std=spread["std"], std2=spread["std2"])
