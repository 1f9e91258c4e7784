"""The tandem discharge network in Ciw (https://ciw.readthedocs.io), a queueing-network library
built on its own event loop. A speed comparison point for flowsim.

Nodes 2 (reablement) and 3 (care home) have queue capacity 0, so a patient who needs a place and
finds none stays with its acute server: Ciw's Type I blocking ("blocking after service"), which
releases blocked customers in the order they became blocked, i.e. first come, first served. That
is exactly "keeps the acute bed until a place is free". All statistics come from Ciw's data
records (``time_blocked = exit_date - service_end_date``) plus the patients still at node 1.

Run: ``python -m benchmarks.tandem_ciw`` from the repository root.
"""

from __future__ import annotations

import time

import ciw

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


def _network(scale: float) -> ciw.Network:
    """Acute (node 1) routes to reablement (2) or a care home (3); both have no queue."""
    mu, sigma = lognormal_mu_sigma()
    return ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=RATE * scale), None, None],
        service_distributions=[
            ciw.dists.Lognormal(mean=mu, sd=sigma),  # parameters of the underlying normal
            ciw.dists.Exponential(rate=1.0 / REABLEMENT_MEAN),
            ciw.dists.Exponential(rate=1.0 / CARE_HOME_MEAN),
        ],
        routing=[[0.0, P_REABLEMENT, P_CARE_HOME], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        number_of_servers=[
            int(round(c * scale)) for c in (ACUTE_BEDS, REABLEMENT_PLACES, CARE_HOME_BEDS)
        ],
        queue_capacities=[float("inf"), 0, 0],
    )


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
        Passed to ``ciw.seed``, which seeds Ciw's only streams: the global ``random`` module
        (every draw here) and ``ciw.rng``. Ciw has no per-simulation generator, so concurrent
        replications in one process would share a stream.
    scale : float
        Multiplies the arrival rate and all three capacities (rounded to int).
    warmup_days, measured_days : float
        Statistics are kept over ``[warmup_days, warmup_days + measured_days)``.

    Returns
    -------
    dict
        Mean delay for a downstream place (all, reablement, care home; time blocked in acute,
        zero waits included, over patients whose acute exit falls in the window), time-average
        delayed and occupied acute beds over the window (overlaps of each patient's time in an
        acute bed, from service start, with the window, as in the other implementations: a
        patient waiting for a bed is not in one; patients still in a bed at the end count up to
        the end), ``patients``
        (arrivals in the whole run) and ``events`` (arrivals plus service ends, including acute
        service ends of patients still blocked at the end: the iterations of Ciw's event loop).
    """
    start, end = warmup_days, warmup_days + measured_days
    ciw.seed(seed)
    sim = ciw.Simulation(_network(scale))
    sim.simulate_until_max_time(end)

    def overlap(lo: float, hi: float) -> float:
        return max(0.0, min(hi, end) - max(lo, start))

    delays: dict[int, list[float]] = {2: [], 3: []}
    occupied = delayed = 0.0
    service_ends = 0
    for rec in sim.get_all_records(only=["service"]):
        service_ends += 1
        if rec.node != 1:
            continue
        occupied += overlap(rec.service_start_date, rec.exit_date)  # in the bed, not boarding
        if rec.destination in delays:
            delayed += overlap(rec.service_end_date, rec.exit_date)
            if start <= rec.exit_date < end:
                delays[rec.destination].append(rec.time_blocked)
    for ind in sim.nodes[1].all_individuals:  # still in acute at the end: no record yet
        if ind.server is False:  # still waiting for a bed (boarding)
            continue
        occupied += overlap(ind.service_start_date, end)
        if ind.is_blocked:
            service_ends += 1
            delayed += overlap(ind.service_end_date, end)
    return {
        "mean_delay_days": _mean(delays[2] + delays[3]),
        "mean_delay_reablement_days": _mean(delays[2]),
        "mean_delay_care_home_days": _mean(delays[3]),
        "delayed_beds_mean": delayed / measured_days,
        "acute_occupancy_mean": occupied / measured_days,
        "patients": sim.nodes[0].number_of_individuals,
        "events": sim.nodes[0].number_of_individuals + service_ends,
    }


if __name__ == "__main__":
    t0 = time.perf_counter()
    result = run(0)
    seconds = time.perf_counter() - t0
    print(f"Ciw {ciw.__version__}, one replication: {seconds:.2f} s")
    reference = exact()
    for key, value in result.items():
        print(f"{key:28s} {value:12.3f} {reference.get(key, float('nan')):10.3f}")
