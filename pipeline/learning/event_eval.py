"""`run.py eval-events`: predicted events scored on trajectory data, through the same code as `track`.

Every recording of a loader's trajectories is replayed in time order at the data's own rate
(`pipeline.learning.replay`), once with the chosen predictor and once with constant velocity, and the alerts of
each run are scored against the events found in the same real trajectories by the same definitions (zones,
lines, conflicts): precision, recall (real events announced at least `min_lead_s` before they began, of those
whose tracks were being forecast, and of all), the median lead of the alerts that came true, and the mean
absolute error of their predicted time to the event.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.core.config import EventsConfig, PredictorConfig
from pipeline.events.scoring import Tally
from pipeline.learning.datasets import Trajectory
from pipeline.learning.replay import recordings, replay

KINDS = ("conflict_predicted", "zone_enter_predicted", "line_cross_predicted")


@dataclass
class EvalSettings:
    """What eval-events replays and how it scores."""

    predictor: PredictorConfig
    events: EventsConfig
    minutes: float | None = None  # only the first minutes of each recording (None: all of it)
    min_lead_s: float = 0.5


def _row(tl: Tally) -> dict[str, Any]:
    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    return {"alerts": tl.alerts, "hits": tl.hits, "precision": ratio(tl.hits, tl.alerts), "real": tl.real,
            "forecastable": tl.forecastable, "recall": ratio(tl.detected, tl.forecastable),
            "recall_all": ratio(tl.announced, tl.real),
            "median_lead_s": round(float(np.median(tl.leads)), 3) if tl.leads else None,
            "ttc_mae_s": ratio(tl.eta_abs, tl.hits)}


def evaluate_events(trajs: list[Trajectory], s: EvalSettings, log: Callable[[str], None] = lambda m: None
                    ) -> dict[str, dict[str, dict[str, Any]]]:
    """{predictor: {alert kind: scores}} for the chosen predictor and for cv, on every recording."""
    recs = recordings(trajs, s.minutes)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in dict.fromkeys([s.predictor.kind, "cv"]):
        totals = {k: Tally() for k in KINDS}
        for rec in recs:
            _, engine = replay(rec, replace(s.predictor, kind=kind), s.events, min_lead_s=s.min_lead_s)
            for k in KINDS:
                totals[k].add(engine.scorer.tallies.get((k, "*"), Tally()))
            log(f"{kind}: {rec.name} ({len(rec.frames)} frames)")
        out[kind] = {k: _row(tl) for k, tl in totals.items() if tl.alerts or tl.real}
    return out


def format_table(res: dict[str, dict[str, dict[str, Any]]], min_lead_s: float) -> str:
    def f(v: Any) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    rows = [f"| predictor | alert | alerts | precision | real events (forecast) | recall (>= {min_lead_s:g} s lead) | "
            "recall of all | median lead s | TTC / ETA abs error s |", "|---|---|---|---|---|---|---|---|---|"]
    for pred, kinds in res.items():
        for k, r in kinds.items():
            rows.append(f"| {pred} | {k} | {r['alerts']} | {f(r['precision'])} | {r['real']} ({r['forecastable']}) | "
                        f"{f(r['recall'])} | {f(r['recall_all'])} | {f(r['median_lead_s'])} | {f(r['ttc_mae_s'])} |")
    return "\n".join(rows)
