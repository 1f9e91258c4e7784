"""Events to tables: KPIs per replication, daily series, the patient log, summaries with intervals,
and the files of the outputs contract written with their provenance.

Definitions (all over the measured window ``[warmup_days, horizon_days)``):

- ``admissions``: acute admissions in the window (people already in care at day 0 are not counted).
- ``discharges``: acute stays ended alive in the window; ``deaths``: deaths in any setting.
- ``in_system_end``: people in a service or waiting for one at the horizon.
- a *delay* is time spent ready to leave a service while waiting for the next one; in acute it runs
  from no criteria to reside to leaving the bed (discharge process, assessment, and the wait for a
  place). ``delayed_bed_days`` is the time-integral of delayed patients in acute beds over the
  window
  (so it is the sum of the parts of delays inside the window), split by responsible organisation
  (``_nhs``, ``_social_care``, ``_both``), by DTOC reason code (``_<reason>``) and by what the
  patient waits for (``_for_<service>``, ``_for_discharge_process``).
- ``delayed_patients``: patients whose acute delay was positive and ended inside the window;
  ``mean_delay_days``: the mean acute delay of those patients, each delay counted whole.
- ``nctr_mean``: ``delayed_bed_days`` divided by the window's length (mean beds held by people ready
  to leave). ``acute_occupancy_mean``: mean occupied acute beds; ``acute_occupancy_p95``: the 95th
  percentile of daily mean occupancy; ``acute_days_over_95pct``: days whose mean occupancy was
  above 95% of the beds in force.
- ``boarding_hours``: hours spent waiting for an acute bed (the front door), all admissions.
- ``care_home_admissions``: entries to care home services; ``readmissions``: acute admissions of
  people already discharged (within 30 days, by pathway).
- ``home_at_91_days_rate``: of people discharged from acute to reablement in the window (at least 91
  days before the horizon), the share at home (not dead, not in hospital, a care home or a
  community bed) 91 days later (ASCOF 2B(1)).
- costs: occupied days x cost per occupied day + capacity days x cost per capacity day, to the
  organisation that pays for the service, plus investments (``investment_cost_gbp``, by funder in
  ``investment_cost_<funder>_gbp``) to the organisation of their funder (iBCF and councils: social
  care; NHS and ICBs: NHS). ``cost_total_gbp`` is the net system cost, investments included.
  Capacity bought by an investment is costed once, by the investment.
- ``acute_bed_days``: occupied acute bed days in the window.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

from flowsim.config import PATHWAYS, REASONS, RESPONSIBLE, Config
from flowsim.patients import COMMUNITY, DEATH, FRONT_DOOR, HOME, OPEN, PROCESS, READMIT

if TYPE_CHECKING:
    from flowsim.model import Events

KPI_CONTRACT = (
    "admissions",
    "discharges",
    "deaths",
    "in_system_end",
    "delayed_bed_days",
    "delayed_bed_days_nhs",
    "delayed_bed_days_social_care",
    "delayed_bed_days_both",
    "delayed_patients",
    "mean_delay_days",
    "acute_occupancy_mean",
    "acute_occupancy_p95",
    "nctr_mean",
    "boarding_hours",
    "care_home_admissions",
    "home_at_91_days_rate",
    "readmissions",
    "cost_nhs_gbp",
    "cost_social_care_gbp",
    "cost_total_gbp",
)
HEADLINE = (
    ("delayed_bed_days", "Delayed bed days (acute)"),
    ("nctr_mean", "Beds held by people ready to leave"),
    ("delayed_patients", "People delayed"),
    ("mean_delay_days", "Mean delay, days"),
    ("acute_occupancy_mean", "Acute beds occupied"),
    ("boarding_hours", "Boarding hours"),
    ("home_at_91_days_rate", "At home 91 days after reablement"),
    ("cost_total_gbp", "Cost to NHS and council, GBP"),
)


# -- time integrals ---------------------------------------------------------------------------


def integral_until(starts: np.ndarray, ends: np.ndarray, x: np.ndarray) -> np.ndarray:
    """For each x: the integral over [0, x] of the number of intervals [start, end) covering t.

    ``sum_i min(x, end_i) - min(x, start_i)``, computed with sorted prefix sums in O(n log n).
    """
    x = np.asarray(x, dtype=np.float64)

    def sum_min(v: np.ndarray, kind: str) -> np.ndarray:
        v = np.sort(v, kind=kind)
        prefix = np.concatenate([[0.0], np.cumsum(v)])
        k = np.searchsorted(v, x, side="left")
        return prefix[k] + x * (len(v) - k)

    # starts are recorded in nearly time order, which a merge sort takes in about one pass (the
    # sorted values, and so the sums, are the same whichever sort)
    return sum_min(ends, "quicksort") - sum_min(starts, "stable")


def daily_integral(starts: np.ndarray, ends: np.ndarray, n_days: int) -> np.ndarray:
    """Time-integral of the count of intervals on each whole day 0..n_days-1 (= mean count)."""
    return np.diff(integral_until(starts, ends, np.arange(n_days + 1, dtype=np.float64)))


def window_integral(starts: np.ndarray, ends: np.ndarray, a: float, b: float) -> float:
    f = integral_until(starts, ends, np.array([a, b]))
    return float(f[1] - f[0])


def capacity_integral(steps: list[tuple[float, int]], a, b):
    """Place-days of capacity in force over [a, b): a float, or an array for arrays ``a``, ``b``
    (``capacity_integral(steps, days, days + 1)`` is the capacity of each day)."""
    total = 0.0
    for k, (day, cap) in enumerate(steps):
        end = steps[k + 1][0] if k + 1 < len(steps) else math.inf
        total = total + cap * np.maximum(0.0, np.minimum(b, end) - np.maximum(a, day))
    return float(total) if np.ndim(total) == 0 else total


def occupied_within_base(
    enter: np.ndarray, leave: np.ndarray, steps: list[tuple[float, int]], bought, a: float, b: float
) -> float:
    """Integral over [a, b) of min(occupancy, capacity not bought by an investment).

    The base capacity at t is the capacity in force minus the units of investments active at t.
    """
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
    base = caps[np.searchsorted(step_days, mid, side="right") - 1]
    for inv in bought:
        base -= np.where((mid >= inv.start_time) & (mid < inv.end_time), inv.units, 0.0)
    return float(np.sum(np.minimum(occ[:-1], np.maximum(base, 0.0)) * days))


def _closed(ends: np.ndarray, horizon: float) -> np.ndarray:
    return np.where(np.isnan(ends), horizon, ends)


# -- KPIs -------------------------------------------------------------------------------------


def kpis(ev: Events, config: Config) -> dict[str, float]:
    """The KPI row of one replication (see the module docstring for definitions)."""
    system = config.system
    W, H = float(config.run.warmup_days), ev.horizon_days
    L = H - W
    lay = ev.layout
    v, w = ev.visits, ev.waits
    v_leave = _closed(v["leave"], H)
    w_end = _closed(w["end"], H)
    in_window = lambda t: (t >= W) & (t < H)  # noqa: E731
    acute = v["service"] == 0
    new = v["episode"] >= ev.n_initial
    out: dict[str, float] = {}
    out["admissions"] = int(np.sum(acute & new & in_window(v["enter"])))
    ended = (v["outcome"] != OPEN) & in_window(v["leave"])
    out["discharges"] = int(np.sum(acute & ended & (v["outcome"] != DEATH)))
    out["deaths"] = int(np.sum(ended & (v["outcome"] == DEATH)))
    open_waits = np.isnan(w["end"]) & np.isin(w["place"], (FRONT_DOOR, COMMUNITY))
    # an assessment happens while holding a bed: count the bed, not the assessment too
    placed = v["service"] != (
        lay.services.index("assessment") if "assessment" in lay.services else -1
    )
    out["in_system_end"] = int(np.sum(np.isnan(v["leave"]) & placed) + np.sum(open_waits))

    in_acute = w["place"] == 0
    out["delayed_bed_days"] = window_integral(w["start"][in_acute], w_end[in_acute], W, H)
    for k, r in enumerate(RESPONSIBLE):
        m = in_acute & (w["responsible"] == k)
        out[f"delayed_bed_days_{r}"] = window_integral(w["start"][m], w_end[m], W, H)
    for k in reasons_used(config):
        m = in_acute & (w["reason"] == REASONS.index(k))
        out[f"delayed_bed_days_{k}"] = window_integral(w["start"][m], w_end[m], W, H)
    for code, s in enumerate(lay.services[1:], start=1):
        m = in_acute & (w["waits_for"] == code)
        out[f"delayed_bed_days_for_{s}"] = window_integral(w["start"][m], w_end[m], W, H)
    m = in_acute & (w["waits_for"] == PROCESS)
    out["delayed_bed_days_for_discharge_process"] = window_integral(w["start"][m], w_end[m], W, H)
    done = acute & ended & (v["outcome"] != DEATH)
    delay = v["leave"][done] - v["ready"][done]
    delayed = delay > 0
    out["delayed_patients"] = int(np.sum(delayed))
    out["mean_delay_days"] = float(delay[delayed].mean()) if delayed.any() else math.nan

    daily_occ = daily_integral(v["enter"][acute], v_leave[acute], math.ceil(H))
    out["acute_occupancy_mean"] = window_integral(v["enter"][acute], v_leave[acute], W, H) / L
    measured = daily_occ[int(math.ceil(W)) : int(math.floor(H))]
    out["acute_occupancy_p95"] = float(np.percentile(measured, 95)) if measured.size else math.nan
    acute_cap = capacity_integral(ev.capacity_steps[0], W, H) / L
    out["acute_occupancy_rate"] = out["acute_occupancy_mean"] / acute_cap
    measured_days = np.arange(int(math.ceil(W)), int(math.floor(H)), dtype=np.float64)
    daily_cap = capacity_integral(ev.capacity_steps[0], measured_days, measured_days + 1.0)
    out["acute_days_over_95pct"] = int(np.sum(measured > 0.95 * daily_cap))
    out["nctr_mean"] = out["delayed_bed_days"] / L
    out["nctr_share_of_occupied"] = out["nctr_mean"] / max(out["acute_occupancy_mean"], 1e-12)
    fd = w["place"] == FRONT_DOOR
    out["boarding_hours"] = 24.0 * window_integral(w["start"][fd], w_end[fd], W, H)
    cw = w["place"] == COMMUNITY
    out["community_wait_days"] = window_integral(w["start"][cw], w_end[cw], W, H)

    care_homes = [lay.services.index(s) for s in lay.services if s.startswith("care_home")]
    out["care_home_admissions"] = int(
        np.sum(np.isin(v["service"], care_homes) & new & in_window(v["enter"]))
    )
    out["home_at_91_days_rate"] = _home_at_91(v, v_leave, lay, W, H)
    out["readmissions"] = int(np.sum(acute & (v["episode"] != v["person"]) & in_window(v["enter"])))
    for k, p in enumerate(PATHWAYS):
        out[f"discharges_{p}"] = int(np.sum(done & (v["pathway"] == k)))

    # capacity bought by an investment is costed by the investment, not again by the service
    from flowsim.scenarios import capacity_service, investment_costs, organisation

    invest = investment_costs(config, W, H)
    org = {"nhs": 0.0, "social_care": 0.0, "other": 0.0}
    for code, s in enumerate(lay.services):
        svc = system.services[s]
        m = v["service"] == code
        bought = [i for i in config.scenario.investments if capacity_service(i.lever) == s]
        place_days = capacity_integral(ev.capacity_steps[code], W, H) - invest.get(
            f"_place_days_{s}", 0.0
        )
        if bought:  # people in bought places are paid for by the investment
            occupied = occupied_within_base(
                v["enter"][m], v_leave[m], ev.capacity_steps[code], bought, W, H
            )
        else:
            occupied = window_integral(v["enter"][m], v_leave[m], W, H)
        cost = svc.cost_per_occupied_day_gbp * occupied + svc.cost_per_capacity_day_gbp * place_days
        out[f"cost_{s}_gbp"] = cost
        org[svc.paid_by] += cost
    out["investment_cost_gbp"] = 0.0
    for funder, cost in invest.items():
        if not funder.startswith("_"):
            out[f"investment_cost_{funder}_gbp"] = cost
            out["investment_cost_gbp"] += cost
            org[organisation(funder)] += cost
    out["acute_bed_days"] = out["acute_occupancy_mean"] * L
    out["cost_nhs_gbp"] = org["nhs"]
    out["cost_social_care_gbp"] = org["social_care"]
    out["cost_total_gbp"] = org["nhs"] + org["social_care"] + org["other"]
    return out


def reasons_used(config: Config) -> list[str]:
    """DTOC reason codes that some wait in this system is recorded under, in code order."""
    s = config.system
    used = {svc.wait.reason for svc in s.services.values() if svc.wait is not None}
    used |= {p.process_wait.reason for p in s.discharge.pathways.values()}
    return [r for r in REASONS if r in used]


def _home_at_91(v: dict, v_leave: np.ndarray, lay, W: float, H: float) -> float:
    """ASCOF 2B(1)-style: share at home 91 days after discharge from acute into reablement."""
    if "reablement" not in lay.services:
        return math.nan
    reab = lay.services.index("reablement")
    idx = np.flatnonzero(
        (v["service"] == 0) & (v["outcome"] == reab) & (v["leave"] >= W) & (v["leave"] < H - 91)
    )
    if idx.size == 0:
        return math.nan
    persons = v["person"][idx]
    check_at = v["leave"][idx] + 91.0
    away = [
        lay.services.index(s)
        for s in lay.services
        if s == "acute" or s.startswith(("care_home", "step_down"))
    ]
    # every (discharge, visit of the same person) pair: the person's visits in person order
    sel = np.flatnonzero(np.isin(v["person"], persons))
    sel = sel[np.argsort(v["person"][sel], kind="stable")]
    who = v["person"][sel]
    lo, hi = np.searchsorted(who, persons, "left"), np.searchsorted(who, persons, "right")
    n = hi - lo
    pair = np.repeat(np.arange(idx.size), n)
    first = np.repeat(lo - (np.cumsum(n) - n), n)
    j = sel[np.arange(pair.size) + first]
    t = check_at[pair]
    # not at home at t: dead by then, or in hospital, a care home or a step-down bed at t
    gone = (v["outcome"][j] == DEATH) & (v_leave[j] <= t)
    gone |= (v["enter"][j] <= t) & (t < v_leave[j]) & np.isin(v["service"][j], away)
    home = idx.size - int(np.count_nonzero(np.bincount(pair, weights=gone, minlength=idx.size)))
    return home / idx.size


# -- daily series and the patient log -----------------------------------------------------------


def daily(ev: Events, config: Config) -> pd.DataFrame:
    """One row per (day, place): occupancy, capacity, admissions, exits, waits and delays.

    ``delayed_mean`` counts people in the place who are ready to leave and waiting (by reason in
    ``delayed_<reason>``, by responsible organisation in ``delayed_<nhs|social_care|both>``);
    ``discharges_P0`` .. ``_P3`` count acute stays ended alive on the day, by pathway (0 for
    other places); ``exits_<home|death|readmission|service>`` count stays ended on the day by
    where the person went; ``waiting_mean`` counts people waiting to enter it, wherever they wait.
    ``front_door`` is the queue for an acute bed. Days in the warm-up are flagged ``warmup``.
    """
    H = ev.horizon_days
    n_days = math.ceil(H)
    lay = ev.layout
    v, w = ev.visits, ev.waits
    v_leave, w_end = _closed(v["leave"], H), _closed(w["end"], H)
    reasons = reasons_used(config)
    days = np.arange(n_days)
    frames = []
    places = [(code, s) for code, s in enumerate(lay.services)] + [(FRONT_DOOR, "front_door")]
    for code, s in places:
        if code == FRONT_DOOR:
            m = w["place"] == FRONT_DOOR
            occ = daily_integral(w["start"][m], w_end[m], n_days)
            adm = np.bincount(np.floor(w["start"][m]).astype(int), minlength=n_days)[:n_days]
            ex_t = w["end"][m][~np.isnan(w["end"][m])]
            cap = np.full(n_days, np.nan)
        else:
            m = v["service"] == code
            occ = daily_integral(v["enter"][m], v_leave[m], n_days)
            adm = np.bincount(np.floor(v["enter"][m]).astype(int), minlength=n_days)[:n_days]
            ex_t = v["leave"][m][~np.isnan(v["leave"][m])]
            cap = capacity_integral(ev.capacity_steps[code], days, days + 1.0)
        ex = np.bincount(np.floor(ex_t).astype(int), minlength=n_days)[:n_days]
        frame = {
            "day": days,
            "service": s,
            "occupancy_mean": occ,
            "capacity": cap,
            "admissions": adm,
            "exits": ex,
        }
        # where people went: home, death, back to hospital, or another service
        for name, dest in (("home", HOME), ("death", DEATH), ("readmission", READMIT)) + tuple(
            (x, lay.services.index(x)) for x in lay.downstream
        ):
            if code == FRONT_DOOR:
                frame[f"exits_{name}"] = np.zeros(n_days, dtype=np.int64)
                continue
            t = np.floor(v["leave"][m & (v["outcome"] == dest)]).astype(int)
            frame[f"exits_{name}"] = np.bincount(t, minlength=n_days)[:n_days]
        held = w["place"] == code
        frame["delayed_mean"] = daily_integral(w["start"][held], w_end[held], n_days)
        for r in reasons:
            mr = held & (w["reason"] == REASONS.index(r))
            frame[f"delayed_{r}"] = daily_integral(w["start"][mr], w_end[mr], n_days)
        for k, org in enumerate(RESPONSIBLE):
            mo = held & (w["responsible"] == k)
            frame[f"delayed_{org}"] = daily_integral(w["start"][mo], w_end[mo], n_days)
        for k, pathway in enumerate(PATHWAYS):  # acute stays ended alive, by pathway
            if code != 0:
                frame[f"discharges_{pathway}"] = np.zeros(n_days, dtype=np.int64)
                continue
            mp = m & (v["pathway"] == k) & (v["outcome"] != DEATH) & (v["outcome"] != OPEN)
            t = np.floor(v["leave"][mp]).astype(int)
            frame[f"discharges_{pathway}"] = np.bincount(t, minlength=n_days)[:n_days]
        waiting = (w["waits_for"] == code) & (w["place"] != code)
        if code == 0:
            waiting = w["place"] == FRONT_DOOR
        frame["waiting_mean"] = (
            daily_integral(w["start"][waiting], w_end[waiting], n_days)
            if code != FRONT_DOOR
            else np.zeros(n_days)
        )
        frames.append(pd.DataFrame(frame))
    out = pd.concat(frames, ignore_index=True)
    out["warmup"] = out["day"] < config.run.warmup_days
    return out


def patient_log(ev: Events) -> pd.DataFrame:
    """The event log: one row per stay in a service (``ready`` = ready to leave; ``outcome`` = where
    the person went next)."""
    lay = ev.layout
    names = {
        **dict(enumerate(lay.services)),
        HOME: "home",
        DEATH: "death",
        READMIT: "readmission",
        OPEN: "still_in_service",
    }
    v = ev.visits
    return pd.DataFrame(
        {
            "episode": v["episode"],
            "person": v["person"],
            "service": pd.Categorical.from_codes(v["service"], lay.services),
            "group": pd.Categorical.from_codes(v["group"], lay.groups),
            "pathway": pd.Categorical.from_codes(v["pathway"], list(PATHWAYS)),
            "enter_day": v["enter"],
            "ready_day": v["ready"],
            "leave_day": v["leave"],
            "outcome": [names[int(o)] for o in v["outcome"]],
        }
    )


def flows(ev: Events, config: Config) -> pd.DataFrame:
    """Patients moving between places in the measured window, for the flow (Sankey) diagram.

    One row per (source, target): ``admitted`` / ``readmitted`` / ``community_referral`` into a
    service; ``acute`` into the discharge pathway it ended on (``P0`` .. ``P3``) or ``death``; a
    pathway into where its people went; each other service into its onward places (a service,
    ``home``, ``death`` or ``readmission``). Assessments happen in an acute bed and are not a
    place here. People already in care at the start enter no flow.
    """
    W, H = float(config.run.warmup_days), ev.horizon_days
    lay = ev.layout
    v = ev.visits
    names = {**dict(enumerate(lay.services)), HOME: "home", DEATH: "death", READMIT: "readmission"}
    assess = lay.services.index("assessment") if "assessment" in lay.services else -99
    place = v["service"] != assess
    counts: dict[tuple[str, str], int] = {}

    def add(source: str, target: str, n: int) -> None:
        if n:
            counts[(source, target)] = counts.get((source, target), 0) + n

    # entries: the first stay of each episode begun in the window
    new = place & (v["episode"] >= ev.n_initial)
    idx = np.flatnonzero(new)
    order = idx[np.lexsort((v["enter"][idx], v["episode"][idx]))]
    first = (
        order[np.r_[True, v["episode"][order][1:] != v["episode"][order][:-1]]] if idx.size else idx
    )
    first = first[(v["enter"][first] >= W) & (v["enter"][first] < H)]
    for j_service, readmit in ((0, True), (0, False)):
        m = (v["service"][first] == j_service) & (
            (v["episode"][first] != v["person"][first]) == readmit
        )
        add("readmitted" if readmit else "admitted", "acute", int(np.sum(m)))
    for code in np.unique(v["service"][first]):
        if code != 0:
            add("community_referral", names[int(code)], int(np.sum(v["service"][first] == code)))
    # exits: stays ended in the window. An acute stay not ending in death counts twice: into
    # its pathway, then from the pathway on. Pairs are listed in order of first occurrence.
    js = np.flatnonzero(place & (v["outcome"] != OPEN) & (v["leave"] >= W) & (v["leave"] < H))
    service, outcome, pathway = v["service"][js], v["outcome"][js], v["pathway"][js]
    via = (service == 0) & (outcome != DEATH)
    # a pair as (kind, a, b): 0 service -> outcome, 1 acute -> pathway, 2 pathway -> outcome
    kind = np.concatenate([np.where(via, 1, 0), np.full(int(via.sum()), 2)])
    a = np.concatenate([np.where(via, pathway, service), pathway[via]])
    b = np.concatenate([np.where(via, 0, outcome), outcome[via]])
    position = np.concatenate([2 * np.arange(js.size), 2 * np.flatnonzero(via) + 1])
    keys = (kind * 1_000_000 + a * 1_000 + (b + 100)).astype(np.int64)
    unique, first_at, n = np.unique(keys, return_index=True, return_counts=True)
    for j in np.argsort(position[first_at], kind="stable"):
        k, x, y = int(kind[first_at[j]]), int(a[first_at[j]]), int(b[first_at[j]])
        if k == 1:
            add("acute", PATHWAYS[x], int(n[j]))
        elif k == 2:
            add(PATHWAYS[x], names[y], int(n[j]))
        else:
            add(names[x], names[y], int(n[j]))
    return pd.DataFrame(
        [{"source": s, "target": t, "patients": n} for (s, t), n in counts.items()],
        columns=["source", "target", "patients"],
    )


# -- summaries --------------------------------------------------------------------------------


def interval(
    values: np.ndarray, level: float = 0.95, lower: float = -math.inf
) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval across replications (NaN bounds when n < 2).

    ``lower`` is the least value the quantity can take (0 for a count, a time or a cost): the
    interval is cut there, as a few replications of a skewed KPI can otherwise give a negative
    bound for something that cannot be negative. Cutting an interval to the values the quantity
    can take does not lower its coverage.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, max(mean - half, lower), mean + half


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, KPI): mean, 95% CI, p5/p50/p95, n replications. Every KPI is a
    count, a time, a rate or a cost, none of which can be negative: intervals stop at 0."""
    rows = []
    kpi_cols = [c for c in runs.columns if c not in ("scenario", "replication")]
    for scenario, grp in runs.groupby("scenario", sort=False):
        for k in kpi_cols:
            x = grp[k].to_numpy(dtype=np.float64)
            mean, lo, hi = interval(x, lower=0.0)
            finite = x[~np.isnan(x)]
            q = np.percentile(finite, [5, 50, 95]) if finite.size else [math.nan] * 3
            rows.append(
                {
                    "scenario": scenario,
                    "kpi": k,
                    "mean": mean,
                    "ci_low": lo,
                    "ci_high": hi,
                    "p5": q[0],
                    "p50": q[1],
                    "p95": q[2],
                    "n": int(finite.size),
                }
            )
    return pd.DataFrame(rows)


