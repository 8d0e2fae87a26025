"""Conflicts between road users: pairs forecast to come close (time to collision), and real close encounters
(minimum distance, post-encroachment time).

Why both: a predicted conflict is an alert that can still be acted on; the real encounter, measured after the
fact, is what the alert is scored against. Distances are metres with a camera, else body heights (the mean box
height of the pair), so one threshold suits near and far objects in an uncalibrated view.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from pipeline.events.types import ConflictMark, Event
from pipeline.events.zones import median_where


GROUPS = {"person": "person", "bicycle": "cyclist", "car": "vehicle", "bus": "vehicle", "truck": "vehicle",
          "motorcycle": "vehicle", "train": "vehicle"}  # COCO classes -> the road users conflict studies count
MIN_SPEED = 0.2  # units (body heights or metres) per second: slower counts as standing
SAME_OBJECT_IOU = 0.5  # two ids whose boxes overlap this much for most of their shared time are one object


class PairRule:
    """Which pairs of road users can be in conflict: `all`, or `a-b` entries of groups (person, cyclist,
    vehicle) or class names. Conflict techniques (Swedish TCT, DOCTOR) count vehicle-pedestrian,
    vehicle-cyclist, vehicle-vehicle and cyclist-pedestrian encounters, not pedestrians passing each other."""

    def __init__(self, pairs: list[str]) -> None:
        self.all = pairs == ["all"]
        self.pairs = {frozenset(p.split("-", 1)) for p in pairs if not self.all}

    def allowed(self, ca: list[str], cb: list[str]) -> np.ndarray:
        """(P,) whether each pair of class names may be a conflict."""
        if self.all:
            return np.ones(len(ca), bool)
        out = np.zeros(len(ca), bool)
        for k, (a, b) in enumerate(zip(ca, cb)):
            for x in (a, GROUPS.get(a, a)):
                for y in (b, GROUPS.get(b, b)):
                    if frozenset((x, y)) in self.pairs:
                        out[k] = True
        return out


CONFLICT_COLUMNS = ["track_a", "track_b", "class_a", "class_b", "start_s", "end_s", "min_distance", "pet_s",
                    "min_ttc_s", "speed_a", "speed_b", "delta_v", "angle_deg", "type", "severity",
                    "predicted_probability", "predicted_lead_s", "distance_unit", "speed_unit", "x", "y"]
MAX_ROWS = 100_000  # conflicts.csv rows kept (the oldest go first on an endless stream)


def ttc_to(thr: float, rel_pos: np.ndarray, rel_vel: np.ndarray) -> np.ndarray:
    """(P,) time until the separation rel_pos + rel_vel t first drops below thr at constant velocity (0 when it
    already is, inf when it never does): the time to collision with a disc of radius thr around each pair."""
    a = (rel_vel**2).sum(axis=1)
    b = 2 * (rel_pos * rel_vel).sum(axis=1)
    c = (rel_pos**2).sum(axis=1) - thr**2
    disc = b**2 - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    t = np.where((a > 1e-12) & (disc >= 0) & (t >= 0), t, np.inf)
    return np.where(c <= 0, 0.0, t)


def conflict_type(angle_deg: float) -> str:
    """SSAM's classes from the angle between the two headings (NaN: one of them stands)."""
    if not np.isfinite(angle_deg):
        return "one standing"
    return "rear-end" if angle_deg < 30 else "angled" if angle_deg < 85 else "crossing" if angle_deg < 150 else "head-on"


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) IoU of box pairs (P, 4) xyxy."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, k=1)
    return i, j


