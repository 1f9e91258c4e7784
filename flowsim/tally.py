"""Running sums of one replication's stays and waits, added up while the simulation runs, so that a
run need hold only what is still happening: its memory does not grow with the horizon.

Every table ``results.py`` makes (KPIs, the daily series, the flows) is built from sums over a
replication's stays and waits: time-integrals (people in a place, delayed, waiting), counts of
events (an admission, an exit, a discharge by pathway, someone turned away by a full service) and a
per-person check (at home 91 days
after reablement). Time is cut into segments at checkpoints every ``FOLD_DAYS`` days. At each
checkpoint ``Tally.fold`` adds what happened in the segment just ended, ``[since, until)``, from
the records that overlap it, and says which records can be forgotten: those whose times all lie
before the checkpoint (once set, a stay's leave and a wait's end never change, so a forgotten
record has nothing more to add).

Which records are passed does not matter, so long as every record that overlaps the segment is
(in the order they were made): engines that forget records as they run (``model.py``,
``compiled.py``) and a finished run replayed (``replay``: tables from ``Events`` kept whole, as
for a patient log) give the same tables, bit for bit. What the tally holds grows only with the
number of days (its daily arrays) and, by a flag each, with the number of episodes. NumPy only:
no pandas here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from flowsim.config import AWAY_ROLES, DRD_BANDS, PATHWAYS, REASONS, RESPONSIBLE
from flowsim.patients import COMMUNITY, DEATH, FRONT_DOOR, LOST, OPEN, PROCESS, Layout

FOLD_DAYS = 30.0
"""Days between checkpoints: a run holds about this many days of finished records at most."""
DRAW_DAYS = 4 * FOLD_DAYS
"""A tallied run (either engine) draws its arrivals' attributes this many days ahead at a time."""

OUTCOME_SHIFT = 8
"""``exits_to[service, outcome + OUTCOME_SHIFT, day]``: outcome codes go down to ``LOST`` (-8)."""

HOME_CHECK_DAYS = 91.0
"""ASCOF 2B(1): where someone discharged into reablement is this many days later."""


def time_of_day(hhmm: str) -> float:
    """``"HH:MM"`` as a fraction of a day."""
    hours, minutes = hhmm.split(":")
    return (int(hours) * 60 + int(minutes)) / 1440.0


@dataclass(frozen=True)
class Measure:
    """What a run is tallied for: the warm-up (the window is [warmup, horizon)), the capacity
    schedule of each service's own places where an investment bought more
    (``investments.own_places``; by service name: occupancy within them is what the service is
    costed for), and whether to keep every record too (for the patient log)."""

    warmup: float = 0.0
    own: dict = field(default_factory=dict)
    keep: bool = False
    census: float = time_of_day("23:59")
    """Time of day (a fraction of a day) of the daily count of people not meeting the criteria
    to reside."""


def checkpoints(horizon: float) -> list[float]:
    """The checkpoints of a run: every ``FOLD_DAYS`` days before the horizon, then the horizon."""
    n = max(0, math.ceil(horizon / FOLD_DAYS) - 1)
    return [FOLD_DAYS * (k + 1) for k in range(n)] + [float(horizon)]


def occupied_within(
    enter: np.ndarray, leave: np.ndarray, steps: list[tuple[float, int]], a: float, b: float
) -> float:
    """Integral over [a, b) of min(occupancy, capacity of the schedule ``steps``): the place-days
    of stays [enter, leave) that fall within those places."""
    times = np.concatenate([enter, leave, [a, b]])
    delta = np.concatenate([np.ones(enter.size), -np.ones(leave.size), [0.0, 0.0]])
    order = np.argsort(times, kind="stable")
    times, occ = times[order], np.cumsum(delta[order])
    seg_start, seg_end = times[:-1], times[1:]
    lo, hi = np.clip(seg_start, a, b), np.clip(seg_end, a, b)
    days = np.maximum(hi - lo, 0.0)
    mid = (lo + hi) / 2
    step_days = np.array([d for d, _ in steps])
    caps = np.array([c for _, c in steps], dtype=float)
    places = caps[np.searchsorted(step_days, mid, side="right") - 1]
    return float(np.sum(np.minimum(occ[:-1], np.maximum(places, 0.0)) * days))


