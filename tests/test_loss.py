"""Loss and overflow services (``when_full``) against Erlang B (DESIGN.md section 8, "analytic
queues": Erlang B blocking).

A service with ``when_full: lost``, fed by a Poisson stream of community referrals, with c places
and stays of mean 1/mu, is Erlang's loss system M/G/c/c: an arrival that finds every place taken
leaves. The share of arrivals lost is B(c, a) with a = lambda / mu, whatever the distribution of
the stay (Erlang B is insensitive: it depends on the stay through its mean only). With
``when_full: <other service>`` the arrivals that find the first service full go to the second
(sequential hunting); with exponential stays of the same mean in both, the total number of busy
places is the birth-death process of M/M/C/C with C = c1 + c2, so the first service overflows a
share B(c1, a) of arrivals and the pair loses B(c1 + c2, a).

Erlang B is computed here by its recursion (``test_queues.erlang_b``, itself checked against the
direct sum there). Each check is a replication mean against the formula, within 4 replication
standard errors (SE): replications are independent, so their spread is the honest measure of the
simulation's noise; with 10 replications P(|t_9| > 4) ~ 0.3%, so a correct model rarely fails,
and the SE must also be small enough that the band is at most 10% of the value, or the check
would have no power. Both engines are run on the same replications: their events must be
identical (``test_compiled.py``), so the statistics are computed once, from the SimPy engine, and
the compiled engine's must equal them exactly. A last, exact test follows people turned away from
acute: the lost never come back; those sent home are readmitted like anyone going home.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from test_queues import erlang_b

from flowsim import compiled, config, model, results
from flowsim.patients import LOST
from flowsim.plan import plan
from flowsim.streams import Streams

SEED = 20261
RATE, MEAN, PLACES = 4.0, 2.0, 10  # a = 8 Erlangs on 10 places: B(10, 8) ~ 0.12
WARMUP, WINDOW, REPS = 20.0, 3000.0, 10  # the warm-up is 10 mean stays from empty
REL_TOL, K_SE = 0.10, 4.0


def loss_system(stay: dict, places: int = PLACES, overflow: int = 0) -> config.Config:
    """Poisson referrals (``RATE`` a day) -> ``first`` (``places``, ``when_full: lost``; or, with
    ``overflow`` places, ``when_full: second``, which loses) -> home. An acute service must exist
    but no one is admitted."""
    wait = {"reason": "E", "responsible": "social_care"}
    services = {
        "acute": {"capacity": 1, "stay": {"dist": "exponential", "mean": 1.0}},
        "first": {"role": "other", "capacity": places, "stay": stay, "next": {"home": 1.0},
                  "wait": wait, "when_full": "second" if overflow else "lost"},
    }  # fmt: skip
    if overflow:
        services["second"] = {"role": "other", "capacity": overflow, "stay": stay,
                              "next": {"home": 1.0}, "wait": wait, "when_full": "lost"}  # fmt: skip
    raw = {
        "system": {
            "name": "loss",
            "groups": ["all"],
            "arrivals": {"referrals": {"to": "first", "rate_per_day": RATE,
                                       "group_shares": {"all": 1.0}}},
            "services": services,
            "discharge": {
                "pathways": {"P0": {"to": "home", "process": {"dist": "fixed", "value": 0},
                                    "process_wait": {"reason": "G", "responsible": "nhs"}}},
                "pathway_shares_by_group": {"all": {"P0": 1.0}},
            },
            "deconditioning": {"enabled": False},
        },
        "run": {"horizon_days": WARMUP + WINDOW, "warmup_days": WARMUP, "progress": False},
    }  # fmt: skip
    return config.validate(raw)


@cache
def runs(stay: tuple, places: int = PLACES, overflow: int = 0) -> list[dict]:
    """Per replication: arrivals in the window, entries to each service, turn-aways from each
    (lost or sent on), from both engines' events and from the KPIs."""
    cfg = loss_system(dict(stay), places, overflow)
    H = cfg.run.horizon_days
    out = []
    for r in range(REPS):
        ev = model.simulate(cfg.system, SEED, r, H)
        twin = compiled.simulate(cfg.system, SEED, r, H)
        for f in ev.turned:
            assert np.array_equal(ev.turned[f], twin.turned[f]), f
        for f in ev.visits:
            assert np.array_equal(ev.visits[f], twin.visits[f], equal_nan=True), f
        assert len(ev.waits["start"]) == 0  # no one ever waits: there is no line
        v, t = ev.visits, ev.turned
        arrived = plan(cfg.system, Streams(SEED, r), H).arrivals.times
        lay = ev.layout
        flows = results.flows(ev, cfg).set_index(["source", "target"])["patients"]
        row = {"arrivals": int(np.sum(arrived >= WARMUP)), "kpis": results.kpis(ev, cfg),
               "flows": flows.to_dict()}  # fmt: skip
        for s in ("first", "second"):
            if s in lay.services:
                code = lay.services.index(s)
                row[f"entered_{s}"] = int(np.sum((v["service"] == code) & (v["enter"] >= WARMUP)))
                mine = (t["service"] == code) & (t["time"] >= WARMUP)
                row[f"turned_{s}"] = int(np.sum(mine))
                row[f"lost_{s}"] = int(np.sum(mine & (t["to"] == LOST)))
        out.append(row)
    return out