def parallel(va: np.ndarray, vb: np.ndarray, min_speed: float = 0.2, max_angle_deg: float = 30.0) -> np.ndarray:
    """(P,) pairs moving side by side or one behind the other (both moving, headings within max_angle): people
    walking together or queueing cars are close all the time without ever being in each other's way."""
    sa, sb = np.linalg.norm(va, axis=-1), np.linalg.norm(vb, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = (va * vb).sum(axis=-1) / (sa * sb)
    return (sa > min_speed) & (sb > min_speed) & (cos > np.cos(np.radians(max_angle_deg)))


def _first_below(d: np.ndarray, times: np.ndarray, thr: float) -> np.ndarray:
    """(...,) first time d (..., T) drops below thr, linearly interpolated between grid points (NaN: never)."""
    below = d < thr
    k = np.argmax(below, axis=-1)
    km = np.maximum(k - 1, 0)
    d0 = np.take_along_axis(d, km[..., None], -1)[..., 0]
    d1 = np.take_along_axis(d, k[..., None], -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.clip(np.where(d0 > d1, (d0 - thr) / (d0 - d1), 1.0), 0, 1)
    t = np.where(k > 0, times[km] + f * (times[k] - times[km]), times[k])
    return np.where(below.any(axis=-1), t, np.nan)


class ConflictMonitor:
    """Predicted and real conflicts for every pair of tracks; per-track history bounded to `pet_max_s`."""

    def __init__(self, threshold: float, pet_max_s: float, alert_probability: float,
                 calibrate: Callable[[str, np.ndarray], np.ndarray] = lambda kind, p: p,
                 rule: PairRule | None = None, metric: bool = False,
                 serious_s: tuple[float, float] = (1.5, 1.0)) -> None:
        self.thr, self.pet_max_s, self.p_alert = threshold, pet_max_s, alert_probability
        self.calibrate = calibrate  # (kind, raw shares) -> the probabilities alerts carry
        self.rule = rule or PairRule(["all"])
        self._overlap: dict[tuple[int, int], list[int]] = {}  # near pair -> [frames seen together, frames overlapping]
        self._pet_spot: dict[tuple[int, int], np.ndarray] = {}
        self.serious_ttc_s, self.serious_pet_s = serious_s  # DOCTOR: serious below either TTC or PET
        self.metric = metric  # distances in metres and speeds in km/h (a camera), else body heights (per second)
        self._approach: dict[tuple[int, int], tuple[float, float]] = {}  # pair -> (time, smallest TTC lately)
        self._announced: dict[tuple[int, int], tuple[float, float]] = {}  # pair -> (alert time, probability)
        self._classes: dict[int, str] = {}
        self.rows: deque[list[str]] = deque(maxlen=MAX_ROWS)  # conflicts.csv (the oldest go first)
        self._active: dict[tuple[int, int], float] = {}  # predicted pair -> alert expiry
        self._hist: dict[int, deque] = {}  # track -> (t, x, y) over the last pet_max_s
        self._open: dict[tuple[int, int], list[float]] = {}  # pair -> [min distance, t at min, min PET]
        self._near: set[tuple[int, int]] = set()  # pairs closer than thr now

    def predicted(self, frame: int, t: float, ids: np.ndarray, paths: np.ndarray, unit: np.ndarray,
                  times: np.ndarray, horizon_s: float, foot_px: np.ndarray,
                  classes: list[str] | None = None) -> tuple[list[Event], list[ConflictMark]]:
        """Pairs whose forecasts come within the threshold: probability = share of sample pairs that do. Only
        pairs the rule allows, not both standing, and not two ids on one object."""
        self._active = {k: exp for k, exp in self._active.items() if exp > t}
        i, j = self._eligible(ids, classes)
        scale = ((unit[i] + unit[j]) / 2)[:, None]
        mean_d = np.linalg.norm(paths[i, 0] - paths[j, 0], axis=-1) / scale  # sample 0 is the mean path
        heading = (paths[:, 0, -1] - paths[:, 0, 0]) / (times[-1] * unit[:, None])  # mean forecast velocity
        standing = np.linalg.norm(heading, axis=1) < MIN_SPEED
        cand = np.flatnonzero((mean_d[:, 0] >= self.thr) & (mean_d.min(axis=1) < 2 * self.thr)
                              & ~parallel(heading[i], heading[j]) & ~(standing[i] & standing[j]))
        events, marks = [], []
        if not len(cand):
            return events, marks
        i, j, scale, mean_d = i[cand], j[cand], scale[cand], mean_d[cand]
        d = np.linalg.norm(paths[i] - paths[j], axis=-1) / scale[:, :, None]  # (P, S, T)
        prob = (d[..., 1:] < self.thr).any(axis=-1).mean(axis=1)
        ttc = _first_below(mean_d, times, self.thr)
        samp_ttc = _first_below(d, times, self.thr)  # where the mean path stays apart: the samples' median
        ttc = np.where(np.isfinite(ttc), ttc, median_where(samp_ttc, np.isfinite(samp_ttc)))
        said = self.calibrate("conflict_predicted", prob)
        for p in np.flatnonzero(prob >= self.p_alert):
            a, b = self._key(ids[i[p]], ids[j[p]])
            marks.append(ConflictMark(a, b, float(ttc[p]), float(mean_d[p].min()), foot_px[[i[p], j[p]]]))
            if (a, b) not in self._active:
                self._active[(a, b)] = t + horizon_s
                self._announced[(a, b)] = (t, float(said[p]))
                events.append(Event(frame, t, a, "conflict_predicted", "", other_id=b, eta_s=float(ttc[p]),
                                    probability=float(said[p]), distance=float(mean_d[p].min()),
                                    probability_raw=float(prob[p])))
        low = {self._key(ids[i[p]], ids[j[p]]) for p in np.flatnonzero(prob < self.p_alert / 2)}
        self._active = {k: v for k, v in self._active.items() if k not in low}
        return events, marks

    def _eligible(self, ids: np.ndarray, classes: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
        """Index pairs (i, j) the rule allows and that are not one object seen twice."""
        i, j = _pairs(len(ids))
        if classes is not None and len(i):
            keep = self.rule.allowed([classes[a] for a in i], [classes[b] for b in j])
            i, j = i[keep], j[keep]
        if len(i) and self._overlap:
            same = np.array([self._same_object(self._key(ids[a], ids[b])) for a, b in zip(i, j)], bool)
            i, j = i[~same], j[~same]
        return i, j

    def _same_object(self, key: tuple[int, int]) -> bool:
        seen, overlapping = self._overlap.get(key, (0, 0))
        return seen >= 1 and overlapping > seen / 2

    def _note_overlaps(self, ids: np.ndarray, i: np.ndarray, j: np.ndarray, boxes: np.ndarray | None,
                       near: np.ndarray) -> None:
        """Count, for pairs near each other, the frames their boxes overlap (two ids on one object); bounded to
        pairs whose tracks are still remembered."""
        if boxes is None or not len(i):
            return
        iou = _iou(boxes[i], boxes[j])
        for a, b, ov, nr in zip(i.tolist(), j.tolist(), iou.tolist(), near.tolist()):
            if nr or ov > 0:
                rec = self._overlap.setdefault(self._key(ids[a], ids[b]), [0, 0])
                rec[0] += 1
                rec[1] += ov > SAME_OBJECT_IOU
        live = set(self._hist)
        for key in [k for k in self._overlap if k[0] not in live and k[1] not in live]:
            del self._overlap[key]

    def real(self, frame: int, t: float, ids: np.ndarray, pos: np.ndarray, unit: np.ndarray,
             classes: list[str] | None = None, boxes: np.ndarray | None = None
             ) -> tuple[list[Event], list[tuple[int, int]]]:
        """Close encounters, reported when they end: minimum real distance and post-encroachment time (PET: how
        long after one user was at a spot the other reached it; 0 when both were there together).

        Also returns the pairs that came closer than the threshold at this frame (scored against predictions).
        """
        ok = np.isfinite(pos).all(axis=1)
        ids, pos, unit = ids[ok], pos[ok], unit[ok]
        classes = None if classes is None else [c for c, k in zip(classes, ok) if k]
        boxes = None if boxes is None else boxes[ok]
        self._remember(t, ids, pos, unit)
        a0, b0 = _pairs(len(ids))
        self._note_overlaps(ids, a0, b0, boxes, np.linalg.norm(pos[a0] - pos[b0], axis=1)
                            / ((unit[a0] + unit[b0]) / 2) < 2 * self.thr)
        i, j = self._eligible(ids, classes)
        dist = np.linalg.norm(pos[i] - pos[j], axis=1) / ((unit[i] + unit[j]) / 2)
        vel = np.array([self._velocity(tid, t) for tid in ids.tolist()]).reshape(-1, 2) / unit[:, None]
        speed = np.linalg.norm(vel, axis=1)
        # a track followed for less than the velocity window (a detection blip) has no known motion: not a road user yet
        young = np.array([self._hist[tid][-1][0] - self._hist[tid][0][0] < 0.5 for tid in ids.tolist()], bool)
        side_by_side = (parallel(vel[i], vel[j]) | ((speed[i] < MIN_SPEED) & (speed[j] < MIN_SPEED))
                        | young[i] | young[j])
        dist_of = {self._key(ids[a], ids[b]): float(d) for a, b, d in zip(i, j, dist)}
        if classes is not None:
            self._classes.update(zip(ids.tolist(), classes))
        self._note_approach(t, ids, pos, unit, vel, i[~side_by_side], j[~side_by_side])
        now = {self._key(ids[i[p]], ids[j[p]]): 0.0 for p in np.flatnonzero((dist < self.thr) & ~side_by_side)}
        starts = [k for k in now if k not in self._near]
        self._near = set(now)
        crossing = {self._key(ids[a], ids[b]) for a, b in zip(i[~side_by_side], j[~side_by_side])}
        pets = self._pets(t, ids, pos, unit)
        for key, pet in pets.items():
            if key in crossing:
                now[key] = min(now.get(key, np.inf), pet)
        index = {self._key(ids[a], ids[b]): (a, b) for a, b in zip(i, j)}
        for key, pet in now.items():
            rec = self._open.setdefault(key, [np.inf, t, np.inf, t, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan])
            if dist_of.get(key, np.inf) < rec[0]:
                rec[0], rec[1] = dist_of[key], t
                if dist_of[key] < self.thr:  # where: the pair's midpoint when they were close ...
                    a, b = index[key]
                    rec[8:10] = list((pos[a] + pos[b]) / 2)
            if pet < rec[2] and key in self._pet_spot and not rec[0] < self.thr:
                rec[8:10] = list(self._pet_spot[key])  # ... else the spot the later one reached after the other
            if np.isnan(rec[4]) or dist_of.get(key, np.inf) <= rec[0]:
                rec[4:8] = self._motion(key, index[key], ids, vel)
            rec[2] = min(rec[2], pet)
        ended = [k for k in self._open if k not in now]
        events = [Event(frame, self._open[k][1], k[0], "conflict", "", other_id=k[1], eta_s=self._open[k][2],
                        distance=self._open[k][0]) for k in ended]
        for k in ended:
            self._row(k, self._open.pop(k), t)
        self._forget(t)
        return events, starts

    def _motion(self, key: tuple[int, int], ab: tuple[int, int], ids: np.ndarray, vel: np.ndarray) -> list[float]:
        """[speed of key[0], speed of key[1], relative speed, angle between headings (NaN: one stands)]."""
        a, b = ab if int(ids[ab[0]]) == key[0] else (ab[1], ab[0])
        va, vb = vel[a], vel[b]
        sa, sb = float(np.hypot(*va)), float(np.hypot(*vb))
        angle = float(np.degrees(np.arccos(np.clip(va @ vb / (sa * sb), -1, 1)))) if min(sa, sb) >= MIN_SPEED \
            else float("nan")
        return [sa, sb, float(np.hypot(*(va - vb))), angle]

    def _note_approach(self, t: float, ids: np.ndarray, pos: np.ndarray, unit: np.ndarray, vel: np.ndarray,
                       i: np.ndarray, j: np.ndarray) -> None:
        """The smallest time to collision of each pair on its way to an encounter, with its speeds and angle.
        Collision here is the foot points within half the conflict distance (0.5 m with a camera): object
        extents are not modelled yet."""
        if not len(i):
            return
        scale = ((unit[i] + unit[j]) / 2)[:, None]
        rel = (pos[j] - pos[i]) / scale
        ttc = ttc_to(self.thr / 2, rel, vel[j] - vel[i])
        for p in np.flatnonzero(ttc < 2 * self.pet_max_s + 1.0):
            key = self._key(ids[i[p]], ids[j[p]])
            old = self._approach.get(key)
            if old is not None and t - old[0] <= self.pet_max_s and old[1] <= ttc[p]:
                continue
            self._approach[key] = (t, float(ttc[p]))

    def _row(self, key: tuple[int, int], rec: list[float], end: float) -> None:
        """One conflicts.csv row for an encounter that ended."""
        start = rec[3]
        app = self._approach.get(key)
        ttc = app[1] if app is not None and start - app[0] <= self.pet_max_s + 1.0 else np.inf
        sa, sb, dv, angle = rec[4:8]  # at the closest moment
        pet = rec[2]
        severity = "serious" if ttc < self.serious_ttc_s or pet < self.serious_pet_s else "potential"
        alert = self._announced.get(key)
        pred = alert if alert is not None and 0 <= start - alert[0] <= 2 * self.pet_max_s + 1.0 else None
        kmh = 3.6 if self.metric else 1.0

        def num(v: float, nd: int = 3) -> str:
            return f"{v:.{nd}f}" if np.isfinite(v) else ""

        self.rows.append([str(key[0]), str(key[1]), self._classes.get(key[0], ""), self._classes.get(key[1], ""),
                          num(start), num(end), num(rec[0]), num(pet), num(ttc), num(sa * kmh, 2), num(sb * kmh, 2),
                          num(dv * kmh, 2), num(angle, 1), conflict_type(angle), severity,
                          "" if pred is None else num(pred[1]), "" if pred is None else num(start - pred[0]),
                          "m" if self.metric else "bh", "km/h" if self.metric else "bh/s", num(rec[8], 2), num(rec[9], 2)])

    def _forget(self, t: float) -> None:
        """Approach and alert memories of pairs long past, and classes of tracks no longer remembered: bounded."""
        keep = 2 * self.pet_max_s + 5.0
        self._approach = {k: v for k, v in self._approach.items() if t - v[0] <= keep or k in self._open}
        self._announced = {k: v for k, v in self._announced.items() if t - v[0] <= keep or k in self._open}
        if len(self._classes) > 4 * max(len(self._hist), 1) + 100:
            self._classes = {k: v for k, v in self._classes.items() if k in self._hist}

    def _velocity(self, tid: int, t: float, over_s: float = 0.5) -> tuple[float, float]:
        """Displacement over about the last `over_s` seconds / time (0 with less than half of that: over a frame
        or two, box jitter reads as motion)."""
        h = self._hist.get(tid)
        if not h or len(h) < 2:
            return (0.0, 0.0)
        old = next((s for s in h if s[0] >= t - over_s), h[0])
        dt = h[-1][0] - old[0]
        if dt < over_s / 2:
            return (0.0, 0.0)
        return ((h[-1][1] - old[1]) / dt, (h[-1][2] - old[2]) / dt) if dt > 0 else (0.0, 0.0)

    @staticmethod
    def _key(a: int, b: int) -> tuple[int, int]:
        return (int(min(a, b)), int(max(a, b)))

    def _remember(self, t: float, ids: np.ndarray, pos: np.ndarray, unit: np.ndarray) -> None:
        for tid, p, u in zip(ids.tolist(), pos, unit):
            self._hist.setdefault(tid, deque()).append((t, p[0], p[1], u))
        for tid in list(self._hist):
            h = self._hist[tid]
            while h and h[0][0] < t - self.pet_max_s:
                h.popleft()
            if not h:
                del self._hist[tid]

    def _pets(self, t: float, ids: np.ndarray, pos: np.ndarray, unit: np.ndarray) -> dict[tuple[int, int], float]:
        """Pair -> time since the other track was where this one is now (within the threshold)."""
        owners = [(tid, np.array(h)) for tid, h in self._hist.items()]
        if not owners or not len(ids):
            return {}
        own = np.concatenate([np.full(len(a), tid) for tid, a in owners])
        past = np.concatenate([a for _, a in owners])  # (M, 4) t, x, y, unit
        d = np.linalg.norm(pos[:, None] - past[None, :, 1:3], axis=-1) / ((unit[:, None] + past[None, :, 3]) / 2)
        close = (d < self.thr) & (own[None] != ids[:, None])
        n, m = np.nonzero(close)
        if not len(n):
            return {}
        order = np.lexsort((-past[m, 0], own[m], n))  # per (track, other): the latest time the other was here
        n, m = n[order], m[order]
        first = np.ones(len(n), bool)
        first[1:] = (n[1:] != n[:-1]) | (own[m][1:] != own[m][:-1])
        out: dict[tuple[int, int], float] = {}
        self._pet_spot: dict[tuple[int, int], np.ndarray] = {}  # where the later one reached the other's path
        for a, b, pet, k in zip(ids[n[first]].tolist(), own[m[first]].tolist(), (t - past[m[first], 0]).tolist(),
                                n[first].tolist()):
            key = self._key(a, b)
            if pet < out.get(key, np.inf):
                out[key] = pet
                self._pet_spot[key] = pos[k].copy()
        return out
