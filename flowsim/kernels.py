"""Numba kernels for the draws NumPy cannot vectorise: thinning of non-stationary arrivals and
routing by patient group. Pure functions of the uniforms passed in; no SimPy, no random state.

Numba is imported lazily (it costs ~0.6 s) and kernels are cached on disk (``cache=True``), so a
worker process pays the compile cost once per machine, not once per replication.
"""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def _compiled():
    import numba

    @numba.njit(cache=True)
    def thin(candidate_times, accept_u, rates_by_day, rate_max):  # pragma: no cover - jitted
        out = np.empty(candidate_times.shape[0], dtype=np.float64)
        n = 0
        for i in range(candidate_times.shape[0]):
            t = candidate_times[i]
            day = int(t)
            if day >= rates_by_day.shape[0]:
                day = rates_by_day.shape[0] - 1
            if accept_u[i] * rate_max < rates_by_day[day]:
                out[n] = t
                n += 1
        return out[:n]

    @numba.njit(cache=True)
    def route(u, rows, cumulative):  # pragma: no cover - jitted
        out = np.empty(u.shape[0], dtype=np.int64)
        last = cumulative.shape[1] - 1
        for i in range(u.shape[0]):
            r = rows[i]
            j = 0
            while j < last and u[i] >= cumulative[r, j]:
                j += 1
            out[i] = j
        return out

    return thin, route


def arrival_times(rates_by_day: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """Arrival times (days, sorted) of a Poisson process whose rate is constant within each day.

    Thinning (Lewis and Shedler): candidates from a homogeneous process at the peak rate, each kept
    with probability ``rate(t) / peak``. The candidate count and times are drawn as blocks.
    """
    rates = np.ascontiguousarray(rates_by_day, dtype=np.float64)
    if rates.size == 0 or rates.max() <= 0:
        return np.empty(0)
    peak = float(rates.max())
    horizon = float(rates.size)
    n = gen.poisson(peak * horizon)
    candidates = np.sort(gen.random(n) * horizon)
    accept = gen.random(n)
    thin, _ = _compiled()
    return thin(candidates, accept, rates, peak)


def categorical(u: np.ndarray, rows: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """For each i, the category drawn by uniform ``u[i]`` from row ``rows[i]`` of ``probabilities``.

    ``probabilities`` is (rows x categories), each row summing to 1. Used for group, pathway and
    onward routing, by patient group.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("probabilities must be a 2-D table of rows summing to 1")
    cumulative = np.cumsum(p, axis=1)
    _, route = _compiled()
    return route(
        np.ascontiguousarray(u, dtype=np.float64),
        np.ascontiguousarray(rows, dtype=np.int64),
        cumulative,
    )
