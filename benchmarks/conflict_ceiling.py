"""What limits predicted conflicts on DUT (issue 21): the alert rule, the forecast, or the data?

Every DUT recording (its first `--minutes`) is replayed through the same TrackHistory -> forecaster ->
EventEngine objects as `track` and `run.py eval-events` (`pipeline.learning.replay`), with:

- `oracle`: forecasts that ARE the true future positions (zero spread: one sample path), for tracks followed at
  least `predictor.min_history_s`, fresh every frame. A diagnostic bound that lives only in this file, never a
  product predictor: what the alert rule gets from a perfect forecast.
- `cv`, `kalman` and the shipped default (`auto`: lstm, cv and kalman scored online, the best served).

Each with the conflict alert rules (`events.conflict_alert`): `meet` (a sample path's footprints meet, paths
continued 1.5 s past the horizon) and `course` (the constant-velocity time to collision along the path falls to
`conflict_ttc_s`, the real conflicts' own definition). Alerts and real conflict starts are recorded once per run
and scored afterwards as `AlertScorer` does (the 1 s figures are checked against its own tallies): precision
(alerts whose pair's real conflict began within the horizon plus tolerance), recall at 0.5 / 1 / 2 s lead (of
the real conflicts whose tracks were being forecast, as eval-events), F1 at 1 s, median lead, ETA error; for
all recordings and for two halves (even / odd in name order) so a choice made on one half is reported on the
other. Then the data's own limits: real conflicts by kind (a collision course, or only paths crossing within
1 s), the recall ceiling from track age (both tracks followed `min_history_s` + lead before the conflict
began) and the conflicts that begin within the recording's first seconds or past the `--minutes` cut.

Run: `make bench-conflicts` (`--thresholds 0.3,0.7,0.9 --persist 0.4 --mean-only`: alert probability thresholds
chosen on one half and reported on the other, alerts that must persist, the mean forecast alone; about 4 hours on
2 shared vCPUs). Runs are cached in `--cache` (JSON; delete it to measure again).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.core.config import EventsConfig, PredictorConfig, from_dict, load_yaml  # noqa: E402
from pipeline.core.types import Forecasts, Tracks  # noqa: E402
from pipeline.events.scoring import CONFIRM_S, AlertScorer, Key  # noqa: E402
from pipeline.events.types import Event  # noqa: E402
from pipeline.forecast.auto import WindowFn, build_forecaster  # noqa: E402
from pipeline.learning.datasets import load  # noqa: E402
from pipeline.learning.replay import Recording, build_engine, fps_of, recordings, run_frames  # noqa: E402

LEADS = (0.5, 1.0, 2.0)


class Oracle:
    """Forecasts that are the recording's true future boxes (held at a track's last one past its end), zero
    spread, fresh every frame, for tracks followed at least `min_history_s`. Diagnostic only."""

    def __init__(self, rec: Recording, horizon_s: float, step_s: float, min_history_s: float) -> None:
        self.fut = step_s * np.arange(1, int(round(horizon_s / step_s)) + 1)
        self.min_history_s = min_history_s
        seen: dict[int, list[tuple[float, np.ndarray]]] = {}
        for t, tr in rec.frames:
            for tid, box in zip(tr.track_id.tolist(), tr.xyxy):
                seen.setdefault(tid, []).append((t, box))
        self.times = {k: np.array([t for t, _ in v]) for k, v in seen.items()}
        self.boxes = {k: np.array([b for _, b in v]) for k, v in seen.items()}

    def update(self, time_s: float, tracks: Tracks, windows: WindowFn) -> Forecasts:
        ids = [tid for tid in tracks.track_id.tolist() if time_s - self.times[tid][0] >= self.min_history_s - 1e-9]
        if not ids:
            return Forecasts.empty(self.fut)
        boxes = np.array([[np.interp(time_s + self.fut, self.times[k], self.boxes[k][:, c]) for c in range(4)]
                          for k in ids]).transpose(0, 2, 1)  # (N, H, 4)
        centers = np.stack([boxes[..., [0, 2]].mean(-1), boxes[..., [1, 3]].mean(-1)], axis=-1)
        return Forecasts(np.array(ids), self.fut, centers, boxes=boxes)


class Nothing:
    """No forecasts at all: a run that only finds the real conflicts."""

    def update(self, time_s: float, tracks: Tracks, windows: WindowFn) -> Forecasts:
        return Forecasts.empty(np.zeros(0))


class RecordingScorer(AlertScorer):
    """AlertScorer that also keeps every conflict alert and real conflict start, to score them afterwards."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.alerts: list[tuple[float, list[int], float, float, float]] = []  # t, pair, horizon, eta, raw probability
        self.reals: list[tuple[float, list[int], bool]] = []  # t, pair, forecastable

    def add_alert(self, e: Event, horizon_s: float) -> None:
        if e.event == "conflict_predicted":
            pair = sorted([int(e.track_id), int(e.other_id or 0)])
            self.alerts.append((e.time_s, pair, horizon_s, float(e.eta_s or 0.0), float(e.probability_raw or 0.0)))
        super().add_alert(e, horizon_s)

    def add_real(self, key: Key, kind: str, name: str, when: float, forecastable: bool) -> None:
        if kind == "conflict":
            self.reals.append((when, [int(key[1]), int(key[2])], bool(forecastable)))
        super().add_real(key, kind, name, when, forecastable)


