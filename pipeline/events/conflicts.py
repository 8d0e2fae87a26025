"""Conflicts between road users as traffic engineers define them: pairs forecast to meet (alerts), and real
conflicts measured afterwards (SSAM's time to collision and post-encroachment time, DOCTOR's severity).

Why both: a predicted conflict is an alert that can still be acted on; the real conflict, measured after the
fact by the same footprints, is what the alert is scored against. With a camera, footprints are per-class sizes
in metres; without one, every object is a square of half the conflict distance in body heights (the pair's mean
box height), so one definition suits near and far objects in an uncalibrated view.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.core.config import FOOTPRINT_M
from pipeline.events.ttc import half_sizes, headings, overlap, ttc_2d
from pipeline.events.types import ConflictMark, Event
from pipeline.events.zones import median_where


GROUPS = {"person": "person", "bicycle": "cyclist", "car": "vehicle", "bus": "vehicle", "truck": "vehicle",
          "motorcycle": "vehicle", "train": "vehicle"}  # COCO classes -> the road users conflict studies count
MIN_SPEED = 0.2  # units (body heights or metres) per second: slower counts as standing
HEADING_SPEED = 1.0  # units per second: a footprint turns to the motion only when it is this clear (a parked car's
# jitter of 0.4 m/s in any direction must not swing its 4.5 m length into the next lane)
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
        return np.array([self._allowed(a, b) for a, b in zip(ca, cb)], bool).reshape(-1)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 (a handful of class pairs per rule, rules live as long as a run)
    def _allowed(self, a: str, b: str) -> bool:
        return any(frozenset((x, y)) in self.pairs for x in (a, GROUPS.get(a, a)) for y in (b, GROUPS.get(b, b)))


CONFLICT_COLUMNS = ["track_a", "track_b", "class_a", "class_b", "start_s", "end_s", "min_distance", "pet_s",
                    "min_ttc_s", "speed_a", "speed_b", "delta_v", "angle_deg", "type", "severity",
                    "predicted_probability", "predicted_lead_s", "distance_unit", "speed_unit", "x", "y"]
MAX_ROWS = 100_000  # conflicts.csv rows kept (the oldest go first on an endless stream)


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


def _continued(paths: np.ndarray, times: np.ndarray, extra_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(M, S, T', 2) paths and (T',) times continued `extra_s` past the end at each path's final velocity."""
    dt = float(times[-1] - times[-2]) if len(times) > 1 else 0.1
    n = int(np.ceil(extra_s / dt - 1e-9))
    if n <= 0 or len(times) < 2:
        return paths, times
    v = (paths[:, :, -1] - paths[:, :, -2]) / dt
    more = dt * np.arange(1, n + 1)
    ext = paths[:, :, -1:] + v[:, :, None] * more[None, None, :, None]
    return np.concatenate([paths, ext], axis=2), np.concatenate([times, times[-1] + more])


