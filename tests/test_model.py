"""The default system's event log obeys the model's invariants (DESIGN.md section 8).

Conservation (stays chain consistently, no one is in two places at once, occupancy stays within 0
and the capacity in force, every person is counted exactly once), Little's law on the event log,
monotone responses under common random numbers (CRN), CRN themselves, and the deconditioning switch.

Runs use the default system with a 200-day horizon and a 60-day warm-up (fast; the invariants hold
at any horizon). Simulations are cached per (variant, replication) and shared between tests.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import yaml

from flowsim import config, model, patients, results
from flowsim.patients import DEATH, HOME, Layout
from flowsim.streams import Streams

ROOT = Path(__file__).resolve().parent.parent
H, W = 200.0, 60.0
SEED = 4242
REPS = 4
SCHEDULE = [(0.0, 200), (50.0, 260)]  # reablement: an increase only


def default_raw() -> dict:
    with open(ROOT / "configs" / "system" / "default.yaml") as fh:
        return yaml.safe_load(fh)


def variant_raw(variant: str) -> dict:
    raw = default_raw()
    s = raw["services"]
    if variant == "base":
        pass
    elif variant == "reablement+40":
        s["reablement"]["capacity"] += 40
    elif variant == "reablement+20":
        s["reablement"]["capacity"] += 20
    elif variant == "arrivals_x1.1":
        raw["arrivals"]["emergency"]["rate_per_day"] *= 1.1
    elif variant == "schedule":
        s["reablement"]["capacity"] = [{"from_day": d, "capacity": c} for d, c in SCHEDULE]
    elif variant == "decon_off":
        raw["deconditioning"] = {"enabled": False}
    elif variant == "decon_high":
        raw["deconditioning"] = {"enabled": True, "probability_per_day": 0.5}
    else:
        raise KeyError(variant)
    return raw


@cache
def cfg(variant: str) -> config.Config:
    return config.validate(
        {"system": variant_raw(variant), "run": {"horizon_days": H, "warmup_days": W, "seed": SEED}}
    )


@cache
def run(variant: str, rep: int = 0) -> model.Events:
    return model.simulate(cfg(variant).system, SEED, rep, H)


# -- helpers ----------------------------------------------------------------------------------


def sweep(enter: np.ndarray, leave: np.ndarray, horizon: float):
    """Occupancy as a step function: sorted event times and the count just after each event. An
    open stay ends at the horizon; at equal times departures come first (a hand-over)."""
    leave = np.where(np.isnan(leave), horizon, leave)
    times = np.concatenate([enter, leave])
    steps = np.concatenate([np.ones(enter.size), -np.ones(leave.size)])
    order = np.lexsort((steps, times))
    return times[order], np.cumsum(steps[order]), steps[order]


def sweep_integral(enter: np.ndarray, leave: np.ndarray, horizon: float) -> float:
    """Integral over [0, horizon] of the occupancy, from the +1/-1 sweep."""
    t, n, _ = sweep(enter, leave, horizon)
    return float(np.sum(n[:-1] * np.diff(t)) + n[-1] * (horizon - t[-1])) if t.size else 0.0


def front_door_arrivals(ev: model.Events) -> tuple[np.ndarray, np.ndarray]:
    """(arrival time, episode) of every first episode from an arrival stream into the front door,
    sorted by time: the start of its front-door wait, or its bed entry if it got one at once."""
    v, w = ev.visits, ev.waits
    new = lambda ep, person: (ep >= ev.n_initial) & (ep == person)  # noqa: E731
    fd = (w["place"] == model.FRONT_DOOR) & new(w["episode"], w["person"])
    acute = (v["service"] == 0) & new(v["episode"], v["person"])
    direct = acute & ~np.isin(v["episode"], w["episode"][fd])
    t = np.concatenate([w["start"][fd], v["enter"][direct]])
    ep = np.concatenate([w["episode"][fd], v["episode"][direct]])
    order = np.argsort(t, kind="stable")
    return t[order], ep[order]


def cohorts(variant: str, rep: int = 0):
    system = cfg(variant).system
    return dict(patients.arrivals(system, Layout.of(system), Streams(SEED, rep), H))


def front_door_cohort(variant: str, rep: int = 0):
    """Drawn attributes of every front-door arrival, concatenated across streams, sorted by time."""
    system = cfg(variant).system
    parts = [
        c for name, c in cohorts(variant, rep).items() if system.arrivals[name].to == "front_door"
    ]
    time = np.concatenate([c.time for c in parts])
    order = np.argsort(time, kind="stable")
    pick = lambda f: np.concatenate([f(c) for c in parts])[order]  # noqa: E731
    return {
        "time": time[order],
        "group": pick(lambda c: c.group),
        "pathway": pick(lambda c: c.pathway),
        "treatment": pick(lambda c: c.treatment),
    }


def acute_visit_of(ev: model.Events, episodes: np.ndarray) -> np.ndarray:
    """Row of the acute visit of each episode (-1 if it has none yet)."""
    v = ev.visits
    rows = np.flatnonzero(v["service"] == 0)
    index = dict(zip(v["episode"][rows].tolist(), rows.tolist()))
    return np.array([index.get(e, -1) for e in episodes.tolist()], dtype=np.int64)


def capacity_at(steps: list[tuple[float, int]], t: np.ndarray) -> np.ndarray:
    days = np.array([d for d, _ in steps])
    caps = np.array([c for _, c in steps])
    return caps[np.searchsorted(days, t, side="right") - 1]


# -- conservation -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["base", "schedule"])
def test_visits_chain_consistently(variant):
    """enter <= ready <= leave on every stay; a person is in one service at a time (assessment
    visits excepted: they happen while holding a bed, and lie inside such a stay); hand-overs are
    instantaneous (leave of one == enter of the next at most)."""
    ev = run(variant)
    v = ev.visits
    enter, ready, leave = v["enter"], v["ready"], v["leave"]
    closed = ~np.isnan(leave)
    assert closed.sum() > 0.5 * enter.size
    assert np.all(ready[closed] >= enter[closed])
    assert np.all(leave[closed] >= ready[closed])
    has_ready = ~np.isnan(ready)
    assert np.all(ready[has_ready] >= enter[has_ready])
    assert np.all(~np.isnan(ready[closed])), "a closed stay must have a ready time"
    assert np.all((enter >= 0) & (enter < H)) and np.all(leave[closed] < H)
    assert np.all((v["outcome"] == model.OPEN) == ~closed)

    assessment = ev.layout.services.index("assessment")
    bed = v["service"] != assessment
    end = np.where(closed, leave, np.inf)
    idx = np.flatnonzero(bed)
    idx = idx[np.lexsort((end[idx], enter[idx], v["person"][idx]))]
    same = v["person"][idx][1:] == v["person"][idx][:-1]
    gaps = enter[idx][1:] - end[idx][:-1]
    assert same.sum() > 1000  # many people move between settings
    assert np.all(gaps[same] >= 0), "a person holds two places at once"

    # each assessment lies inside a bed stay of the same person
    held = {}
    for j in idx.tolist():
        held.setdefault(int(v["person"][j]), []).append((enter[j], end[j]))
    a_idx = np.flatnonzero(~bed)
    assert a_idx.size > 100
    for j in a_idx.tolist():
        a_end = end[j] if closed[j] else H
        assert any(s <= enter[j] and a_end <= e for s, e in held[int(v["person"][j])]), j


@pytest.mark.parametrize("variant", ["base", "schedule"])
def test_occupancy_within_zero_and_capacity_in_force(variant):
    """Occupancy rebuilt from the visits never goes below 0 or above the capacity in force."""
    ev = run(variant)
    v = ev.visits
    reab = ev.layout.services.index("reablement")
    if variant == "schedule":
        assert ev.capacity_steps[reab] == SCHEDULE
    for code, name in enumerate(ev.layout.services):
        m = v["service"] == code
        t, n, step = sweep(v["enter"][m], v["leave"][m], H)
        assert n.min() >= 0, name
        cap = capacity_at(ev.capacity_steps[code], t)
        over = (step > 0) & (n > cap)
        assert not over.any(), f"{name}: {n[over][0]:.0f} in {cap[over][0]} places at {t[over][0]}"
    if variant == "schedule":  # the schedule binds: full at 200, then uses the extra places
        m = v["service"] == reab
        t, n, _ = sweep(v["enter"][m], v["leave"][m], H)
        assert n[t < SCHEDULE[1][0]].max() == SCHEDULE[0][1]
        assert n[t >= SCHEDULE[1][0]].max() > SCHEDULE[0][1]


def people_accounting(ev: model.Events, variant: str) -> dict[str, int]:
    """Counts for the balance: entered = left + still in the system."""
    v, w = ev.visits, ev.waits
    assessment = ev.layout.services.index("assessment")
    stays = v["service"] != assessment
    open_stay = stays & np.isnan(v["leave"])
    open_wait = np.isnan(w["end"]) & np.isin(w["place"], (model.FRONT_DOOR, model.COMMUNITY))
    # every person in the system at the end is in exactly one place
    holders = np.concatenate([v["person"][open_stay], w["person"][open_wait]])
    assert np.unique(holders).size == holders.size, "a person is in two places at the horizon"
    first_eps = np.union1d(
        v["episode"][v["episode"] == v["person"]], w["episode"][w["episode"] == w["person"]]
    )
    readmission_eps = np.union1d(
        v["episode"][v["episode"] != v["person"]], w["episode"][w["episode"] != w["person"]]
    )
    left = stays & np.isin(v["outcome"], (HOME, DEATH))
    return {
        "initial": ev.n_initial,
        "from_streams": int(np.sum(first_eps >= ev.n_initial)),
        "drawn_arrivals": sum(len(c) for c in cohorts(variant).values()),
        "first_episodes": int(first_eps.size),
        "readmissions": int(readmission_eps.size),
        "readmitted_from_a_stay": int(np.sum(stays & (v["outcome"] == model.READMIT))),
        "exits": int(left.sum()),
        "in_system": int(holders.size),
    }


@pytest.mark.parametrize("variant", ["base", "schedule"])
def test_every_patient_counted_exactly_once(variant):
    """People entering (at the start, or from an arrival stream) = people who left (home or death)
    + people still in a service or waiting at the front door / at home at the horizon.

    Readmissions move a person, they do not add one: a readmission straight from a stay (outcome
    READMIT) is internal; one after going home re-enters someone who had been counted as left. So:
    initial + arrivals + (readmissions - readmitted from a stay) = exits + in system.
    """
    ev = run(variant)
    c = people_accounting(ev, variant)
    # arrivals in the log = arrivals drawn from the streams (none lost, none invented)
    assert c["from_streams"] == c["drawn_arrivals"]
    assert c["first_episodes"] == c["initial"] + c["from_streams"]
    assert c["readmissions"] > 0 and c["exits"] > 0
    entered = c["initial"] + c["from_streams"] + c["readmissions"] - c["readmitted_from_a_stay"]
    assert entered == c["exits"] + c["in_system"], c
    # a person leaves at most once per time they came in
    v = ev.visits
    per_person_exits = np.bincount(
        v["person"][
            np.isin(v["outcome"], (HOME, DEATH))
            & (v["service"] != ev.layout.services.index("assessment"))
        ]
    )
    per_person_episodes = np.bincount(v["person"], minlength=per_person_exits.size)
    assert np.all(
        per_person_exits[: per_person_episodes.size]
        <= np.maximum(per_person_episodes[: per_person_exits.size], 1)
    )


def test_in_system_end_kpi_counts_people_once():
    """The contract KPI in_system_end ("people in a service or waiting for one at the horizon")
    equals the people still in the system found by the accounting above."""
    ev = run("base")
    c = people_accounting(ev, "base")
    assert results.kpis(ev, cfg("base"))["in_system_end"] == c["in_system"]


# -- Little's law on the event log ------------------------------------------------------------


def test_littles_law_on_the_event_log():
    """For each service and each waiting place: the time-integral of occupancy over [0, H] from a
    +1/-1 sweep equals the sum of (min(leave, H) - enter), to 1e-6 relative (floating point
    only: the identity is exact). The KPIs built on window integrals agree with a brute force."""
    ev = run("base")
    v, w = ev.visits, ev.waits
    for code, name in enumerate(ev.layout.services):
        m = v["service"] == code
        direct = float(np.sum(np.where(np.isnan(v["leave"][m]), H, v["leave"][m]) - v["enter"][m]))
        assert direct > 0, name
        assert sweep_integral(v["enter"][m], v["leave"][m], H) == pytest.approx(direct, rel=1e-6)
    for place in np.unique(w["place"]).tolist():
        m = w["place"] == place
        direct = float(np.sum(np.where(np.isnan(w["end"][m]), H, w["end"][m]) - w["start"][m]))
        assert sweep_integral(w["start"][m], w["end"][m], H) == pytest.approx(direct, rel=1e-6)

    k = results.kpis(ev, cfg("base"))
    acute = v["service"] == 0
    a_leave = np.where(np.isnan(v["leave"][acute]), H, v["leave"][acute])
    brute = lambda s, e, a, b: float(np.sum(np.clip(np.minimum(e, b) - np.maximum(s, a), 0, None)))  # noqa: E731
    assert k["acute_occupancy_mean"] == pytest.approx(
        brute(v["enter"][acute], a_leave, W, H) / (H - W), rel=1e-9
    )
    in_acute = w["place"] == 0
    w_end = np.where(np.isnan(w["end"]), H, w["end"])
    assert k["delayed_bed_days"] == pytest.approx(
        brute(w["start"][in_acute], w_end[in_acute], W, H), rel=1e-9
    )

    # the daily series (summed a checkpoint segment at a time) against the same brute force
    day = results.daily(ev, cfg("base"))
    acute_days = day[day["service"] == "acute"].set_index("day")
    rng = np.random.default_rng(0)  # the test's own randomness: which days to check
    for d in rng.choice(int(H), 12, replace=False).tolist():
        assert acute_days.loc[d, "occupancy_mean"] == pytest.approx(
            brute(v["enter"][acute], a_leave, d, d + 1), rel=1e-9, abs=1e-9
        )
        assert acute_days.loc[d, "delayed_mean"] == pytest.approx(
            brute(w["start"][in_acute], w_end[in_acute], d, d + 1), rel=1e-9, abs=1e-9
        )


# -- monotone responses with common random numbers ----------------------------------------------


def paired(kpi: str, variant: str) -> np.ndarray:
    """Paired differences (variant - base) of a KPI over the same replications (same seeds)."""
    return np.array(
        [
            results.kpis(run(variant, r), cfg(variant))[kpi]
            - results.kpis(run("base", r), cfg("base"))[kpi]
            for r in range(REPS)
        ]
    )


def test_more_reablement_never_increases_delays():
    """+40 reablement places: mean paired change in delayed bed days <= 0, and a decrease in most
    replications (a pathwise decrease is not guaranteed in a blocking network; on average it is)."""
    d = paired("delayed_bed_days", "reablement+40")
    assert d.mean() <= 0, d
    assert np.sum(d < 0) > REPS / 2, d


def test_more_arrivals_never_decrease_acute_occupancy():
    """Emergency arrivals x1.1: mean acute occupancy rises on average and in most replications."""
    d = paired("acute_occupancy_mean", "arrivals_x1.1")
    assert d.mean() >= 0, d
    assert np.sum(d > 0) > REPS / 2, d


# -- common random numbers ----------------------------------------------------------------------


def test_capacity_change_keeps_each_patients_random_numbers():
    """With and without +20 reablement places, the same patients arrive at the same times with the
    same group and treatment stay (ready - enter), matching what the streams drew; community
    referrals arrive at the same times with the same stays. Keyed by arrival time, since episode
    numbers shift when readmissions interleave differently."""
    a, b = run("base"), run("reablement+20")
    drawn = front_door_cohort("base")
    assert front_door_cohort("reablement+20")["treatment"].tolist() == drawn["treatment"].tolist()
    ta, ea = front_door_arrivals(a)
    tb, eb = front_door_arrivals(b)
    assert ta.tolist() == tb.tolist()  # the same arrival process, bit for bit
    np.testing.assert_allclose(ta, drawn["time"], rtol=0, atol=1e-9)
    # compare the acute stays of those admitted by the horizon in both runs
    ra, rb = acute_visit_of(a, ea), acute_visit_of(b, eb)
    both = (
        (ra >= 0) & (rb >= 0) & ~np.isnan(a.visits["ready"][ra]) & ~np.isnan(b.visits["ready"][rb])
    )
    assert both.sum() > 0.9 * ta.size
    # the capacity change does change the flow (some discharges move), not the patients' draws
    differs = a.visits["leave"][ra[both]] != b.visits["leave"][rb[both]]
    assert differs.sum() > 10, "the capacity change should move some discharges"
    treat_a = (a.visits["ready"] - a.visits["enter"])[ra[both]]
    treat_b = (b.visits["ready"] - b.visits["enter"])[rb[both]]
    np.testing.assert_allclose(treat_a, treat_b, rtol=0, atol=1e-9)
    np.testing.assert_allclose(treat_a, drawn["treatment"][both], rtol=0, atol=1e-9)
    assert a.visits["group"][ra[both]].tolist() == drawn["group"][both].tolist()
    assert b.visits["group"][rb[both]].tolist() == drawn["group"][both].tolist()

    # community referrals: the start of the wait at home, or the entry if a place was free at once
    def referrals(ev):
        v, w = ev.visits, ev.waits
        assessment = ev.layout.services.index("assessment")
        admitted = np.union1d(
            v["episode"][v["service"] == 0], w["episode"][w["place"] == model.FRONT_DOOR]
        )
        first = (
            (v["episode"] >= ev.n_initial)
            & (v["episode"] == v["person"])
            & (v["service"] != assessment)
            & ~np.isin(v["episode"], admitted)
        )
        rows = np.flatnonzero(first)
        rows = rows[np.lexsort((v["enter"][rows], v["episode"][rows]))]
        rows = rows[np.unique(v["episode"][rows], return_index=True)[1]]  # first stay of each
        stay = dict(zip(v["episode"][rows].tolist(), (v["ready"] - v["enter"])[rows].tolist()))
        arrival = dict(zip(v["episode"][rows].tolist(), v["enter"][rows].tolist()))
        where = dict(zip(v["episode"][rows].tolist(), v["service"][rows].tolist()))
        cw = np.flatnonzero(w["place"] == model.COMMUNITY)
        arrival.update(zip(w["episode"][cw].tolist(), w["start"][cw].tolist()))
        where.update(zip(w["episode"][cw].tolist(), w["waits_for"][cw].tolist()))
        eps = sorted(arrival, key=arrival.get)
        return (
            np.array([arrival[e] for e in eps]),
            np.array([where[e] for e in eps]),
            np.array([stay.get(e, math.nan) for e in eps]),
        )

    (rt_a, sv_a, st_a), (rt_b, sv_b, st_b) = referrals(a), referrals(b)
    n_drawn = sum(
        len(c)
        for name, c in cohorts("base").items()
        if cfg("base").system.arrivals[name].to != "front_door"
    )
    assert rt_a.size == rt_b.size == n_drawn > 100
    assert rt_a.tolist() == rt_b.tolist() and sv_a.tolist() == sv_b.tolist()
    ok = ~np.isnan(st_a) & ~np.isnan(st_b)
    assert ok.sum() > 0.5 * n_drawn
    np.testing.assert_allclose(st_a[ok], st_b[ok], rtol=0, atol=1e-9)


# -- deconditioning -----------------------------------------------------------------------------


def drawn_vs_final_pathway(variant: str):
    ev = run(variant)
    drawn = front_door_cohort(variant)
    t, ep = front_door_arrivals(ev)
    np.testing.assert_allclose(t, drawn["time"], rtol=0, atol=1e-9)
    rows = acute_visit_of(ev, ep)
    has = rows >= 0
    return ev, drawn["pathway"][has], ev.visits["pathway"][rows[has]], rows[has]


def test_no_escalation_when_deconditioning_is_off():
    ev, drawn, final, _ = drawn_vs_final_pathway("decon_off")
    assert drawn.size > 10_000 and np.any(drawn == 1)
    assert np.array_equal(drawn, final)


def test_escalation_when_deconditioning_is_likely():
    """At 0.5 a day some delayed P1 patients end on P2 or P3 and are discharged there; need only
    ever escalates, P0 never changes, and only people who waited in their bed escalate."""
    ev, drawn, final, rows = drawn_vs_final_pathway("decon_high")
    v, w = ev.visits, ev.waits
    assert np.all(final >= drawn)
    assert np.all(final[drawn == 0] == 0)
    escalated = final > drawn
    assert np.sum(escalated & (drawn == 1)) > 0, "no P1 patient escalated at 0.5 a day"
    assert np.all(np.isin(final[escalated & (drawn == 1)], (2, 3)))
    waited = np.isin(v["episode"][rows], w["episode"][w["place"] == 0])
    assert np.all(waited[escalated])
    system = cfg("decon_high").system
    lay = ev.layout
    for k, p in enumerate(("P2", "P3"), start=2):
        done = escalated & (final == k) & (v["outcome"][rows] != model.OPEN)
        target = lay.code(system.discharge.pathways[p].to)
        assert np.all(v["outcome"][rows][done] == target), p