def run_one(rec: Recording, predictor: str, pcfg: PredictorConfig, ecfg: EventsConfig) -> dict[str, Any]:
    """One recording through one forecaster: its conflict alerts, real starts, first-seen times and 1 s tallies."""
    if predictor == "oracle":
        forecaster: Any = Oracle(rec, pcfg.horizon_s, pcfg.step_s, pcfg.min_history_s)
    elif predictor == "none":
        forecaster = Nothing()
    else:
        forecaster = build_forecaster(replace(pcfg, kind=predictor), max_gap_s=max(1.0, 2.5 / fps_of(rec)),
                                      at_steps=True)
    engine = build_engine(rec, ecfg)
    scorer = RecordingScorer(ecfg.score_tolerance_s, engine.reliability, min_lead_s=1.0)
    engine.scorer = scorer
    run_frames(rec, forecaster, engine)
    engine.finish()
    tl = scorer.tallies.get(("conflict_predicted", "*"))
    first: dict[int, float] = {}
    for t, tr in rec.frames:
        for tid in tr.track_id.tolist():
            first.setdefault(tid, t)
    crossing_only = [[int(r[0]), int(r[1]), float(r[4])] for r in engine.conflicts.rows if r[8] == ""]
    return {"alerts": scorer.alerts, "reals": scorer.reals, "end": rec.frames[-1][0],
            "first_seen": {str(k): v for k, v in first.items()}, "crossing_only": crossing_only,
            "check": None if tl is None else [tl.alerts, tl.hits, tl.forecastable, tl.detected]}


def score(runs: Iterable[dict[str, Any]], tol: float) -> dict[str, Any]:
    """Precision, recall at each lead (of forecastable real conflicts, and of all), median lead and ETA error over
    runs, as AlertScorer counts them."""
    alerts = hits = real = forecastable = 0
    detected = dict.fromkeys(LEADS, 0)
    announced = dict.fromkeys(LEADS, 0)
    leads: list[float] = []
    eta_err: list[float] = []
    for run in runs:
        by_pair: dict[tuple[int, ...], list[float]] = {}
        for t, pair, _ in run["reals"]:
            by_pair.setdefault(tuple(pair), []).append(t)
        for t0, pair, h, eta, _ in run["alerts"]:
            if t0 + h + tol + CONFIRM_S > run["end"] + 1e-9:
                continue  # its horizon had not passed when the recording ended: unscored
            alerts += 1
            came = [w for w in by_pair.get(tuple(pair), ()) if t0 - 1e-9 <= w <= t0 + h + tol]
            if came:
                hits += 1
                leads.append(came[0] - t0)
                eta_err.append(abs(came[0] - (t0 + eta)))
        for when, pair, fc in run["reals"]:
            real += 1
            forecastable += fc
            for lead in LEADS:
                ok = any(p == pair and t0 <= when - lead + 1e-9 and when <= t0 + h + tol
                         for t0, p, h, _, _ in run["alerts"])
                detected[lead] += fc and ok
                announced[lead] += ok
    prec = hits / alerts if alerts else float("nan")
    rec = {lead: detected[lead] / forecastable if forecastable else float("nan") for lead in LEADS}
    f1 = 2 * prec * rec[1.0] / (prec + rec[1.0]) if prec + rec[1.0] > 0 else 0.0
    return {"alerts": alerts, "hits": hits, "precision": prec, "real": real, "forecastable": forecastable,
            "recall": rec, "recall_all_1s": announced[1.0] / real if real else float("nan"), "f1": f1,
            "median_lead_s": float(np.median(leads)) if leads else float("nan"),
            "eta_mae_s": float(np.mean(eta_err)) if eta_err else float("nan")}