# -- files ------------------------------------------------------------------------------------


def config_hash(resolved: dict) -> str:
    """SHA-256 of the resolved config, keys sorted: the same config always has the same hash."""
    blob = json.dumps(resolved, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def versions() -> dict[str, str]:
    import platform

    import numba
    import simpy

    import flowsim

    return {
        "flowsim": flowsim.__version__,
        "python": platform.python_version(),
        "simpy": simpy.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
    }


def manifest(resolved: dict, seed: int) -> dict:
    return {
        "config": resolved,
        "config_hash": config_hash(resolved),
        "seed": seed,
        "versions": versions(),
    }


def usual_mode(path: str | Path, directory: bool = False) -> None:
    """Give a file or folder made by ``tempfile`` (private: 0600 / 0700) the permissions an
    ordinary one would have under the user's umask, so colleagues can read shared outputs."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def _atomic(path: Path, write) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_parquet(df: pd.DataFrame, path: Path, meta: dict) -> None:
    """Parquet with its provenance (``flowsim`` key: config hash, seed, versions) in metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    extra = {b"flowsim": json.dumps(meta, default=str).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    _atomic(path, lambda tmp: pq.write_table(table, tmp))


def write_csv(df: pd.DataFrame, path: Path) -> None:
    _atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def write_json(obj: dict, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)
            fh.write("\n")

    _atomic(path, write)