def check(estimates: list[float], expected: float, what: str) -> tuple[float, float]:
    """Replication mean within K_SE replication SEs of ``expected`` (see the module docstring)."""
    x = np.array(estimates)
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    assert K_SE * se <= REL_TOL * expected, f"{what}: run too short (SE {se:.4g})"
    assert abs(mean - expected) <= K_SE * se, (
        f"{what}: simulated {mean:.4f} vs Erlang B {expected:.4f} (SE {se:.4g})"
    )
    return mean, se


EXPONENTIAL = (("dist", "exponential"), ("mean", MEAN))
STAYS = {
    "exponential": EXPONENTIAL,
    "lognormal": (("dist", "lognormal"), ("mean", MEAN), ("sd", 3.0)),  # CV 1.5
    "fixed": (("dist", "fixed"), ("value", MEAN)),  # CV 0
}


@pytest.mark.parametrize("name", sorted(STAYS))
def test_share_lost_is_erlang_b_whatever_the_stay(name):
    """M/M/10/10 and, by insensitivity, M/G/10/10 with lognormal (CV 1.5) and fixed stays of the
    same mean: the share of arrivals in the window that are lost is B(10, 8) ~ 0.122. Every
    arrival is either admitted at once or lost (conservation), and the KPI counts the lost."""
    expected = erlang_b(PLACES, RATE * MEAN)
    shares = []
    for row in runs(STAYS[name]):
        assert row["entered_first"] + row["lost_first"] == row["arrivals"]
        assert row["turned_first"] == row["lost_first"] == row["kpis"]["lost_first"]
        shares.append(row["lost_first"] / row["arrivals"])
    check(shares, expected, f"share lost, {name} stays")


def test_overflow_to_a_second_service():
    """``first`` (5 places) overflows to ``second`` (5 places), which loses: ``first`` turns away a
    share B(5, 8) ~ 0.48 of arrivals, all of whom appear in ``second`` (admitted, or lost
    there); the pair loses B(10, 8) ~ 0.12, as one service of 10 places would."""
    b1, b12 = erlang_b(5, RATE * MEAN), erlang_b(10, RATE * MEAN)
    sent, lost = [], []
    for row in runs(EXPONENTIAL, places=5, overflow=5):
        assert row["entered_first"] + row["turned_first"] == row["arrivals"]
        assert row["lost_first"] == 0  # first never loses anyone: it sends them on
        assert row["turned_first"] == row["entered_second"] + row["lost_second"]
        assert row["turned_second"] == row["lost_second"]
        k = row["kpis"]
        assert k["overflow_first"] == row["turned_first"] and k["lost_second"] == row["lost_second"]
        assert "lost_first" not in k and "overflow_second" not in k
        # in the flow diagram, each referral goes where it ended up
        f = row["flows"]
        assert f[("community_referral", "first")] == row["entered_first"]
        assert f[("community_referral", "second")] == row["entered_second"]
        assert f[("community_referral", "lost")] == row["lost_second"]
        sent.append(row["turned_first"] / row["arrivals"])
        lost.append(row["lost_second"] / row["arrivals"])
    check(sent, b1, "share sent on by the first service")
    check(lost, b12, "share lost by the pair")


def test_lost_people_never_come_back_and_those_sent_home_may():
    """From acute: reablement (too few places) loses whoever finds it full, care homes send them
    home. With every discharge readmitted within 30 days (probability 1), each person sent home
    by the care homes' rule in time is readmitted; no one lost ever is (they left the model)."""
    from test_compiled import config, loss_tandem

    raw = loss_tandem()
    raw["services"]["care_home"].update(capacity=150, when_full="home")  # full from ~day 35
    for pw in raw["discharge"]["pathways"].values():
        pw["readmission_30d_probability"] = 1.0
    cfg = config(raw, 150.0, 30.0)
    H = cfg.run.horizon_days
    ev = model.simulate(cfg.system, SEED, 0, H)
    v, t, lay = ev.visits, ev.turned, ev.layout
    acute, w = v["service"] == 0, ev.waits
    door = w["place"] == model.FRONT_DOOR  # an admission still boarding has no stay yet
    last_entry = {}  # each person's last arrival at hospital
    for person, enter in zip(np.r_[v["person"][acute], w["person"][door]].tolist(),
                             np.r_[v["enter"][acute], w["start"][door]].tolist()):  # fmt: skip
        last_entry[person] = max(enter, last_entry.get(person, enter))
    lost = np.flatnonzero(acute & (v["outcome"] == LOST))
    assert lost.size > 50
    assert all(last_entry[v["person"][j]] < v["leave"][j] for j in lost)
    care_home = lay.services.index("care_home")
    assert np.all(t["to"][t["service"] == care_home] == -1)  # HOME
    home = np.flatnonzero((t["service"] == care_home) & (t["place"] == 0) & (t["time"] < H - 30))
    assert home.size > 50
    assert all(last_entry[t["person"][j]] > t["time"][j] for j in home)