def fmt(v: float, nd: int = 2) -> str:
    return "-" if v != v else f"{v:.{nd}f}"


def row(name: str, s: dict[str, Any]) -> str:
    r = s["recall"]
    return (f"| {name} | {s['alerts']} | {fmt(s['precision'])} | {fmt(r[0.5])} | {fmt(r[1.0])} | {fmt(r[2.0])} | "
            f"{fmt(s['f1'])} | {s['real']} ({s['forecastable']}) | {fmt(s['recall_all_1s'])} | "
            f"{fmt(s['median_lead_s'], 1)} | {fmt(s['eta_mae_s'])} |")


HEAD = ("| {what} | alerts | precision | recall @0.5 s | recall @1 s | recall @2 s | F1 @1 s | real (forecast) | "
        "recall of all @1 s | median lead s | ETA error s |\n|---|---|---|---|---|---|---|---|---|---|---|")


def age_ceiling(runs: dict[str, dict[str, Any]], min_history_s: float, minutes: float | None) -> list[str]:
    """Real conflicts whose two tracks were followed long enough before it began to be announced that early."""
    out = ["| lead s | real conflicts | both tracks followed min_history_s + lead before it began | share | "
           "began within min_history_s + lead of the recording's start |", "|---|---|---|---|---|"]
    reals = [(when, [run["first_seen"][str(x)] for x in pair]) for run in runs.values() for when, pair, _ in run["reals"]]
    for lead in (0.0, *LEADS):
        need = min_history_s + lead
        old = sum(all(when - f >= need - 1e-9 for f in firsts) for when, firsts in reals)
        early = sum(when < need for when, _ in reals)
        out.append(f"| {lead:g} | {len(reals)} | {old} | {fmt(old / max(len(reals), 1))} | {early} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dut"))
    ap.add_argument("--minutes", type=float, default=0.5, help="first minutes of each recording (eval-events' figure)")
    ap.add_argument("--predictors", default="oracle,cv,kalman,auto")
    ap.add_argument("--rules", default="meet,course,conflict")
    ap.add_argument("--thresholds", default="", help="extra alert probabilities (chosen on one half, shown on the other)")
    ap.add_argument("--persist", type=float, default=0.0, help="also: alerts that must persist this long (seconds)")
    ap.add_argument("--mean-only", action="store_true", help="also: the mean forecast alone (one sample path, no spread)")
    ap.add_argument("--lever-predictors", default="cv,auto", help="predictors the thresholds and --persist are run with")
    ap.add_argument("--lever-rule", default="conflict", help="the alert rule they are run with")
    ap.add_argument("--only", default="", help="comma-separated substrings of recording names")
    ap.add_argument("--cache", default=str(ROOT / "runs" / "conflict_ceiling.json"))
    a = ap.parse_args()
    data = load_yaml(ROOT / "configs" / "default.yaml")
    pcfg = replace(from_dict(PredictorConfig, data.get("predictor"), "predictor."),
                   weights=str(ROOT / "weights" / "traj_lstm.pt"))
    ecfg = from_dict(EventsConfig, data.get("events"), "events.")
    trajs = load("dut", a.data, "all")
    recs = [r for r in recordings(trajs, a.minutes) if not a.only or any(s in r.name for s in a.only.split(","))]
    cache_path = Path(a.cache)
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def runs_of(pred: str, rule: str, p_alert: float, persist: float = 0.0, samples: int | None = None
                ) -> dict[str, dict[str, Any]]:
        out = {}
        for rec in recs:
            key = f"{pred}|{rule}|{p_alert:g}|{a.minutes}|{rec.name}" + (f"|persist {persist:g}" if persist else "") \
                + (f"|samples {samples}" if samples else "")
            if key not in cache:
                t0 = time.time()
                cache[key] = run_one(rec, pred, pcfg, replace(ecfg, conflict_alert=rule, alert_probability=p_alert,
                                                              conflict_persist_s=persist,
                                                              samples=samples or ecfg.samples))
                print(f"{key}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                cache_path.write_text(json.dumps(cache))
            out[rec.name] = cache[key]
        return out

    tol = ecfg.score_tolerance_s
    halves = {"A (even)": [r.name for r in recs[0::2]], "B (odd)": [r.name for r in recs[1::2]]}
    print(f"DUT, {len(recs)} recordings, first {a.minutes:g} min of each; alert probability "
          f"{ecfg.alert_probability:g}; recall of the real conflicts whose tracks were being forecast\n")
    print(HEAD.format(what="predictor, rule"))
    table: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for pred in a.predictors.split(","):
        for rule in a.rules.split(","):
            runs = runs_of(pred, rule, ecfg.alert_probability)
            table[(pred, rule)] = runs
            s = score(runs.values(), tol)
            chk = [sum(x) for x in zip(*(r["check"] or [0, 0, 0, 0] for r in runs.values()))]
            assert chk[:2] == [s["alerts"], s["hits"]] and chk[3] == round(s["recall"][1.0] * s["forecastable"]), chk
            print(row(f"{pred}, {rule}", s), flush=True)
    print("\nBy half (recordings in name order, alternately):\n")
    print(HEAD.format(what="predictor, rule, half"))
    for (pred, rule), runs in table.items():
        for half, names in halves.items():
            print(row(f"{pred}, {rule}, {half}", score([runs[n] for n in names], tol)))
    thresholds = [float(x) for x in a.thresholds.split(",") if x]
    rule = a.lever_rule
    if thresholds:
        print(f"\nAlert probability threshold ({rule} rule) chosen by F1 @1 s on one half, reported on the other; "
              "both: each half scored with the threshold chosen on the other (cross-fitted):\n")
        print(HEAD.format(what="predictor: threshold (chosen on) -> reported on"))
        for pred in a.lever_predictors.split(","):
            by_thr = {p: runs_of(pred, rule, p) for p in sorted({*thresholds, ecfg.alert_probability})}
            for p, runs in by_thr.items():
                print(row(f"{pred}: {p:g} (fixed) -> all", score(runs.values(), tol)))
            crossed = []
            for fit, test in ((0, 1), (1, 0)):
                (fit_half, fit_names), (test_half, test_names) = list(halves.items())[fit], list(halves.items())[test]
                best = max(by_thr, key=lambda p: score([by_thr[p][n] for n in fit_names], tol)["f1"])
                crossed += [by_thr[best][n] for n in test_names]
                print(row(f"{pred}: {best:g} (on {fit_half}) -> {test_half}", score([by_thr[best][n] for n in test_names], tol)))
            print(row(f"{pred}: chosen on the other half -> both", score(crossed, tol)))
    if a.persist:
        print(f"\nAlerts that must persist {a.persist:g} s ({rule} rule, alert probability {ecfg.alert_probability:g}):\n")
        print(HEAD.format(what="predictor, persist"))
        for pred in a.lever_predictors.split(","):
            print(row(f"{pred}, {a.persist:g} s", score(runs_of(pred, rule, ecfg.alert_probability, a.persist).values(), tol)))
    if a.mean_only:
        print(f"\nThe mean forecast alone ({rule} rule; one sample path, so an alert whenever it is in conflict):\n")
        print(HEAD.format(what="predictor, mean path"))
        for pred in a.lever_predictors.split(","):
            print(row(f"{pred}, mean only", score(runs_of(pred, rule, ecfg.alert_probability, samples=1).values(), tol)))
    print("\nWhat the data allows (real conflicts, the same in every run):\n")
    truth = runs_of("none", "meet", ecfg.alert_probability)
    n_real = sum(len(r["reals"]) for r in truth.values())
    n_cross = sum(len(r["crossing_only"]) for r in truth.values())
    print(f"- real conflicts: {n_real}; {n_cross} of them only paths crossing within serious_pet_s (never on a "
          f"collision course of TTC <= conflict_ttc_s), the rest a collision course")
    print(*age_ceiling(truth, pcfg.min_history_s, a.minutes), sep="\n")
    if a.minutes is not None:
        full = {}
        for rec in recordings(trajs, None):
            if rec.name in truth and rec.frames[-1][0] > 60 * a.minutes:
                key = f"none|meet|full|{rec.name}"
                if key not in cache:
                    cache[key] = run_one(rec, "none", pcfg, ecfg)
                    cache_path.write_text(json.dumps(cache))
                full[rec.name] = cache[key]
        cut = sum(sum(w > 60 * a.minutes for w, _, _ in r["reals"]) for r in full.values())
        print(f"\n- recordings longer than {a.minutes:g} min: {len(full)}; real conflicts beginning past the cut: {cut}")


if __name__ == "__main__":
    main()