class Tally:
    """The sums of one replication (see the module docstring). ``fold`` at each checkpoint in
    turn, the last one being the horizon; then read the arrays and counts.

    The places bought by an investment are costed by the investment, so only occupancy within a
    service's own places (``measure.own``) is costed to the service.
    """

    def __init__(
        self,
        layout: Layout,
        horizon: float,
        n_initial: int,
        capacity_steps: list[list[tuple[float, int]]],
        measure: Measure,
    ) -> None:
        self.measure = measure
        self.layout, self.H, self.W = layout, float(horizon), float(measure.warmup)
        self.n_initial, self.capacity_steps = n_initial, capacity_steps
        self.own = {layout.services.index(s): list(v) for s, v in measure.own.items()}
        self.since = 0.0
        self.done = False
        S, nd, R = len(layout.services), math.ceil(self.H), len(REASONS)
        P = S + 2  # places: services, then the front door and the community
        self.S, self.P, self.n_days = S, P, nd
        # what each service is, by role (``config.Service.role``), as codes: built once
        self.assessments = layout.assessments()
        self.reablement = layout.codes("reablement")
        self.away = layout.codes(*AWAY_ROLES)
        self.care_homes = layout.codes("care_home")
        # by day: stays in each service, waits in each place
        self.occupancy = np.zeros((S, nd))
        self.admissions = np.zeros((S, nd), dtype=np.int64)
        self.exits = np.zeros((S, nd), dtype=np.int64)
        self.exits_to = np.zeros((S, S + OUTCOME_SHIFT, nd), dtype=np.int64)
        # acute stays ended alive, by (acute code, pathway)
        self.discharges = np.zeros((layout.n_acute * len(PATHWAYS), nd), dtype=np.int64)
        self.held = np.zeros((P, nd))
        self.held_reason = np.zeros((P, R, nd))
        self.held_org = np.zeros((P, len(RESPONSIBLE), nd))
        self.waiting = np.zeros((S, nd))
        self.front_door_starts = np.zeros(nd, dtype=np.int64)
        self.front_door_ends = np.zeros(nd, dtype=np.int64)
        # over the measured window [W, H)
        self.window_occupied = np.zeros(S)
        self.window_own = np.zeros(S)  # occupied within the own places (services in ``own``)
        self.window_held = np.zeros(P)
        self.window_acute_reason = np.zeros(R)  # by DTOC code
        self.window_acute_kind = np.zeros(len(layout.waits))  # by kind of wait (Layout.waits)
        # by patient group at each acute trust (key ``group + groups x acute code``, for each
        # organisation's breakdown: a council's residents are its groups, a trust's patients
        # are in its acute beds): acute bed days, delayed bed days by responsible organisation,
        # counts. Care home admissions are by group alone (key = group: they may come from no
        # acute bed).
        K = self.n_keys = layout.n_keys
        self.n_acute = layout.n_acute
        self.window_acute_by_group = np.zeros(K)
        self.window_delayed_by_group = np.zeros((K, len(RESPONSIBLE)))
        self.by_group = {
            k: np.zeros(K, dtype=np.int64)
            for k in ("admissions", "discharges", "delayed_patients", "care_home_admissions",
                      "readmissions", "deaths", "deaths_in_acute")
        }
        # ... delayed bed days by kind of wait (``Layout.waits``: both reason schemes read from
        # it)
        self.window_kind_by_group = np.zeros((K, len(layout.waits)))
        # ... (and the system's, which are their sums): acute discharges (alive, in the window)
        # by pathway; discharge ready date measures: discharges by pathway and band of days from
        # the date the patient was ready, their days; and people ready to leave acute at each
        # day's census (a difference array over days, by pathway: +1 on the first census in a
        # stay, -1 after the last)
        self.discharges_by_group = np.zeros((K, len(PATHWAYS)), dtype=np.int64)
        self.drd_by_group = np.zeros((K, len(PATHWAYS), len(DRD_BANDS)), dtype=np.int64)
        self.drd_days_by_group = np.zeros((K, len(PATHWAYS)), dtype=np.int64)
        self.census_by_group = np.zeros((K, len(PATHWAYS), nd + 2), dtype=np.int64)
        self.window_for_by_group = np.zeros((K, S + 1))  # as window_acute_for
        self.window_boarding_by_acute = np.zeros(layout.n_acute)  # front-door waits, by trust
        self.window_community_for = np.zeros(S)  # community waits by the service waited for
        # ... days of delay of delayed discharges; the 91-day checks (made, at home)
        self.delay_by_group = np.zeros(K)
        self.home_by_group = np.zeros((K, 2), dtype=np.int64)
        self._acute_episodes = np.empty(0, np.int64)
        self._acute_keys = np.empty(0, np.int64)
        self.dtoc = layout.dtoc()
        self.window_acute_org = np.zeros(len(RESPONSIBLE))
        self.window_acute_for = np.zeros(S + 1)  # by what is waited for; PROCESS last
        # people who found a service full (when_full): sent out of the model, or elsewhere
        self.window_lost = np.zeros(S, dtype=np.int64)
        self.window_overflow = np.zeros(S, dtype=np.int64)
        self.counts = dict.fromkeys(
            ("admissions", "discharges", "deaths", "delayed_patients", "care_home_admissions",
             "readmissions", "home_checks", "home_at_check", "in_system_end", "records"), 0
        )  # fmt: skip
        self.delay_sum = 0.0
        # pending checks of where people are 91 days after going into reablement
        self._checks = (np.empty(0, np.int64), np.empty(0), np.empty(0, np.bool_),
                        np.empty(0, np.int64))  # fmt: skip
        # flows: entries by kind, and exits by (kind, a, b) with the first stay they occurred at
        self.entries: dict[tuple[str, int], int] = {}
        self.flow_exits: dict[tuple[int, int, int], list[int]] = {}
        self._started = np.zeros(0, dtype=np.bool_)  # by episode: its first stay was counted

    # -- folding -------------------------------------------------------------------------------

    def fold(
        self,
        visits: dict,
        waits: dict,
        until: float,
        seq: np.ndarray | None = None,
        turned: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add what happened in ``[since, until)`` (at the horizon: ``[since, until]``); return
        masks of the visits and waits still needed later. ``seq`` numbers the visits in the order
        they were made (default: their order here). ``turned``: the people turned away in the
        segment (``records.TURNED_FIELDS``; finished when made, so never needed again)."""
        if self.done:
            raise RuntimeError("this tally already reached the horizon")
        a, b = self.since, float(until)
        final = b >= self.H
        if seq is None:
            seq = np.arange(len(visits["enter"]), dtype=np.int64)
        keep_v = self._visits(visits, seq, a, b, final)
        keep_w = self._waits(waits, a, b, final)
        if turned is not None and len(turned["time"]):
            self._turned(turned)
        if final:
            v_open = np.isnan(visits["leave"]) & ~np.isin(visits["service"], self.assessments)
            w_open = np.isnan(waits["end"]) & np.isin(waits["place"], (FRONT_DOOR, COMMUNITY))
            self.counts["in_system_end"] = int(np.sum(v_open) + np.sum(w_open))
            self.counts["records"] += len(visits["enter"]) + len(waits["start"])
            self.done = True
        else:
            self.counts["records"] += int(np.sum(~keep_v) + np.sum(~keep_w))
        self.since = b
        return keep_v, keep_w

    def _in(self, t: np.ndarray, a: float, b: float, final: bool) -> np.ndarray:
        """Times in the segment (NaN never is)."""
        return (t >= a) & ((t <= b) if final else (t < b))

    def _visits(self, v: dict, seq: np.ndarray, a: float, b: float, final: bool) -> np.ndarray:
        S, W, H = self.S, self.W, self.H
        enter, leave, svc, out = v["enter"], v["leave"], v["service"], v["outcome"]
        start, end = np.maximum(enter, a), np.where(np.isnan(leave), b, np.minimum(leave, b))
        live = start < end
        self._integrate(self.occupancy, svc[live], start[live], end[live], a, b)
        self._window(self.window_occupied, svc[live], start[live], end[live], a, b)
        lo, hi = max(a, W), min(b, H)
        for code, own in self.own.items():
            m = live & (svc == code)
            if m.any() and lo < hi:
                self.window_own[code] += occupied_within(start[m], end[m], own, lo, hi)
        entered = self._in(enter, a, b, final)
        left = self._in(leave, a, b, final) & (out != OPEN)
        self._count(self.admissions, svc[entered], enter[entered])
        self._count(self.exits, svc[left], leave[left])
        n_out = S + OUTCOME_SHIFT
        self._count(self.exits_to.reshape(S * n_out, -1), svc[left] * n_out + out[left] +
                    OUTCOME_SHIFT, leave[left])  # fmt: skip
        acute = self.layout.is_acute(svc)
        alive = left & (out != DEATH)
        out_alive = acute & alive
        self._count(self.discharges, svc[out_alive] * len(PATHWAYS) + v["pathway"][out_alive],
                    leave[out_alive])  # fmt: skip
        in_window = lambda t: (t >= W) & (t < H)  # noqa: E731
        new = v["episode"] >= self.n_initial
        c = self.counts
        admitted = acute & new & entered & in_window(enter)
        c["admissions"] += int(np.sum(admitted))
        done = acute & alive & in_window(leave)
        c["discharges"] += int(np.sum(done))
        died = left & (out == DEATH) & in_window(leave)
        c["deaths"] += int(np.sum(died))
        delay = leave[done] - v["ready"][done]
        c["delayed_patients"] += int(np.sum(delay > 0))
        key = self._keys(v, acute)
        if np.any(delay > 0):
            self.delay_sum += float(np.sum(delay[delay > 0]))
            self.delay_by_group += np.bincount(key[done][delay > 0], weights=delay[delay > 0],
                                               minlength=self.n_keys)  # fmt: skip
        self.discharges_by_group += np.bincount(
            key[done] * len(PATHWAYS) + v["pathway"][done], minlength=self.n_keys * len(PATHWAYS)
        ).reshape(self.n_keys, len(PATHWAYS))
        self._ready(v, key, acute, done, left, final)
        arrived = new & entered & in_window(enter)
        care_home = arrived & np.isin(svc, self.care_homes)
        delayed = done & (leave - v["ready"] > 0)
        readmitted = acute & arrived & (v["episode"] != v["person"])
        self._by_group(v, key, live & acute, start, end, a, b, admitted, done, delayed,
                       care_home, readmitted, died, died & acute)  # fmt: skip
        c["care_home_admissions"] += int(np.sum(care_home))
        c["readmissions"] += int(np.sum(readmitted))
        self._home_checks(v, key, left, left & acute, a, b, final)
        self._flows(v, seq, entered, left)
        return np.isnan(leave) | (leave >= b)

    def _keys(self, v: dict, acute: np.ndarray) -> np.ndarray:
        """Each stay's key: its group at its trust (``group + groups x acute code``) for an acute
        stay (``acute``), its group alone for any other."""
        if self.n_acute == 1:
            return v["group"]
        return v["group"] + len(self.layout.groups) * np.where(acute, v["service"], 0)

    def _by_group(self, v, key, acute, start, end, a, b, admitted, discharged, delayed,
                  care_home, readmitted, died, died_in_acute):  # fmt: skip
        """The sums each organisation's breakdown is made of, by patient group at each acute
        trust (``__init__``): acute bed days, admissions, discharges, people delayed, care home
        admissions; and, for ``_waits``, the key of each acute stay of the segment."""
        K = self.n_keys
        self._window(self.window_acute_by_group, key[acute], start[acute], end[acute], a, b)
        counted = {"admissions": admitted, "discharges": discharged,
                   "delayed_patients": delayed, "care_home_admissions": care_home,
                   "readmissions": readmitted, "deaths": died,
                   "deaths_in_acute": died_in_acute}  # fmt: skip
        for name, m in counted.items():
            self.by_group[name] += np.bincount(key[m], minlength=K)
        order = np.argsort(v["episode"][acute], kind="stable")
        self._acute_episodes = v["episode"][acute][order]
        self._acute_keys = key[acute][order]

    def _key_of(self, episodes: np.ndarray) -> np.ndarray:
        """The key (group at its trust) of each episode's acute stay in the segment (every wait
        in an acute bed lies within its stay, so the stay is among the segment's records)."""
        k = np.searchsorted(self._acute_episodes, episodes)
        k = np.minimum(k, max(self._acute_episodes.size - 1, 0))
        if episodes.size and not np.array_equal(self._acute_episodes[k], episodes):
            raise RuntimeError("a wait in an acute bed outside the stays passed to the tally")
        return self._acute_keys[k]

    def _ready(self, v: dict, key, acute: np.ndarray, done: np.ndarray, left, final: bool) -> None:
        """The discharge ready date measures (``config.DRD_BANDS``): each acute discharge (alive,
        in the window) of a stay of a night or more, by its pathway and the calendar days from the
        date it was ready to the date it left; and, for each day, the people in acute beds at the
        census time who were ready to leave. A stay is counted whole when it ends (or, still open,
        at the horizon), under the pathway it left by, so a pathway changed while waiting
        (deconditioning) is counted as the one the record ends with, however the run was cut."""
        enter, ready, leave, pathway = v["enter"], v["ready"], v["leave"], v["pathway"]
        night = done & (np.floor(leave) > np.floor(enter)) & ~np.isnan(ready)
        days = (np.floor(leave[night]) - np.floor(ready[night])).astype(np.int64)
        band = np.searchsorted([b for _, b in DRD_BANDS], days, side="right") - 1
        B, P = len(DRD_BANDS), len(PATHWAYS)
        kp = key[night] * P + pathway[night]  # by group at each trust, and pathway
        flat = self.drd_by_group.reshape(-1)
        flat += np.bincount(kp * B + band, minlength=flat.size)
        flat = self.drd_days_by_group.reshape(-1)
        flat += np.bincount(kp, weights=days, minlength=flat.size).astype(np.int64)
        # census points d + census in [ready, leave): days ceil(ready - c) .. ceil(leave - c) - 1
        ended = left | (final & np.isnan(leave))
        end = np.where(np.isnan(leave), self.H, leave)
        m = acute & ended & (ready < end)
        if not m.any():
            return
        n = self.census_by_group.shape[-1]
        c, last = self.measure.census, n - 1
        first = np.clip(np.ceil(ready[m] - c), 0, last).astype(np.int64)
        after = np.clip(np.ceil(end[m] - c), 0, last).astype(np.int64)
        flat = self.census_by_group.reshape(-1)
        kp = key[m] * P + pathway[m]
        flat += np.bincount(kp * n + first, minlength=flat.size)
        flat -= np.bincount(kp * n + after, minlength=flat.size)

    def _waits(self, w: dict, a: float, b: float, final: bool) -> np.ndarray:
        S, R = self.S, len(REASONS)
        ws, we, place = w["start"], w["end"], w["place"]
        start, end = np.maximum(ws, a), np.where(np.isnan(we), b, np.minimum(we, b))
        live = start < end
        where = np.where(place >= 0, place, S + (place == COMMUNITY))
        s, e, p = start[live], end[live], where[live]
        self._integrate(self.held, p, s, e, a, b)
        self._window(self.window_held, p, s, e, a, b)
        kind, org, wants = w["reason"][live], w["responsible"][live], w["waits_for"][live]
        reason = np.where(kind >= 0, self.dtoc[np.maximum(kind, 0)], -1) if self.dtoc.size else kind
        m = reason >= 0
        self._integrate(self.held_reason.reshape(self.P * R, -1), p[m] * R + reason[m], s[m], e[m],
                        a, b)  # fmt: skip
        m = org >= 0
        self._integrate(self.held_org.reshape(self.P * len(RESPONSIBLE), -1),
                        p[m] * len(RESPONSIBLE) + org[m], s[m], e[m], a, b)  # fmt: skip
        # waiting to enter a service from elsewhere; for acute, the front door
        front = p == S
        m = front | ((wants >= self.layout.n_acute) & (wants != p))
        self._integrate(self.waiting, wants[m], s[m], e[m], a, b)
        acute = self.layout.is_acute(p)
        m = acute & (reason >= 0)
        self._window(self.window_acute_reason, reason[m], s[m], e[m], a, b)
        m = acute & (kind >= 0)
        self._window(self.window_acute_kind, kind[m], s[m], e[m], a, b)
        m = acute & (org >= 0)
        self._window(self.window_acute_org, org[m], s[m], e[m], a, b)
        if acute.any() and max(a, self.W) < min(b, self.H):  # each organisation's: by the key
            # of the acute stay the wait is in
            key = np.full(acute.size, -1, np.int64)
            key[acute] = self._key_of(w["episode"][live][acute])
            self._window(self.window_delayed_by_group.reshape(-1),
                         key[m] * len(RESPONSIBLE) + org[m], s[m], e[m], a, b)  # fmt: skip
            m = acute & (kind >= 0)
            n_kinds = self.window_kind_by_group.shape[1]
            self._window(self.window_kind_by_group.reshape(-1), key[m] * n_kinds + kind[m], s[m],
                         e[m], a, b)  # fmt: skip
            m = acute & ((wants >= 0) | (wants == PROCESS))
            self._window(self.window_for_by_group.reshape(-1),
                         key[m] * (S + 1) + np.where(wants == PROCESS, S, wants)[m], s[m], e[m],
                         a, b)  # fmt: skip
        m = front & (wants >= 0)
        self._window(self.window_boarding_by_acute, wants[m], s[m], e[m], a, b)
        m = (p == S + 1) & (wants >= 0)  # in the community, by the service waited for
        self._window(self.window_community_for, wants[m], s[m], e[m], a, b)
        m = acute & ((wants >= 0) | (wants == PROCESS))
        self._window(
            self.window_acute_for, np.where(wants == PROCESS, S, wants)[m], s[m], e[m], a, b
        )
        fd = place == FRONT_DOOR
        began, ended = fd & self._in(ws, a, b, final), fd & self._in(we, a, b, final)
        self._count(
            self.front_door_starts[None, :], np.zeros(int(began.sum()), np.int64), ws[began]
        )
        self._count(self.front_door_ends[None, :], np.zeros(int(ended.sum()), np.int64), we[ended])
        return np.isnan(we) | (we >= b)

    def _turned(self, t: dict) -> None:
        """People turned away by a full service in the window: lost (out of the model) or sent
        elsewhere (home, another service), by the service that was full. A community referral
        turned away to ``lost`` or ``home`` has no stay, so it enters the flows here."""
        m = (t["time"] >= self.W) & (t["time"] < self.H)
        svc, to = t["service"][m], t["to"][m]
        lost = to == LOST
        self.window_lost += np.bincount(svc[lost], minlength=self.S)
        self.window_overflow += np.bincount(svc[~lost], minlength=self.S)
        gone = (t["place"][m] == COMMUNITY) & (to < 0)
        for code in to[gone].tolist():
            key = ("community_referral", int(code))
            self.entries[key] = self.entries.get(key, 0) + 1

    # -- sums ---------------------------------------------------------------------------------

    def _integrate(self, out: np.ndarray, group: np.ndarray, s: np.ndarray, e: np.ndarray,
                   a: float, b: float) -> None:  # fmt: skip
        """Add to ``out[group, day]`` the time each interval [s, e) (inside the segment) spends in
        each day. A point p adds its weight (start -1, end +1) to every day before floor(p) and
        the fraction p - floor(p) to its own day, so whole days cancel exactly."""
        if s.size == 0:
            return
        n_groups, nd = out.shape
        d0 = int(math.floor(a))
        m = int(math.floor(b)) - d0 + 1
        p = np.concatenate([s, e])
        w = np.concatenate([-np.ones(s.size), np.ones(e.size)])
        day = np.floor(p)
        idx = np.concatenate([group, group]) * m + (day.astype(np.int64) - d0)
        whole = np.bincount(idx, weights=w, minlength=n_groups * m).reshape(n_groups, m)
        part = np.bincount(idx, weights=w * (p - day), minlength=n_groups * m).reshape(n_groups, m)
        later = np.cumsum(whole[:, ::-1], axis=1)[:, ::-1] - whole
        days = min(m, nd - d0)
        out[:, d0 : d0 + days] += (later + part)[:, :days]

    def _window(self, out: np.ndarray, group: np.ndarray, s: np.ndarray, e: np.ndarray,
                a: float, b: float) -> None:  # fmt: skip
        """Add to ``out[group]`` the time each interval spends in the measured window."""
        lo, hi = max(a, self.W), min(b, self.H)
        if s.size == 0 or lo >= hi:
            return
        length = np.minimum(e, hi) - np.maximum(s, lo)
        m = length > 0
        out += np.bincount(group[m], weights=length[m], minlength=out.size)

    def _count(self, out: np.ndarray, group: np.ndarray, t: np.ndarray) -> None:
        """Add one to ``out[group, floor(t)]`` for each event (days past the last are dropped)."""
        if t.size == 0:
            return
        n_groups, nd = out.shape
        day = np.floor(t).astype(np.int64)
        m = day < nd
        out += np.bincount(group[m] * nd + day[m], minlength=n_groups * nd).reshape(n_groups, nd)

    # -- at home 91 days after reablement --------------------------------------------------------

    def _home_checks(self, v: dict, key, left, left_acute, a: float, b: float, final: bool) -> None:
        """ASCOF 2B(1): a check is set when someone leaves acute for a reablement-role service in
        the window (at least 91 days before the horizon); they are not at home at the check if
        they died by then, or are then in a place whose role is not at home (``AWAY_ROLES``:
        acute, step-down, care home, other). Resolved in the segment holding the check's time,
        when every stay covering it is known."""
        if self.reablement.size == 0:
            return
        W, H = self.W, self.H
        leave, person, out = v["leave"], v["person"], v["outcome"]
        new = left_acute & np.isin(out, self.reablement)
        new &= leave >= W
        new &= leave < H - HOME_CHECK_DAYS
        who, t, gone, whose = self._checks
        whose = np.concatenate([whose, key[new]])  # the key of the acute stay they left
        who = np.concatenate([who, person[new]])
        t = np.concatenate([t, leave[new] + HOME_CHECK_DAYS])
        gone = np.concatenate([gone, np.zeros(int(new.sum()), np.bool_)])
        died = left & (out == DEATH)
        if died.any() and who.size:
            dp, dt = person[died], leave[died]
            order = np.argsort(dp, kind="stable")
            dp, dt = dp[order], dt[order]
            k = np.minimum(np.searchsorted(dp, who), dp.size - 1)
            gone |= (dp[k] == who) & (dt[k] <= t)
        due = (t < b) if not final else np.ones(t.size, np.bool_)
        if due.any():
            gone[due] |= self._away_at(v, who[due], t[due])
            self.counts["home_checks"] += int(due.sum())
            self.counts["home_at_check"] += int(np.sum(~gone[due]))
            K = self.n_keys
            self.home_by_group[:, 0] += np.bincount(whose[due], minlength=K)
            self.home_by_group[:, 1] += np.bincount(whose[due][~gone[due]], minlength=K)
        self._checks = (who[~due], t[~due], gone[~due], whose[~due])

    def _away_at(self, v: dict, who: np.ndarray, t: np.ndarray) -> np.ndarray:
        """For each (person, time): in a place whose role is not at home at that time."""
        leave = np.where(np.isnan(v["leave"]), np.inf, v["leave"])
        sel = np.flatnonzero(np.isin(v["service"], self.away) & np.isin(v["person"], who))
        sel = sel[np.argsort(v["person"][sel], kind="stable")]
        owner = v["person"][sel]
        lo, hi = np.searchsorted(owner, who, "left"), np.searchsorted(owner, who, "right")
        n = hi - lo
        pair = np.repeat(np.arange(who.size), n)
        j = sel[np.arange(pair.size) + np.repeat(lo - (np.cumsum(n) - n), n)]
        covers = (v["enter"][j] <= t[pair]) & (t[pair] < leave[j])
        return np.bincount(pair, weights=covers, minlength=who.size) > 0

    # -- flows ---------------------------------------------------------------------------------

    def _flows(self, v: dict, seq: np.ndarray, entered: np.ndarray, left: np.ndarray) -> None:
        """Entries: the first stay of each episode begun in the window (assessments are not a
        place). Exits: stays ended in the window, an acute stay ended alive counted into its
        pathway and from the pathway on, each pair with the first stay it occurred at."""
        W, H = self.W, self.H
        ep, svc = v["episode"], v["service"]
        place = ~np.isin(svc, self.assessments)
        cand = np.flatnonzero(place & (ep >= self.n_initial) & entered)
        if cand.size and ep[cand].max() >= self._started.size:  # grow the flags
            grown = np.zeros(max(int(ep[cand].max()) + 1, 2 * self._started.size), np.bool_)
            grown[: self._started.size] = self._started
            self._started = grown
        cand = cand[~self._started[ep[cand]]]
        if cand.size:
            order = cand[np.lexsort((seq[cand], v["enter"][cand], ep[cand]))]
            first = order[np.r_[True, ep[order][1:] != ep[order][:-1]]]
            self._started[ep[first]] = True
            first = first[(v["enter"][first] >= W) & (v["enter"][first] < H)]
            readmit = ep[first] != v["person"][first]
            at_acute = self.layout.is_acute(svc[first])
            for kind, m in (("readmitted", readmit), ("admitted", ~readmit)):
                for code in range(self.layout.n_acute):
                    n = int(np.sum(m & (svc[first] == code)))
                    self.entries[(kind, code)] = self.entries.get((kind, code), 0) + n
            codes = svc[first][~at_acute]
            for code, n in zip(*np.unique(codes, return_counts=True)):
                key = ("community_referral", int(code))
                self.entries[key] = self.entries.get(key, 0) + int(n)
        js = np.flatnonzero(place & left & (v["leave"] >= W) & (v["leave"] < H))
        if js.size == 0:
            return
        service, outcome, pathway = svc[js], v["outcome"][js], v["pathway"][js]
        via = self.layout.is_acute(service) & (outcome != DEATH)
        # a pair as (kind, a, b): 0 service -> outcome, 1 acute -> pathway, 2 pathway -> outcome
        kind = np.concatenate([np.where(via, 1, 0), np.full(int(via.sum()), 2)])
        x = np.concatenate([np.where(via, pathway, service), pathway[via]])
        y = np.concatenate([np.where(via, service, outcome), outcome[via]])
        position = np.concatenate([2 * seq[js], 2 * seq[js][via] + 1])
        n_x, n_y = max(self.S, len(PATHWAYS)), self.S + 8  # outcomes from -7 up
        code = (kind * n_x + x) * n_y + (y + 8)
        size = 3 * n_x * n_y
        n = np.bincount(code, minlength=size)
        at = np.full(size, np.iinfo(np.int64).max)
        np.minimum.at(at, code, position)
        for j in np.flatnonzero(n).tolist():
            pair = (j // (n_x * n_y), j // n_y % n_x, j % n_y - 8)
            got = self.flow_exits.setdefault(pair, [0, int(at[j])])
            got[0] += int(n[j])
            got[1] = min(got[1], int(at[j]))

    # -- reading -------------------------------------------------------------------------------

    def home_at_91_rate(self) -> float:
        if self.reablement.size == 0 or self.counts["home_checks"] == 0:
            return math.nan
        return self.counts["home_at_check"] / self.counts["home_checks"]

    def mean_delay(self) -> float:
        n = self.counts["delayed_patients"]
        return self.delay_sum / n if n else math.nan


def replay(tally: Tally, visits: dict, waits: dict, turned: dict | None = None) -> Tally:
    """Fold a finished run's records (all of them, in the order they were made, as ``records.close``
    leaves them) into ``tally`` checkpoint by checkpoint, giving each fold the records a running
    engine would still hold: the same sums, bit for bit, as folding while running."""
    when = turned["time"] if turned is not None else np.empty(0)
    enter, leave = visits["enter"], visits["leave"]
    start, end = waits["start"], waits["end"]
    cuts = checkpoints(tally.H)
    a = tally.since
    for b in cuts:
        final = b >= tally.H
        v = (enter < b) | final
        v &= np.isnan(leave) | (leave >= a)
        w = (start < b) | final
        w &= np.isnan(end) | (end >= a)
        vi, wi = np.flatnonzero(v), np.flatnonzero(w)
        ti = np.flatnonzero((when >= a) & ((when < b) | final))
        segment = {k: c[ti] for k, c in turned.items()} if ti.size else None
        tally.fold({k: c[vi] for k, c in visits.items()}, {k: c[wi] for k, c in waits.items()},
                   b, seq=vi, turned=segment)  # fmt: skip
        a = b
    return tally
