"""The tandem discharge network as a hand-written event loop compiled with Numba: the practical
speed limit for this model (random numbers drawn up front with NumPy, a binary heap of events).

Run: ``python -m benchmarks.tandem_numba`` from the repository root.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from benchmarks.tandem_reference import (
    ACUTE_BEDS,
    CARE_HOME_BEDS,
    CARE_HOME_MEAN,
    MEASURED_DAYS,
    P_CARE_HOME,
    P_REABLEMENT,
    RATE,
    REABLEMENT_MEAN,
    REABLEMENT_PLACES,
    WARMUP_DAYS,
    exact,
    lognormal_mu_sigma,
)


@numba.njit(cache=True)
def _push(ht: np.ndarray, hid: np.ndarray, n: int, t: float, ident: int) -> int:
    """Add (t, ident) to the binary min-heap of size n; return the new size."""
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if ht[parent] <= t:
            break
        ht[i], hid[i] = ht[parent], hid[parent]
        i = parent
    ht[i], hid[i] = t, ident
    return n + 1


@numba.njit(cache=True)
def _pop(ht: np.ndarray, hid: np.ndarray, n: int) -> int:
    """Remove the root of the heap of size n (read it first); return the new size."""
    n -= 1
    t, ident = ht[n], hid[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and ht[child + 1] < ht[child]:
            child += 1
        if ht[child] >= t:
            break
        ht[i], hid[i] = ht[child], hid[child]
        i = child
    ht[i], hid[i] = t, ident
    return n


@numba.njit(cache=True)
def _kernel(
    arrive: np.ndarray,
    stay: np.ndarray,
    route: np.ndarray,
    down: np.ndarray,
    caps: np.ndarray,
    means: np.ndarray,
    p_r: float,
    p_c: float,
    warmup: float,
    end: float,
) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    """Event loop. Heap ids: 2*i is patient i's acute stay end, 2*i+1 its downstream stay end.
    Returns (delay sums [2], delay counts [2], acute area, delayed area, events)."""
    n = arrive.shape[0]
    size = caps[0] + caps[1] + caps[2] + 1
    ht, hid = np.empty(size), np.empty(size, dtype=np.int64)
    queue = np.empty((2, n), dtype=np.int64)  # FCFS lines of blocked patients (monotone head/tail)
    head, tail = np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64)
    ready = np.empty(n)  # time patient i became ready to leave acute
    busy = np.zeros(2, dtype=np.int64)
    dsum, dcount = np.zeros(2), np.zeros(2, dtype=np.int64)
    m = 0  # heap size
    arrived = admitted = occupied = delayed = events = 0
    last = area_occ = area_del = 0.0
    while True:
        next_arrival = arrive[arrived] if arrived < n else np.inf
        if m > 0 and ht[0] < next_arrival:
            t, ident = ht[0], hid[0]
            m = _pop(ht, hid, m)
        else:
            t, ident = next_arrival, -1
        lo, hi = max(last, warmup), min(t, end)
        if hi > lo:
            area_occ += occupied * (hi - lo)
            area_del += delayed * (hi - lo)
        if t >= end:  # the areas are closed at the end of the window
            break
        last = t
        events += 1
        free = 0  # acute beds freed by this event
        if ident < 0:  # arrival: joins the (FCFS, arrival-ordered) line for an acute bed
            arrived += 1
        else:
            i = ident >> 1
            s = 0 if route[i] < p_r else 1
            if ident & 1 == 0:  # acute stay ends
                if route[i] >= p_r + p_c:
                    free = 1
                elif busy[s] < caps[s + 1]:
                    busy[s] += 1
                    free = 1
                    if warmup <= t < end:
                        dcount[s] += 1
                    m = _push(ht, hid, m, t + down[i] * means[s], 2 * i + 1)
                else:
                    ready[i] = t
                    queue[s, tail[s]] = i
                    tail[s] += 1
                    delayed += 1
            else:  # downstream stay ends: the place goes to the head of the line, if any
                busy[s] -= 1
                if head[s] < tail[s]:
                    j = queue[s, head[s]]
                    head[s] += 1
                    busy[s] += 1
                    delayed -= 1
                    free = 1
                    if warmup <= t < end:
                        dsum[s] += t - ready[j]
                        dcount[s] += 1
                    m = _push(ht, hid, m, t + down[j] * means[s], 2 * j + 1)
        occupied -= free
        while admitted < arrived and occupied < caps[0]:
            occupied += 1
            m = _push(ht, hid, m, t + stay[admitted], 2 * admitted)
            admitted += 1
    return dsum, dcount, area_occ, area_del, events


def run(
    seed: int,
    scale: float = 1.0,
    warmup_days: float = WARMUP_DAYS,
    measured_days: float = MEASURED_DAYS,
) -> dict[str, float]:
    """Run one replication from empty at t=0 to ``warmup_days + measured_days``.

    Parameters
    ----------
    seed : int
        Seed of the ``numpy.random.Generator`` that draws every random number (in blocks).
    scale : float
        Multiplies the arrival rate and all three capacities (utilisation stays at 0.95).
    warmup_days, measured_days : float
        Statistics are kept over ``[warmup_days, warmup_days + measured_days)``.

    Returns
    -------
    dict
        Mean delay for a downstream place (all, reablement, care home; zero waits included, over
        patients who got their place in the window), time-average delayed and occupied acute
        beds, ``patients`` (arrivals in the whole run) and ``events`` (arrivals, acute stay ends
        and downstream stay ends processed).
    """
    rng = np.random.default_rng(seed)
    end = warmup_days + measured_days
    rate = RATE * scale
    block = int(rate * end + 10.0 * np.sqrt(rate * end)) + 16
    gaps = rng.exponential(1.0 / rate, block)
    while gaps.sum() < end:  # practically never: top up until the horizon is passed
        gaps = np.concatenate([gaps, rng.exponential(1.0 / rate, block)])
    arrive = np.cumsum(gaps)
    arrive = arrive[arrive < end]
    n = arrive.shape[0]
    mu, sigma = lognormal_mu_sigma()
    stay, route, down = rng.lognormal(mu, sigma, n), rng.random(n), rng.exponential(1.0, n)
    caps = np.array(
        [round(c * scale) for c in (ACUTE_BEDS, REABLEMENT_PLACES, CARE_HOME_BEDS)], dtype=np.int64
    )
    means = np.array([REABLEMENT_MEAN, CARE_HOME_MEAN])
    dsum, dcount, area_occ, area_del, events = _kernel(
        arrive, stay, route, down, caps, means, P_REABLEMENT, P_CARE_HOME, warmup_days, end
    )
    with np.errstate(invalid="ignore"):  # nan when nobody got a place in the window
        per_service = dsum / dcount
        overall = dsum.sum() / dcount.sum()
    return {
        "mean_delay_days": float(overall),
        "mean_delay_reablement_days": float(per_service[0]),
        "mean_delay_care_home_days": float(per_service[1]),
        "delayed_beds_mean": float(area_del / measured_days),
        "acute_occupancy_mean": float(area_occ / measured_days),
        "patients": n,
        "events": int(events),
    }


if __name__ == "__main__":
    start = time.perf_counter()
    run(0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    result = run(0)
    seconds = time.perf_counter() - start
    print(f"Numba loop: first call {first:.3f} s (compile or cache load), then {seconds:.4f} s")
    reference = exact()
    for key, value in result.items():
        print(f"{key:28s} {value:12.3f} {reference.get(key, float('nan')):10.3f}")