def _first_hit(hit: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(...,) the first time at which hit (..., T) is true (NaN: never)."""
    return np.where(hit.any(axis=-1), times[np.argmax(hit, axis=-1)], np.nan)


VELOCITY_S = 0.5  # velocities are displacements over this long: of the real tracks and along the sample paths alike
ALERT_RULES = ("conflict", "course", "meet")  # events.conflict_alert: what a sample path must do to announce one


def _path_motion(p: np.ndarray, times: np.ndarray, head: np.ndarray, vehicle: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(P, S, T, 2) velocities (finite differences of the sampled positions `p` over VELOCITY_S; 0 now) and headings
    (turned to the motion when clear, else `head`: (P, 2) now) along sample paths, as real() sees a track: a
    vehicle under walking pace is parked."""
    k = np.arange(1, len(times))
    kb = np.maximum(k - max(1, int(round(VELOCITY_S / max(float(times[1] - times[0]), 1e-9)))), 0)
    v = np.zeros(p.shape)
    v[:, :, 1:] = (p[:, :, k] - p[:, :, kb]) / (times[k] - times[kb])[:, None]
    v = np.where((vehicle[:, None, None] & (np.linalg.norm(v, axis=-1) < HEADING_SPEED))[..., None], 0.0, v)
    h = headings(v, head[:, None, None], HEADING_SPEED)
    h[:, :, 0] = head[:, None]
    return v, h


def path_conflict_times(pa: np.ndarray, pb: np.ndarray, times: np.ndarray, head: tuple[np.ndarray, np.ndarray],
                        half: tuple[np.ndarray, np.ndarray], vehicle: tuple[np.ndarray, np.ndarray],
                        ttc_max_s: float, pet_s: float | None = None) -> np.ndarray:
    """(P, S) the first time after now at which each pair of sample paths (P, S, T, 2 of a and of b, on `times`)
    is in conflict by the real conflicts' definitions, applied along the paths as real() applies them to tracks:
    a collision course (the constant-velocity 2-D time to collision of the footprints in (0, ttc_max_s], pair not
    both standing) or, with `pet_s`, one footprint reaching where the other's was less than `pet_s` earlier (not
    touching it, both clearly moving, not side by side). `head`, `half`, `vehicle`: (P, 2), (P, 2), (P,) of a and
    of b. NaN: never along the paths."""
    (va, ha), (vb, hb) = _path_motion(pa, times, head[0], vehicle[0]), _path_motion(pb, times, head[1], vehicle[1])
    sa, sb = (np.broadcast_to(x[:, None, None], pa.shape) for x in half)
    rel, rel_v = pb - pa, vb - va
    speed_a, speed_b = np.linalg.norm(va, axis=-1), np.linalg.norm(vb, axis=-1)
    reach = (np.hypot(*half[0].T) + np.hypot(*half[1].T))[:, None, None]
    near = ((speed_a >= MIN_SPEED) | (speed_b >= MIN_SPEED)) \
        & (np.linalg.norm(rel, axis=-1) <= reach + np.linalg.norm(rel_v, axis=-1) * ttc_max_s)
    near[:, :, 0] = False  # now: what real() measures, not a forecast
    ttc = np.full(near.shape, np.inf)
    ttc[near] = ttc_2d(rel[near], rel_v[near], ha[near], sa[near], hb[near], sb[near], ttc_max_s)
    on = (ttc > 0) & (ttc <= ttc_max_s)
    if pet_s is not None:
        dt = float(times[1] - times[0])
        touching = overlap(rel, ha, sa, hb, sb)
        crossing = (speed_a >= HEADING_SPEED) & (speed_b >= HEADING_SPEED) & ~parallel(va, vb) & ~touching
        for lag in range(1, int(np.ceil(pet_s / dt - 1e-9))):  # PET = lag steps, under pet_s
            later = slice(lag, None)
            a_late = overlap(pb[:, :, :-lag] - pa[:, :, later], ha[:, :, later], sa[:, :, later], hb[:, :, :-lag],
                             sb[:, :, :-lag])
            b_late = overlap(pb[:, :, later] - pa[:, :, :-lag], ha[:, :, :-lag], sa[:, :, :-lag], hb[:, :, later],
                             sb[:, :, later])
            on[:, :, later] |= crossing[:, :, later] & (a_late | b_late)
    return _first_hit(on[:, :, 1:], times[1:])


@dataclass
class Encounter:
    """One pair's conflict while it lasts: opened when its time to collision first fell to the threshold (or when
    one reached the other's spot within `serious_pet_s`), written when it has been off course for a while."""

    start: float
    last_course: float  # last time the pair was on a collision course within the TTC threshold
    min_ttc: float = np.inf
    min_dist: float = np.inf
    pet: float = np.inf
    motion: tuple[float, float, float, float] = (np.nan, np.nan, np.nan, np.nan)  # at the smallest TTC
    place: tuple[float, float] = (np.nan, np.nan)  # where they would have collided, else the shared spot


@dataclass(frozen=True)
class ConflictRules:
    """The definitions (SSAM, DOCTOR): a conflict is a collision course with a time to collision of at most
    `ttc_max_s` whose post-encroachment time is at most `pet_max_s` (when the two shared a spot at all), or
    a crossing of paths within `serious_pet_s`; serious below either DOCTOR threshold."""

    ttc_max_s: float = 1.5
    pet_max_s: float = 5.0
    serious_ttc_s: float = 1.0
    serious_pet_s: float = 1.0
    footprints: dict[str, tuple[float, float]] | None = None  # class -> (length, width) in metres; None: FOOTPRINT_M


CLOSE_S = 1.0  # an encounter whose PET is known ends this long after its collision course did
HIST_STEP_S = 0.1  # track history for PET and velocity: one point per this much time at most


class ConflictMonitor:
    """Predicted and real conflicts for every pair of tracks; per-track history bounded to the PET limit."""

    def __init__(self, threshold: float, rules: ConflictRules, alert_probability: float,
                 calibrate: Callable[[str, np.ndarray], np.ndarray] = lambda kind, p: p,
                 rule: PairRule | None = None, metric: bool = False, alert_rule: str = "conflict",
                 persist_s: float = 0.0) -> None:
        if alert_rule not in ALERT_RULES:
            raise ValueError(f"alert_rule must be one of {ALERT_RULES}, got {alert_rule!r}")
        self.thr, self.r, self.p_alert, self.alert_rule = threshold, rules, alert_probability, alert_rule
        self.persist_s = persist_s  # an alert is raised once its pair has been at the probability this long
        self._since: dict[tuple[int, int], float] = {}  # pair -> since when it has been at the alert probability
        self.calibrate = calibrate  # (kind, raw shares) -> the probabilities alerts carry
        self.rule = rule or PairRule(["all"])
        self.metric = metric  # distances in metres and speeds in km/h (a camera), else body heights (per second)
        self.sizes = (rules.footprints or FOOTPRINT_M) if metric else None  # without a camera: one square for all
        self._overlap: dict[tuple[int, int], list[int]] = {}  # near pair -> [frames seen together, frames overlapping]
        self._announced: dict[tuple[int, int], tuple[float, float]] = {}  # pair -> (alert time, probability)
        self._classes: dict[int, str] = {}
        self._heading: dict[int, np.ndarray] = {}  # track -> last heading while it moved
        self.rows: deque[list[str]] = deque(maxlen=MAX_ROWS)  # conflicts.csv (the oldest go first)
        self._active: dict[tuple[int, int], float] = {}  # predicted pair -> alert expiry
        self._hist: dict[int, deque] = {}  # track -> (t, x, y, unit, hx, hy, half length, half width) over pet_max_s
        self._open: dict[tuple[int, int], Encounter] = {}
        self._closed: dict[tuple[int, int], float] = {}  # pair -> when its last encounter ended
        self._t = 0.0  # the latest frame's time

    def _footprints(self, ids: np.ndarray, vel: np.ndarray, classes: list[str] | None, remember: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) headings (the last one while moving) and (N, 2) half sizes in units (metres or body heights).
        `remember`: keep the headings of the moving ones (real motion only: forecasts must not change the truth)."""
        known = np.array([tid in self._heading for tid in ids.tolist()], bool)
        prev = np.array([self._heading.get(tid, (1.0, 0.0)) for tid in ids.tolist()], float).reshape(-1, 2)
        head = headings(vel, prev, HEADING_SPEED)
        moving = np.linalg.norm(vel, axis=-1) >= HEADING_SPEED
        for tid, h, m in zip(ids.tolist(), head, moving):
            if m and remember:
                self._heading[tid] = h
        half = half_sizes(classes, len(ids), self.sizes, self.thr / 4)
        # never seen moving clearly: which way it points is unknown, so only its width is sure (a parked car is not
        # taken to reach 4.5 m along an arbitrary axis into the lane beside it)
        unknown = ~known & ~moving
        half[unknown] = half[unknown].min(axis=1, keepdims=True)
        return head, half

    def predicted(self, frame: int, t: float, ids: np.ndarray, paths: np.ndarray, unit: np.ndarray,
                  times: np.ndarray, horizon_s: float, foot_px: np.ndarray,
                  classes: list[str] | None = None) -> tuple[list[Event], list[ConflictMark]]:
        """Pairs forecast to be in conflict within the horizon, by the real conflicts' definitions applied to each
        sample path (`path_conflict_times`). Rule `conflict` (default): the constant-velocity time to collision
        along the path (velocities by finite differences of its positions) falls to `ttc_max_s`, or one reaches
        the other's spot within `serious_pet_s`, at some step; `eta_s` = that step's time. Rule `course`: the
        time to collision alone. Rule `meet`: the footprints meet within `ttc_max_s` of a moment in the horizon (the
        path continued at its final velocity past the end); `eta_s` = the meeting less `ttc_max_s`. Probability =
        share of sample paths that do; `eta_s` is the mean path's, else the median of the samples that do (the
        conflict's start, what the alert is scored on); the mark drawn carries the time to collision. Only pairs
        the rule allows, not both standing, not touching or in a conflict already, not two ids on one object, and
        pairs moving side by side only when their mean forecasts do."""
        self._active = {k: exp for k, exp in self._active.items() if exp > t}
        i, j = self._eligible(ids, classes)
        vel = (paths[:, 0, -1] - paths[:, 0, 0]) / (times[-1] * unit[:, None])  # mean forecast velocity
        head, half = self._footprints(ids, vel, classes, remember=False)
        course = self.alert_rule != "meet"
        if not course:
            paths, times = _continued(paths, times, self.r.ttc_max_s)
        standing = np.linalg.norm(vel, axis=1) < MIN_SPEED
        scale = ((unit[i] + unit[j]) / 2)[:, None]
        mean_d = np.linalg.norm(paths[i, 0] - paths[j, 0], axis=-1) / scale  # sample 0 is the mean path
        gap = mean_d
        if course and len(times) > 1:  # what the pair's closing speed at each step could cover within ttc_max_s
            closing = np.linalg.norm(np.diff(paths[j, 0] - paths[i, 0], axis=1), axis=-1) / scale / np.diff(times)
            gap = mean_d[:, 1:] - closing * self.r.ttc_max_s
        reach = np.hypot(*half.T)
        busy = np.array([self._key(ids[a], ids[b]) in self._open for a, b in zip(i, j)], bool)
        cand = np.flatnonzero((gap.min(axis=1, initial=np.inf) < reach[i] + reach[j] + self.thr)
                              & ~(standing[i] & standing[j]) & ~busy.reshape(-1))
        events: list[Event] = []
        marks: list[ConflictMark] = []
        if not len(cand):
            self._since = {}
            return events, marks
        i, j, scale, mean_d = i[cand], j[cand], scale[cand], mean_d[cand]
        if course:
            veh = np.array([GROUPS.get(c) == "vehicle" for c in classes] if classes is not None else [False] * len(ids),
                           bool)
            start = path_conflict_times(paths[i] / scale[:, :, None, None], paths[j] / scale[:, :, None, None], times,
                                        (head[i], head[j]), (half[i], half[j]), (veh[i], veh[j]), self.r.ttc_max_s,
                                        self.r.serious_pet_s if self.alert_rule == "conflict" else None)
            now = overlap((paths[j, 0, 0] - paths[i, 0, 0]) / scale, head[i], half[i], head[j], half[j])
        else:
            rel = (paths[j] - paths[i]) / scale[:, :, None, None]  # (P, S, T, 2)
            hit = overlap(rel, head[i][:, None, None], half[i][:, None, None], head[j][:, None, None],
                          half[j][:, None, None])
            start, now = _first_hit(hit[..., 1:], times[1:]) - self.r.ttc_max_s, hit[:, 0, 0]
        on = np.isfinite(start)  # (P, S) sample paths that announce the conflict
        keep = ~now & (~parallel(vel[i], vel[j]) | on[:, 0])
        prob = np.where(keep, on.mean(axis=1), 0.0)
        eta = np.where(on[:, 0], start[:, 0], median_where(start, on))  # where the mean path does not: the samples'
        said = self.calibrate("conflict_predicted", prob)
        above = {self._key(ids[i[p]], ids[j[p]]): p for p in np.flatnonzero(prob >= self.p_alert)}
        self._since = {k: self._since.get(k, t) for k in above}
        for p in above.values():
            a, b = self._key(ids[i[p]], ids[j[p]])
            near = float(mean_d[p][times <= horizon_s].min())
            marks.append(ConflictMark(a, b, float(eta[p]) + self.r.ttc_max_s, near, foot_px[[i[p], j[p]]]))
            if (a, b) not in self._active and t - self._since[(a, b)] >= self.persist_s - 1e-9:
                self._active[(a, b)] = t + horizon_s
                self._announced[(a, b)] = (t, float(said[p]))
                events.append(Event(frame, t, a, "conflict_predicted", "", other_id=b,
                                    eta_s=max(float(eta[p]), 0.0), probability=float(said[p]),
                                    distance=near, probability_raw=float(prob[p])))
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
        """Conflicts in the real motion, reported when they end: a collision course (constant-velocity 2-D time to
        collision of the footprints) within the TTC threshold, with the post-encroachment time (PET: how long
        after one user left a spot the other reached it) within its limit; or paths crossing within
        `serious_pet_s`. Also returns the pairs whose conflict began at this frame (scored against alerts)."""
        ok = np.isfinite(pos).all(axis=1)
        ids, pos, unit = ids[ok], pos[ok], unit[ok]
        classes = None if classes is None else [c for c, k in zip(classes, ok) if k]
        boxes = None if boxes is None else boxes[ok]
        vel = np.array([self._velocity(tid, t, p) for tid, p in zip(ids.tolist(), pos)]).reshape(-1, 2) / unit[:, None]
        if classes is not None:  # a vehicle's foot point wanders with its box: under walking pace it is parked
            creeping = np.array([GROUPS.get(c) == "vehicle" for c in classes], bool) \
                & (np.linalg.norm(vel, axis=1) < HEADING_SPEED)
            vel[creeping] = 0.0
        head, half = self._footprints(ids, vel, classes)
        self._remember(t, ids, pos, unit, head, half)
        if classes is not None:
            self._classes.update(zip(ids.tolist(), classes))
        a0, b0 = _pairs(len(ids))
        self._note_overlaps(ids, a0, b0, boxes, np.linalg.norm(pos[a0] - pos[b0], axis=1)
                            / ((unit[a0] + unit[b0]) / 2) < 2 * self.thr)
        i, j = self._eligible(ids, classes)
        speed = np.linalg.norm(vel, axis=1)
        # a track followed for less than the velocity window (a detection blip) has no known motion: not a road user yet
        young = np.array([self._hist[tid][-1][0] - self._hist[tid][0][0] < 0.5 for tid in ids.tolist()], bool)
        moving = ~(young[i] | young[j] | ((speed[i] < MIN_SPEED) & (speed[j] < MIN_SPEED)))
        starts = self._course(t, ids, pos, unit, vel, head, half, i[moving], j[moving])
        both = (speed[i] >= HEADING_SPEED) & (speed[j] >= HEADING_SPEED) & ~young[i] & ~young[j]  # clearly moving
        starts += self._crossings(t, ids, pos, unit, vel, i[moving], j[moving], both[moving])
        self._distances(ids, pos, unit, i, j)
        self._t = t
        events = [e for k in [k for k, e in self._open.items() if self._ended(k, e, t)]
                  if (e := self._close(frame, k, t)) is not None]
        self._forget(t)
        return events, starts

    def _close(self, frame: int, key: tuple[int, int], t: float) -> Event | None:
        """End an encounter: a conflicts.csv row and a `conflict` event when its PET is within the limit."""
        enc = self._open.pop(key)
        self._closed[key] = t
        if enc.pet > self.r.pet_max_s and np.isfinite(enc.pet):
            return None
        self._row(key, enc, t)
        return Event(frame, enc.start, key[0], "conflict", "", other_id=key[1], eta_s=enc.pet, distance=enc.min_dist)

    def finish(self) -> None:
        """At the end of a run: the encounters still open become rows (their PET as measured so far)."""
        for key in list(self._open):
            self._close(-1, key, self._t)

    def _course(self, t: float, ids: np.ndarray, pos: np.ndarray, unit: np.ndarray, vel: np.ndarray,
                head: np.ndarray, half: np.ndarray, i: np.ndarray, j: np.ndarray) -> list[tuple[int, int]]:
        """Time to collision of each moving pair: opens encounters that came on course, keeps the open ones'
        smallest TTC with the motion and place at that moment; the keys opened now."""
        scale = (unit[i] + unit[j]) / 2
        rel, rel_v = (pos[j] - pos[i]) / scale[:, None], vel[j] - vel[i]
        reach = np.hypot(*half.T)
        near = np.linalg.norm(rel, axis=1) <= reach[i] + reach[j] + np.linalg.norm(rel_v, axis=1) * self.r.ttc_max_s
        ttc = np.full(len(i), np.inf)
        ttc[near] = ttc_2d(rel[near], rel_v[near], head[i[near]], half[i[near]], head[j[near]], half[j[near]],
                           self.r.ttc_max_s)
        opened = []
        for p in np.flatnonzero(np.isfinite(ttc)):
            key = self._key(ids[i[p]], ids[j[p]])
            enc = self._open.get(key)
            if enc is None:
                if ttc[p] <= 0:  # touching already (overlapping footprints of standing-by objects): no approach seen
                    continue
                enc = self._open[key] = Encounter(start=t, last_course=t)
                opened.append(key)
            enc.last_course = t
            if ttc[p] < enc.min_ttc:
                enc.min_ttc = float(ttc[p])
                enc.motion = self._motion(key, (i[p], j[p]), ids, vel)
                hit = (pos[i[p]] + pos[j[p]]) / 2 + (vel[i[p]] + vel[j[p]]) / 2 * scale[p] * ttc[p]
                enc.place = (float(hit[0]), float(hit[1]))
        return opened

    def _crossings(self, t: float, ids: np.ndarray, pos: np.ndarray, unit: np.ndarray, vel: np.ndarray,
                   i: np.ndarray, j: np.ndarray, both: np.ndarray) -> list[tuple[int, int]]:
        """PET of pairs whose paths cross: kept by open encounters; a crossing within `serious_pet_s` off a
        collision course, both moving and not one behind the other, is a conflict of its own (DOCTOR). The keys
        opened now."""
        allowed = {self._key(ids[a], ids[b]): bool(m) and not parallel(vel[a][None], vel[b][None])[0]
                   for a, b, m in zip(i, j, both)}
        opened = []
        for key, (pet, spot) in self._pets(t, ids, pos).items():
            if key not in allowed:
                continue
            enc = self._open.get(key)
            recent = t - self._closed.get(key, -np.inf) <= self.r.pet_max_s  # this crossing ended a conflict
            if enc is None and allowed[key] and pet < self.r.serious_pet_s and not recent:
                enc = self._open[key] = Encounter(start=t, last_course=-np.inf, place=(float(spot[0]), float(spot[1])))
                opened.append(key)
            if enc is not None and pet < enc.pet:
                enc.pet = pet
                if not np.isfinite(enc.min_ttc):
                    enc.place = (float(spot[0]), float(spot[1]))
                    idx = {int(x): k for k, x in enumerate(ids.tolist())}
                    enc.motion = self._motion(key, (idx[key[0]], idx[key[1]]), ids, vel)
        return opened

    def _distances(self, ids: np.ndarray, pos: np.ndarray, unit: np.ndarray, i: np.ndarray, j: np.ndarray) -> None:
        """The smallest distance between the ground points of each open encounter's pair."""
        for a, b in zip(i.tolist(), j.tolist()):
            enc = self._open.get(self._key(ids[a], ids[b]))
            if enc is not None:
                enc.min_dist = min(enc.min_dist, float(np.linalg.norm(pos[a] - pos[b]) / ((unit[a] + unit[b]) / 2)))

    def _ended(self, key: tuple[int, int], enc: Encounter, t: float) -> bool:
        """Off course for the PET limit (no later arrival can count), or for CLOSE_S with its PET known, or a
        track forgotten."""
        off = t - enc.last_course
        return off > self.r.pet_max_s or (np.isfinite(enc.pet) and off > CLOSE_S) \
            or key[0] not in self._hist or key[1] not in self._hist

    def _motion(self, key: tuple[int, int], ab: tuple[int, int], ids: np.ndarray, vel: np.ndarray
                ) -> tuple[float, float, float, float]:
        """(speed of key[0], speed of key[1], relative speed, angle between headings (NaN: one stands))."""
        a, b = ab if int(ids[ab[0]]) == key[0] else (ab[1], ab[0])
        va, vb = vel[a], vel[b]
        sa, sb = float(np.hypot(*va)), float(np.hypot(*vb))
        angle = float(np.degrees(np.arccos(np.clip(va @ vb / (sa * sb), -1, 1)))) if min(sa, sb) >= MIN_SPEED \
            else float("nan")
        return (sa, sb, float(np.hypot(*(va - vb))), angle)

    def _row(self, key: tuple[int, int], enc: Encounter, end: float) -> None:
        """One conflicts.csv row for an encounter that ended."""
        ttc, pet = enc.min_ttc, enc.pet
        sa, sb, dv, angle = enc.motion
        severity = "serious" if ttc < self.r.serious_ttc_s or pet < self.r.serious_pet_s else "potential"
        alert = self._announced.get(key)
        pred = alert if alert is not None and 0 <= enc.start - alert[0] <= 2 * self.r.pet_max_s + 1.0 else None
        kmh = 3.6 if self.metric else 1.0

        def num(v: float, nd: int = 3) -> str:
            return f"{v:.{nd}f}" if np.isfinite(v) else ""

        self.rows.append([str(key[0]), str(key[1]), self._classes.get(key[0], ""), self._classes.get(key[1], ""),
                          num(enc.start), num(end), num(enc.min_dist), num(pet), num(ttc), num(sa * kmh, 2),
                          num(sb * kmh, 2), num(dv * kmh, 2), num(angle, 1), conflict_type(angle), severity,
                          "" if pred is None else num(pred[1]), "" if pred is None else num(enc.start - pred[0]),
                          "m" if self.metric else "bh", "km/h" if self.metric else "bh/s", num(enc.place[0], 2),
                          num(enc.place[1], 2)])

    def _forget(self, t: float) -> None:
        """Alert memories of pairs long past, and classes and headings of tracks no longer remembered: bounded."""
        keep = 2 * self.r.pet_max_s + 5.0
        self._announced = {k: v for k, v in self._announced.items() if t - v[0] <= keep or k in self._open}
        self._closed = {k: v for k, v in self._closed.items() if t - v <= self.r.pet_max_s}
        if len(self._classes) > 4 * max(len(self._hist), 1) + 100:
            self._classes = {k: v for k, v in self._classes.items() if k in self._hist}
        if len(self._heading) > 4 * max(len(self._hist), 1) + 100:
            self._heading = {k: v for k, v in self._heading.items() if k in self._hist}

    def _velocity(self, tid: int, t: float, p: np.ndarray, over_s: float = 0.5) -> tuple[float, float]:
        """Displacement from about `over_s` seconds ago to `p` now / time (0 with less than half of that: over a
        frame or two, box jitter reads as motion)."""
        h = self._hist.get(tid)
        if not h:
            return (0.0, 0.0)
        old = next((s for s in h if s[0] >= t - over_s), h[0])
        dt = t - old[0]
        if dt < over_s / 2:
            return (0.0, 0.0)
        return ((p[0] - old[1]) / dt, (p[1] - old[2]) / dt)

    @staticmethod
    def _key(a: int, b: int) -> tuple[int, int]:
        return (int(min(a, b)), int(max(a, b)))

    def _remember(self, t: float, ids: np.ndarray, pos: np.ndarray, unit: np.ndarray, head: np.ndarray,
                  half: np.ndarray) -> None:
        """Each track's point and footprint (in its own units: pixels without a camera), one per HIST_STEP_S."""
        for tid, p, u, h, s in zip(ids.tolist(), pos, unit, head, half):
            hist = self._hist.setdefault(tid, deque())
            entry = (t, p[0], p[1], u, h[0], h[1], s[0] * u, s[1] * u)
            if len(hist) > 1 and t - hist[-2][0] < HIST_STEP_S:
                hist[-1] = entry  # the newest point replaces one closer than a step to the one before it
            else:
                hist.append(entry)
        for tid in list(self._hist):
            hist = self._hist[tid]
            while hist and hist[0][0] < t - self.r.pet_max_s:
                hist.popleft()
            if not hist:
                del self._hist[tid]

    def _pets(self, t: float, ids: np.ndarray, pos: np.ndarray) -> dict[tuple[int, int], tuple[float, np.ndarray]]:
        """Pair -> (time since the other track's footprint last covered where this one's is now, that spot)."""
        owners = [(tid, np.array(h)) for tid, h in self._hist.items()]
        if not owners or not len(ids):
            return {}
        own = np.concatenate([np.full(len(a), tid) for tid, a in owners])
        past = np.concatenate([a for _, a in owners])  # (M, 8) t, x, y, unit, hx, hy, half length, half width
        now = np.array([self._hist[tid][-1] for tid in ids.tolist()])
        rel = pos[:, None] - past[None, :, 1:3]
        # only footprints within reach of each other can overlap: the separating-axis test runs on those alone
        reach = np.hypot(now[:, 6], now[:, 7])[:, None] + np.hypot(past[:, 6], past[:, 7])[None, :]
        a, b = np.nonzero((np.abs(rel).max(axis=-1) <= reach + 1e-9) & (own[None] != ids[:, None]))
        close = np.zeros((len(ids), len(past)), bool)
        close[a, b] = overlap(rel[a, b], now[a, 4:6], now[a, 6:8], past[b, 4:6], past[b, 6:8])
        touching = {(int(ids[a]), int(own[b])) for a, b in zip(*np.nonzero(close & (past[None, :, 0] >= t)))}
        n, m = np.nonzero(close & (past[None, :, 0] < t))
        keep = [(int(ids[a]), int(own[b])) not in touching for a, b in zip(n, m)]  # PET: after the other left
        n, m = n[keep], m[keep]
        out: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
        for k, other, pet in zip(n.tolist(), own[m].tolist(), (t - past[m, 0]).tolist()):
            key = self._key(int(ids[k]), other)
            if pet < out.get(key, (np.inf,))[0]:
                out[key] = (pet, pos[k].copy())
        return out
