"""Alert probabilities recalibrated from the run's own scored alerts, so that "80 %" comes true 80 % of the time.

A predicted event's raw probability is the share of forecast sample paths that make it happen. Even with an
honest spread it is not the chance the event is then observed: paths of one forecast are correlated, a track
can be lost before it crosses, a person can stop at the kerb. So each kind of alert keeps its most recent
scored alerts (raw probability, came true or not: known once the alert's horizon has passed, so causal and
bounded) and maps raw to calibrated probability with a logistic fit on the raw log-odds (Platt scaling),
pulled towards the identity by a prior worth `prior` alerts, so a handful of outcomes cannot swing it. Which
alerts are raised does not change (the raw share still has to reach `events.alert_probability`); the
probability they carry does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

P_CLIP = 1.0 / 128  # raw shares are of 64 paths: 0 and 1 are clipped half a path inside, so their log-odds are finite


@dataclass(frozen=True)
class ReliabilitySettings:
    """How alert probabilities are recalibrated (EventsConfig carries the user's choice)."""

    window: int = 500  # most recent scored alerts per kind
    warmup: int = 20  # scored alerts of a kind before its probabilities are recalibrated
    prior: float = 10.0  # weight, in alerts, of the identity map the fit is pulled towards


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), P_CLIP, 1 - P_CLIP)
    return np.log(p / (1 - p))


def fit_platt(p_raw: np.ndarray, came_true: np.ndarray, prior: float, iters: int = 50) -> tuple[float, float]:
    """(a, b) of P(true) = sigmoid(a logit(p) + b), maximum a posteriori with a Gaussian prior at (1, 0) whose
    precision is `prior` / 2 alerts' worth per parameter (Newton's method with step halving: raw shares near 1
    sit where the logistic is flat, and a full Newton step from there overshoots)."""
    x, y = _logit(p_raw), np.asarray(came_true, np.float64)
    w0, lam = np.array([1.0, 0.0]), prior / 2.0

    def loss(w: np.ndarray) -> float:
        z = w[0] * x + w[1]
        return float((np.logaddexp(0, z) - y * z).sum() + 0.5 * lam * ((w - w0) ** 2).sum())

    w = w0.copy()
    for _ in range(iters):
        q = 1 / (1 + np.exp(-np.clip(w[0] * x + w[1], -30, 30)))
        grad = np.array([((q - y) * x).sum(), (q - y).sum()]) + lam * (w - w0)
        h = q * (1 - q)
        hess = np.array([[(h * x * x).sum(), (h * x).sum()], [(h * x).sum(), h.sum()]]) + (lam + 1e-9) * np.eye(2)
        step, now = np.linalg.solve(hess, grad), loss(w)
        t = 1.0
        while loss(w - t * step) > now and t > 1e-6:
            t /= 2
        w = w - t * step
        if np.abs(t * step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])


class ProbabilityCalibrator:
    """Per alert kind: the recent scored alerts and the Platt map they imply."""

    def __init__(self, settings: ReliabilitySettings | None = None) -> None:
        self.settings = settings or ReliabilitySettings()
        if self.settings.window < 1 or self.settings.warmup < 1 or self.settings.prior < 0:
            raise ValueError("probability recalibration needs window >= 1, warmup >= 1 and prior >= 0")
        self._seen: dict[str, deque[tuple[float, bool]]] = {}
        self._fit: dict[str, tuple[float, float] | None] = {}

    def observe(self, kind: str, p_raw: float, came_true: bool) -> None:
        """One scored alert of `kind` (its raw probability, and whether its event happened in time)."""
        self._seen.setdefault(kind, deque(maxlen=self.settings.window)).append((float(p_raw), bool(came_true)))
        self._fit.pop(kind, None)

    def scored(self, kind: str) -> int:
        return len(self._seen.get(kind, ()))

    def __call__(self, kind: str, p_raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw shares of `kind` (the raw ones while the kind warms up)."""
        p = np.asarray(p_raw, np.float64)
        seen = self._seen.get(kind, ())
        if len(seen) < self.settings.warmup:
            return p
        if kind not in self._fit:
            arr = np.array(seen, np.float64)
            self._fit[kind] = fit_platt(arr[:, 0], arr[:, 1], self.settings.prior)
        a, b = self._fit[kind] or (1.0, 0.0)
        return 1 / (1 + np.exp(-np.clip(a * _logit(p) + b, -30, 30)))
