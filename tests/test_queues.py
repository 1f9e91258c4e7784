"""Analytic queues from degenerate systems (DESIGN.md section 8, "analytic queues").

Each system has one Poisson arrival stream into the front door, one acute service with exponential
stays, every patient on pathway P0 home with a zero-length discharge process, no deaths, no
readmissions and no deconditioning. The acute service is then an M/M/c queue fed by an unbounded
queue (the front door): M/M/inf when c is huge, Erlang C otherwise.

Erlang B (blocking) is checked directly in ``test_loss.py``, on services with ``when_full: lost``
(a loss node). Here, where a full service makes people wait (blocking after service, the
default), it is also checked through the M/M/c identity that links the two formulas,
``C = B / (1 - rho (1 - B))``, and through PASTA: the time-average probability that all c beds
are busy equals the probability that an arrival waits.

The Erlang formulas are written here from scratch (the Erlang B recursion, C from B) and checked
against the c = 1 closed forms before being used. Every statistical tolerance is stated with its
reason next to the assertion; replications give independent estimates, so their standard error
(SE) is the honest measure of the simulation's noise.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from flowsim import config, model

SEED = 20260


def mmc_system(capacity: int | str, rate_per_day: float, mean_stay_days: float) -> config.Config:
    """One Poisson stream -> front door -> acute (c beds, exponential stay) -> home."""
    raw = {
        "system": {
            "name": "mmc",
            "groups": ["all"],
            "arrivals": {
                "stream": {
                    "to": "front_door",
                    "rate_per_day": rate_per_day,
                    "day_of_week": [1.0] * 7,
                    "month": [1.0] * 12,
                    "group_shares": {"all": 1.0},
                }
            },
            "services": {
                "acute": {"capacity": capacity,
                          "stay": {"dist": "exponential", "mean": mean_stay_days}},
            },
            "discharge": {
                "pathways": {
                    "P0": {"to": "home", "process": {"dist": "fixed", "value": 0},
                           "process_wait": {"reason": "G", "responsible": "nhs"}},
                },
                "pathway_shares_by_group": {"all": {"P0": 1.0}},
            },
            "deconditioning": {"enabled": False},
        },
        "run": {"horizon_days": 100, "warmup_days": 10},
    }
    return config.validate(raw)


# -- the formulas, from scratch ---------------------------------------------------------------


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/M/c/c with offered load ``a = lambda / mu`` (stable recursion
    ``B(0) = 1``, ``B(k) = a B(k-1) / (k + a B(k-1))``)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c (needs ``a < c``): ``C = c B / (c - a (1 - B))``, which is
    ``B / (1 - rho (1 - B))`` with ``rho = a / c``."""
    assert a < c
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def erlang_c_mean_wait(c: int, lam: float, mu: float) -> float:
    """Mean wait in queue of M/M/c: ``Wq = C / (c mu - lambda)``."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def test_erlang_formulas_against_closed_forms():
    """The formulas used below must be right: c = 1 has closed forms (M/M/1/1 blocks with
    probability a / (1 + a); M/M/1 waits with probability rho and for rho / (mu - lambda) on
    average), and the Erlang B recursion must match the direct sum a^c/c! / sum_k a^k/k!."""
    for a in (0.3, 0.8):
        assert erlang_b(1, a) == pytest.approx(a / (1 + a), rel=1e-12)
        assert erlang_c(1, a) == pytest.approx(a, rel=1e-12)
        lam, mu = a * 2.0, 2.0
        assert erlang_c_mean_wait(1, lam, mu) == pytest.approx(a / (mu - lam), rel=1e-12)
    for c, a in ((5, 3.0), (10, 8.0), (30, 25.0)):
        terms = [a**k / math.factorial(k) for k in range(c + 1)]
        assert erlang_b(c, a) == pytest.approx(terms[-1] / sum(terms), rel=1e-12)
        # M/M/c waiting probability from the stationary distribution directly
        tail = terms[-1] * c / (c - a)
        assert erlang_c(c, a) == pytest.approx(tail / (sum(terms[:-1]) + tail), rel=1e-12)


# -- helpers on the event log -----------------------------------------------------------------


def sweep(enter: np.ndarray, leave: np.ndarray, horizon: float):
    """Occupancy as a step function: event times and the count just after each event (an open
    stay ends at the horizon; at equal times departures come first)."""
    leave = np.where(np.isnan(leave), horizon, leave)
    times = np.concatenate([enter, leave])
    steps = np.concatenate([np.ones(enter.size), -np.ones(leave.size)])
    order = np.lexsort((steps, times))  # by time, then -1 before +1
    return times[order], np.cumsum(steps[order])


def time_weighted(times: np.ndarray, counts: np.ndarray, a: float, b: float, f) -> float:
    """Integral over [a, b] of f(count(t)) dt, for the step function from ``sweep`` (count is 0
    before the first event)."""
    edges = np.clip(np.concatenate([times, [b]]), a, b)
    widths = np.diff(edges)  # width of the interval after each event, clipped to [a, b]
    return float(np.sum(f(counts) * widths) + f(np.zeros(1))[0] * (edges[0] - a))


def arrival_times(ev: model.Events) -> np.ndarray:
    """Arrival time of each acute episode: the start of its front-door wait, or its bed entry if
    it got a bed at once. Includes people still boarding at the horizon (no acute visit yet)."""
    v, w = ev.visits, ev.waits
    fd = w["place"] == model.FRONT_DOOR
    acute = v["service"] == 0
    not_queued = acute & ~np.isin(v["episode"], w["episode"][fd])
    return np.concatenate([w["start"][fd], v["enter"][not_queued]])


# -- M/M/inf ----------------------------------------------------------------------------------

INF_CAPACITY, INF_RATE, INF_MEAN = "unlimited", 20.0, 5.0  # capacity: unlimited
INF_WARMUP, INF_WINDOW, INF_REPS = 50.0, 1000.0, 6


def test_mm_inf_mean_occupancy():
    """M/M/inf: the time-average number of occupied beds is lambda / mu (= lambda x mean stay).

    From empty, E[N(t)] = (lambda/mu)(1 - exp(-mu t)): after a 50-day warm-up (10 mean stays) the
    bias is (lambda/mu) e^-10, about 5e-3 beds, negligible against the tolerance below.
    """
    cfg = mmc_system(INF_CAPACITY, INF_RATE, INF_MEAN)
    expected = INF_RATE * INF_MEAN  # lambda / mu
    H = INF_WARMUP + INF_WINDOW
    means = []
    for r in range(INF_REPS):
        ev = model.simulate(cfg.system, SEED, r, H)
        acute = ev.visits["service"] == 0
        assert not np.any(ev.waits["place"] == model.FRONT_DOOR), "no one waits: no limit"
        t, n = sweep(ev.visits["enter"][acute], ev.visits["leave"][acute], H)
        means.append(time_weighted(t, n, INF_WARMUP, H, lambda x: x) / INF_WINDOW)
    means = np.array(means)
    se = means.std(ddof=1) / math.sqrt(INF_REPS)
    # Precision check: for M/M/inf the time average over T has variance ~ 2 (lambda/mu) / (mu T)
    # (N is Poisson(lambda/mu) with autocorrelation exp(-mu t)), i.e. an SE per replication of
    # ~1 bed here. The observed SE must be of that order, so the tolerance below is tight (~1.5%).
    theory_se = math.sqrt(2 * expected * INF_MEAN / INF_WINDOW) / math.sqrt(INF_REPS)
    assert se < 3 * theory_se, f"replications noisier than M/M/inf theory: SE {se:.3f}"
    # 4 replication SEs: with 6 replications the t-statistic has 5 degrees of freedom, and
    # P(|t_5| > 4) ~ 1%: a correct model fails rarely, a 2% bias in occupancy is caught.
    assert abs(means.mean() - expected) <= 4 * se, (
        f"mean occupancy {means.mean():.2f} vs lambda/mu = {expected:.2f} (SE {se:.3f})")


# -- M/M/c (Erlang C), fed by the unbounded front door -----------------------------------------

C_BEDS, C_RATE, C_MEAN = 10, 1.6, 5.0  # a = 8, rho = 0.8
C_WARMUP, C_WINDOW, C_TAIL, C_REPS = 200.0, 30_000.0, 100.0, 12
C_REL_TOL = 0.10


@cache
def erlang_runs() -> tuple[model.Events, ...]:
    cfg = mmc_system(C_BEDS, C_RATE, C_MEAN)
    H = C_WARMUP + C_WINDOW + C_TAIL
    return tuple(model.simulate(cfg.system, SEED, r, H) for r in range(C_REPS))


def check_within_se(estimates: np.ndarray, expected: float, what: str, k: float = 4.0) -> None:
    """Replication mean within ``k`` replication SEs of the analytic value.

    P(|t_11| > 4) ~ 0.2%: a correct model rarely fails. The SE must also be small enough that this
    tolerance is at most C_REL_TOL of the value, or the check would have no power.
    """
    mean = float(estimates.mean())
    se = float(estimates.std(ddof=1) / math.sqrt(estimates.size))
    assert k * se <= C_REL_TOL * expected, f"{what}: run too short (SE {se:.4g})"
    assert abs(mean - expected) <= k * se, (
        f"{what}: simulated {mean:.4f} vs analytic {expected:.4f} (SE {se:.4g})")


def check_relative(estimates: np.ndarray, expected: float, what: str) -> None:
    """Replication mean within C_REL_TOL (10%) of the analytic value, for the mean wait.

    The mean wait is the noisiest quantity here (waits are strongly autocorrelated at rho = 0.8:
    one replication of 30,000 days has a relative SD of ~10%), so the tolerance is a fixed 10%
    rather than 4 SEs. It is justified by requiring it to exceed 3 replication SEs (a correct model
    then fails with probability ~1%, t with 11 degrees of freedom), and it still catches the
    errors that matter: at rho = 0.8, Wq is very sensitive to the load (a 5% longer stay raises
    Wq by ~40%), to a bed lost or double-counted on hand-over, or to serving out of order.
    """
    mean = float(estimates.mean())
    se = float(estimates.std(ddof=1) / math.sqrt(estimates.size))
    tol = C_REL_TOL * expected
    assert 3 * se < tol, f"{what}: run too short for a {C_REL_TOL:.0%} check (SE {se:.4f})"
    assert abs(mean - expected) <= tol, (
        f"{what}: simulated {mean:.4f} vs Erlang C {expected:.4f} (SE {se:.4f}, tol {tol:.4f})")


def test_erlang_c_probability_of_wait_and_mean_wait():
    """c = 10 beds, lambda = 1.6 a day, mean stay 5 days (rho = 0.8): (a) the share of arrivals that
    board (have a front-door wait), (b) the mean boarding time per arrival, against Erlang C.

    Arrivals are counted in [warm-up, horizon - 100 days): every one of them has got a bed by the
    horizon (checked), so no wait is cut short. The 200-day warm-up is 40 mean stays.
    """
    lam, mu = C_RATE, 1.0 / C_MEAN
    p_wait, mean_wait = [], []
    for ev in erlang_runs():
        w = ev.waits
        fd = w["place"] == model.FRONT_DOOR
        arrivals = arrival_times(ev)
        counted = (arrivals >= C_WARMUP) & (arrivals < C_WARMUP + C_WINDOW)
        waited = fd & (w["start"] >= C_WARMUP) & (w["start"] < C_WARMUP + C_WINDOW)
        assert not np.any(np.isnan(w["end"][waited])), "a counted arrival never got a bed"
        n = int(counted.sum())
        assert n > 0.9 * lam * C_WINDOW  # sanity: the arrival stream ran at its rate
        p_wait.append(waited.sum() / n)
        mean_wait.append(float(np.sum(w["end"][waited] - w["start"][waited])) / n)
    check_within_se(np.array(p_wait), erlang_c(C_BEDS, lam / mu), "P(wait)")
    check_relative(np.array(mean_wait), erlang_c_mean_wait(C_BEDS, lam, mu), "mean wait (days)")


def test_all_beds_busy_time_fraction_matches_erlang_c():
    """With a line (no loss; see the module docstring) Erlang B is checked through M/M/c theory:
    the time-average probability that all c beds are busy is P(N >= c) = C(c, a), the Erlang C
    value built from the Erlang B recursion (and, by PASTA, the share of arrivals who wait). The
    time-average number of busy beds must be a = lambda / mu (Little's law on the beds)."""
    lam, mu = C_RATE, 1.0 / C_MEAN
    a = lam / mu
    H = C_WARMUP + C_WINDOW + C_TAIL
    busy_all, busy_mean = [], []
    for ev in erlang_runs():
        acute = ev.visits["service"] == 0
        t, n = sweep(ev.visits["enter"][acute], ev.visits["leave"][acute], H)
        assert n.max() == C_BEDS and n.min() >= 0
        busy_all.append(time_weighted(t, n, C_WARMUP, C_WARMUP + C_WINDOW,
                                      lambda x: (x == C_BEDS).astype(float)) / C_WINDOW)
        busy_mean.append(time_weighted(t, n, C_WARMUP, C_WARMUP + C_WINDOW, lambda x: x)
                         / C_WINDOW)
    check_within_se(np.array(busy_all), erlang_c(C_BEDS, a), "P(all beds busy), time average")
    check_within_se(np.array(busy_mean), a, "mean busy beds")
