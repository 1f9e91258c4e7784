"""The tandem discharge network in plain, idiomatic SimPy: one process per patient, one
``simpy.Resource`` per service, per-call draws from a NumPy Generator. A speed baseline.

Run: ``python -m benchmarks.tandem_simpy`` from the repository root.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

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


class TimeAverage:
    """Time-weighted average of a piecewise-constant count over the window [start, end)."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.value, self.last, self.area = 0, 0.0, 0.0

    def add(self, now: float, delta: int) -> None:
        """Accumulate the area up to ``now``, then change the count by ``delta``."""
        lo, hi = max(self.last, self.start), min(now, self.end)
        if hi > lo:
            self.area += self.value * (hi - lo)
        self.value += delta
        self.last = now

    def mean(self) -> float:
        """Close the window at its end and return the time average."""
        self.add(self.end, 0)
        return self.area / (self.end - self.start)


class Tandem:
    """The model: resources, random stream and statistics of one replication."""

    def __init__(self, seed: int, scale: float, warmup: float, end: float) -> None:
        self.env = simpy.Environment()
        self.rng = np.random.default_rng(seed)
        self.rate = RATE * scale
        self.acute = simpy.Resource(self.env, capacity=int(round(ACUTE_BEDS * scale)))
        self.services = {
            "reablement": (
                simpy.Resource(self.env, capacity=int(round(REABLEMENT_PLACES * scale))),
                REABLEMENT_MEAN,
            ),
            "care_home": (
                simpy.Resource(self.env, capacity=int(round(CARE_HOME_BEDS * scale))),
                CARE_HOME_MEAN,
            ),
        }
        self.mu, self.sigma = lognormal_mu_sigma()
        self.warmup, self.end = warmup, end
        self.delays: dict[str, list[float]] = {name: [] for name in self.services}
        self.occupied = TimeAverage(warmup, end)
        self.delayed = TimeAverage(warmup, end)
        self.patients = 0
        self.events = 0  # arrivals + acute stay ends + downstream stay ends

    def arrivals(self) -> Generator[simpy.Event, Any, None]:
        """Poisson arrivals: start one patient process per arrival."""
        while True:
            yield self.env.timeout(self.rng.exponential(1.0 / self.rate))
            self.patients += 1
            self.events += 1
            self.env.process(self.patient())

    def patient(self) -> Generator[simpy.Event, Any, None]:
        """Acute stay, then (maybe) wait in the acute bed for a downstream place, FCFS."""
        env = self.env
        bed = self.acute.request()
        yield bed
        self.occupied.add(env.now, +1)
        yield env.timeout(self.rng.lognormal(self.mu, self.sigma))
        self.events += 1
        u = self.rng.random()
        if u < P_REABLEMENT:
            name = "reablement"
        elif u < P_REABLEMENT + P_CARE_HOME:
            name = "care_home"
        else:
            self.occupied.add(env.now, -1)
            self.acute.release(bed)
            return
        resource, mean = self.services[name]
        ready = env.now
        self.delayed.add(env.now, +1)
        with resource.request() as place:
            yield place
            self.delayed.add(env.now, -1)
            self.occupied.add(env.now, -1)
            self.acute.release(bed)
            if self.warmup <= env.now < self.end:
                self.delays[name].append(env.now - ready)
            yield env.timeout(self.rng.exponential(mean))
            self.events += 1


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


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
        Seed of the ``numpy.random.Generator`` that draws every random number.
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
        and downstream stay ends processed; SimPy's own event count is several times larger).
    """
    end = warmup_days + measured_days
    model = Tandem(seed, scale, warmup_days, end)
    model.env.process(model.arrivals())
    model.env.run(until=end)
    reablement, care_home = model.delays["reablement"], model.delays["care_home"]
    return {
        "mean_delay_days": _mean(reablement + care_home),
        "mean_delay_reablement_days": _mean(reablement),
        "mean_delay_care_home_days": _mean(care_home),
        "delayed_beds_mean": model.delayed.mean(),
        "acute_occupancy_mean": model.occupied.mean(),
        "patients": model.patients,
        "events": model.events,
    }


if __name__ == "__main__":
    start = time.perf_counter()
    result = run(0)
    seconds = time.perf_counter() - start
    print(f"idiomatic SimPy, one replication: {seconds:.2f} s")
    reference = exact()
    for key, value in result.items():
        print(f"{key:28s} {value:12.3f} {reference.get(key, float('nan')):10.3f}")
