"""How good the alerts are: every predicted event is scored once its horizon has passed.

Why: an alert nobody can trust is noise. Precision = share of alerts whose event really happened within the
alert's horizon (plus a tolerance); recall = share of real events, of tracks that had a forecast before the
event, that an alert announced within the horizon before it (recall_all: of every real event); ETA error = real
time minus predicted time. An alert's probability is a promise too: the Brier score and a reliability table
(alerts, mean probability and the share that came true per probability bin) say whether it is kept.
Memory is bounded: only alerts whose horizon has not passed, and real events within the last horizon, are held.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, fields
from pathlib import Path

from pipeline.core.tables import write_csv_atomic
from pipeline.events.reliability import ProbabilityCalibrator
from pipeline.events.types import REAL_OF, Event

BINS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0))  # reliability table: probability bins (the last closed)
SCORE_COLUMNS = ["event", "name", "alerts", "hits", "precision", "real_events", "forecastable", "detected", "recall",
                 "eta_mae_s", "eta_bias_s", "unscored", "announced", "recall_all", "mean_probability", "brier", "mean_probability_raw", "brier_raw",
                 *(f"{c}_{round(lo * 100)}_{round(hi * 100)}" for lo, hi in BINS
                   for c in ("alerts", "probability", "came_true"))]
PREDICTED_OF = {real: predicted for predicted, real in REAL_OF.items()}
LEADS_KEPT = 100_000  # alert leads kept per tally for the median (bounded on endless streams)
CONFIRM_S = 1.0  # a real crossing is reported when the foot point is past the band, up to about this much later
Key = tuple  # (real kind, track, zone/line name) or ("conflict", a, b)


@dataclass
class Tally:
    """Counts of one predicted event kind (and one zone/line name, or all of them)."""

    alerts: int = 0
    hits: int = 0
    real: int = 0
    forecastable: int = 0
    detected: int = 0
    eta_abs: float = 0.0
    eta_signed: float = 0.0
    unscored: int = 0
    announced: int = 0  # real events an alert announced, forecastable or not (recall over every real event)
    prob_sum: float = 0.0
    brier_sum: float = 0.0
    raw_sum: float = 0.0  # the same for the raw share of sample paths (before probability recalibration)
    brier_raw_sum: float = 0.0
    bins: list[list[float]] = field(default_factory=lambda: [[0, 0.0, 0] for _ in BINS])  # alerts, prob sum, true
    leads: list[float] = field(default_factory=list)  # hits: how long before the real event the alert came (bounded)

    def add_scored(self, probability: float, raw: float, came_true: bool) -> None:
        """One scored alert in the probability tallies (Brier score and reliability bins)."""
        self.prob_sum += probability
        self.brier_sum += (probability - float(came_true)) ** 2
        self.raw_sum += raw
        self.brier_raw_sum += (raw - float(came_true)) ** 2
        for b, (lo, hi) in zip(self.bins, BINS):
            if lo <= probability < hi or (hi == BINS[-1][1] and probability == hi):
                b[0] += 1
                b[1] += probability
                b[2] += came_true

    def add(self, other: Tally) -> None:
        """Fold another tally of the same kind into this one (e.g. several recordings' into one)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "bins":
                for b, o in zip(mine, theirs):
                    b[:] = [x + y for x, y in zip(b, o)]
            elif f.name == "leads":
                mine += theirs[:max(0, LEADS_KEPT - len(mine))]
            else:
                setattr(self, f.name, mine + theirs)

    def row(self, kind: str, name: str) -> list[str]:
        def ratio(a: float, b: float) -> str:
            return f"{a / b:.3f}" if b else ""

        rel = [v for n, p, t in self.bins for v in (str(int(n)), ratio(p, n), ratio(t, n))]
        return [kind, name, str(self.alerts), str(self.hits), ratio(self.hits, self.alerts), str(self.real),
                str(self.forecastable), str(self.detected), ratio(self.detected, self.forecastable),
                ratio(self.eta_abs, self.hits), ratio(self.eta_signed, self.hits), str(self.unscored),
                str(self.announced), ratio(self.announced, self.real), ratio(self.prob_sum, self.alerts),
                ratio(self.brier_sum, self.alerts), ratio(self.raw_sum, self.alerts),
                ratio(self.brier_raw_sum, self.alerts), *rel]


def key_of(e: Event) -> Key:
    """The real event an event is about (predicted events map to the real kind they announce)."""
    kind = REAL_OF.get(e.event, e.event)
    if kind == "conflict":
        return (kind, min(e.track_id, e.other_id or 0), max(e.track_id, e.other_id or 0))
    return (kind, e.track_id, e.name)


class AlertScorer:
    """Scores predicted events against the real ones as the stream goes."""

    def __init__(self, tolerance_s: float, reliability: ProbabilityCalibrator | None = None,
                 min_lead_s: float = 0.0) -> None:
        self.tol = tolerance_s
        self.min_lead_s = min_lead_s  # a real event counts as announced only by an alert at least this much before it
        self.reliability = reliability  # learns from every scored alert (its raw probability and the outcome)
        self._pending: deque[tuple[float, Event, float]] = deque()  # (due time, alert, horizon)
        self._real: dict[Key, deque[float]] = {}  # key -> real event times (recent)
        self._issued: dict[Key, deque[tuple[float, float]]] = {}  # key -> (alert time, horizon) (recent)
        self.tallies: dict[tuple[str, str], Tally] = {}
        self._keep_s = 0.0

    def _tally(self, kind: str, name: str) -> list[Tally]:
        """The tallies an event counts in: its predicted kind, for all names and for its own name."""
        kind = PREDICTED_OF.get(kind, kind)
        return [self.tallies.setdefault((kind, n), Tally()) for n in sorted({"*", name or "*"})]

    def add_alert(self, e: Event, horizon_s: float) -> None:
        # scored once a real event dated within the window has had time to be confirmed past the hysteresis band
        self._pending.append((e.time_s + horizon_s + self.tol + CONFIRM_S, e, horizon_s))
        self._issued.setdefault(key_of(e), deque()).append((e.time_s, horizon_s))
        self._keep_s = max(self._keep_s, horizon_s + self.tol + CONFIRM_S)

    def add_real(self, key: Key, kind: str, name: str, when: float, forecastable: bool) -> None:
        """A real entry / crossing / proximity start; `forecastable`: its track(s) had forecasts before it."""
        self._real.setdefault(key, deque()).append(when)
        announced = any(t0 <= when - self.min_lead_s + 1e-9 and when <= t0 + h + self.tol
                        for t0, h in self._issued.get(key, ()))
        for tl in self._tally(kind, name):
            tl.real += 1
            tl.forecastable += forecastable
            tl.detected += forecastable and announced
            tl.announced += announced

    def update(self, t: float) -> None:
        """Score the alerts whose horizon (plus tolerance) has passed; forget what no alert can need."""
        while self._pending and self._pending[0][0] <= t:
            self._score(*self._pending.popleft()[1:])
        for store in (self._real, self._issued):
            for key in list(store):
                q = store[key]
                while q and (q[0] if isinstance(q[0], float) else q[0][0]) < t - 2 * self._keep_s - 1.0:
                    q.popleft()
                if not q:
                    del store[key]

    def _score(self, e: Event, horizon_s: float) -> None:
        real = [w for w in self._real.get(key_of(e), ()) if e.time_s - 1e-9 <= w <= e.time_s + horizon_s + self.tol]
        said = float(e.probability if e.probability is not None else 1.0)
        raw = float(e.probability_raw if e.probability_raw is not None else said)
        if self.reliability is not None:
            self.reliability.observe(e.event, raw, bool(real))
        for tl in self._tally(e.event, e.name):
            tl.alerts += 1
            tl.add_scored(said, raw, bool(real))
            if real:
                tl.hits += 1
                if len(tl.leads) < LEADS_KEPT:
                    tl.leads.append(real[0] - e.time_s)
                err = real[0] - (e.time_s + (e.eta_s or 0.0))
                tl.eta_abs += abs(err)
                tl.eta_signed += err

    def finish(self) -> None:
        """Alerts whose horizon had not passed when the stream ended cannot be scored: counted as unscored."""
        for _, e, _ in self._pending:
            for tl in self._tally(e.event, e.name):
                tl.unscored += 1
        self._pending.clear()

    def rows(self) -> list[list[str]]:
        return [tl.row(kind, name) for (kind, name), tl in sorted(self.tallies.items())]

    def summary_lines(self, served: str) -> list[str]:
        out = []
        for (kind, name), tl in sorted(self.tallies.items()):
            if name != "*" or not kind.endswith("_predicted"):
                continue
            p = f"{tl.hits / tl.alerts:.2f} ({tl.hits}/{tl.alerts})" if tl.alerts else "- (no alert scored)"
            r = (f"{tl.detected / tl.forecastable:.2f} ({tl.detected}/{tl.forecastable} of the real events of tracks "
                 f"already forecast)" if tl.forecastable else "- (none)")
            r_all = f", {tl.announced / tl.real:.2f} of all {tl.real} real events" if tl.real else ""
            eta = f", ETA error mean {tl.eta_abs / tl.hits:.2f} s (bias {tl.eta_signed / tl.hits:+.2f} s)" if tl.hits else ""
            rel = ""
            if tl.alerts:
                rel = (f"; probability said {tl.prob_sum / tl.alerts:.2f} on average, came true {tl.hits / tl.alerts:.2f}, "
                       f"Brier {tl.brier_sum / tl.alerts:.3f} (raw share of paths: {tl.raw_sum / tl.alerts:.2f}, Brier "
                       f"{tl.brier_raw_sum / tl.alerts:.3f})")
            out.append(f"alerts {kind} (from {served} forecasts): precision {p}, recall {r}{r_all}{eta}{rel}")
        return out

    def write(self, path: Path) -> None:
        """event_scores.csv, replaced atomically so a reader never sees half a file."""
        write_csv_atomic(path, SCORE_COLUMNS, self.rows())
