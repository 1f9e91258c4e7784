"""Replications, in parallel worker processes, with a progress bar; failures kept as records.

Replication ``r`` of every scenario uses the same random streams (seed, r): common random numbers.
Workers are kept alive across replications (joblib's loky pool), so each pays Numba's start-up once.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field

import pandas as pd

from flowsim import model, patients, results
from flowsim.config import Config, ConfigError

log = logging.getLogger(__name__)

MAX_ARRIVALS = 50_000_000
"""Patients one command may simulate (arrivals over every replication and arm) before it asks
for ``run.allow_large=true``: about 35 times the default run (1.4 million), an hour's work on two
cores with the SimPy engine."""
MEMORY_SHARE = 0.5
"""Share of the machine's memory a run may be estimated to need before it asks for
``run.allow_large=true``; past ``MEMORY_HARD_SHARE`` no setting lets it start."""
MEMORY_HARD_SHARE = 0.9
WORKER_BYTES = 300e6  # a worker process: Python, NumPy, pandas, SimPy (and Numba) loaded
DAILY_ROW_BYTES = 300  # a row of daily.parquet in memory (31 columns, measured: 260-300 bytes)
ARRIVAL_BYTES = 24  # an arrival time and its draws, held for the whole replication
LOG_ROW_BYTES = 200  # a row of the patient log
STAYS_PER_ARRIVAL = 3  # rows of the patient log per arrival, about (acute, waits, onward stays)


@dataclass
class Size:
    """What a command will do: patients simulated, and peak memory (bytes), both estimated."""

    arrivals: float
    memory_bytes: float
    tasks: int
    workers: int
    days: float


def expected_arrivals(config: Config) -> float:
    """Expected arrivals of one replication over ``run.horizon_days`` (from the daily rates and
    their day-of-week and month factors, or the dated rates file), plus people in care at day 0."""
    system, H = config.system, config.run.horizon_days
    total = 0.0
    for arrival in system.arrivals.values():
        if arrival.rate_per_day is not None:
            mean_factor = (sum(arrival.day_of_week) / 7) * (sum(arrival.month) / 12)
            total += arrival.rate_per_day * mean_factor * H
        else:  # the dated rates from start_date, as the run reads them (they cover H)
            total += float(patients.rates_by_day(arrival, system.start_date, math.ceil(H)).sum())
    total += sum(s.start_occupancy + s.start_queue for s in system.services.values())
    return total


def estimate(arms: list[tuple[str, Config]], jobs: int) -> Size:
    """Estimated work and peak memory of running every replication of every arm on ``jobs``
    workers: each worker holds one replication's arrivals and daily sums; the parent holds every
    replication's daily table (and patient log) as they come back."""
    tasks = sum(cfg.run.replications for _, cfg in arms)
    workers = max(1, min(jobs, tasks))
    arrivals = 0.0
    parent = worker = 0.0
    for _, cfg in arms:
        per_rep = expected_arrivals(cfg)
        arrivals += per_rep * cfg.run.replications
        rows = (cfg.run.horizon_days + 1) * (len(cfg.system.services) + 1)
        log_rows = per_rep * STAYS_PER_ARRIVAL if cfg.run.patient_log else 0.0
        one = rows * DAILY_ROW_BYTES + log_rows * LOG_ROW_BYTES
        parent += 2 * one * cfg.run.replications  # the tables, and their concatenation
        worker = max(worker, 3 * one + per_rep * ARRIVAL_BYTES)
    memory = WORKER_BYTES + parent + (workers * (WORKER_BYTES + worker) if jobs > 1 else worker)
    days = max(cfg.run.horizon_days for _, cfg in arms)
    return Size(arrivals, memory, tasks, workers, days)


def machine_memory_bytes() -> float:
    """Physical memory of this machine (infinite where the system does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def check_size(arms: list[tuple[str, Config]], jobs: int, allow_large: bool) -> Size:
    """Refuse, before any work, a command estimated to simulate more than ``MAX_ARRIVALS``
    patients or to need more than ``MEMORY_SHARE`` of this machine's memory, unless
    ``allow_large``; and any command estimated to need more than ``MEMORY_HARD_SHARE`` of it."""
    size = estimate(arms, jobs)
    total = machine_memory_bytes()
    gib = 2**30
    what = (
        f"about {size.arrivals:,.0f} patients ({size.tasks} replications of "
        f"{size.days:,.0f} days) and {size.memory_bytes / gib:,.1f} GiB of memory"
    )
    cfg = arms[0][1]
    rated = {n: a.rate_per_day for n, a in cfg.system.arrivals.items() if a.rate_per_day}
    busiest = max(rated, key=rated.get) if rated else None
    drivers = "run.replications, run.horizon_days" + (
        f" or the arrival rates (busiest: system.arrivals.{busiest}.rate_per_day="
        f"{rated[busiest]:g})"
        if busiest
        else " or the arrival rates"
    )
    if size.memory_bytes > MEMORY_HARD_SHARE * total:
        raise ConfigError(
            f"run: this command would need {what}, more than this machine has "
            f"({total / gib:,.1f} GiB); make {drivers} smaller, or run fewer workers (run.jobs)"
        )
    if allow_large:
        return size
    if size.arrivals > MAX_ARRIVALS or size.memory_bytes > MEMORY_SHARE * total:
        raise ConfigError(
            f"run.allow_large: this command would simulate {what}, over the limits of "
            f"{MAX_ARRIVALS:,} patients and {MEMORY_SHARE:.0%} of this machine's memory "
            f"({MEMORY_SHARE * total / gib:,.1f} GiB). Make {drivers} smaller, or set "
            f"run.allow_large=true to run it anyway"
        )
    return size


@dataclass
class Outcome:
    """Tables from a set of replications, plus any failures (one record each)."""

    runs: pd.DataFrame
    daily: pd.DataFrame
    patients: pd.DataFrame | None
    flows: pd.DataFrame | None = None
    errors: list[dict] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)


def engine(config: Config):
    """The module that runs a replication: ``model`` (SimPy) or ``compiled`` (Numba; imported
    only when asked for, as it loads Numba)."""
    if config.run.engine == "compiled":
        from flowsim import compiled

        return compiled
    return model


def replicate(config: Config, scenario: str, replication: int) -> dict:
    """Run one replication and reduce it to tables; an exception becomes an error record."""
    start = time.perf_counter()
    try:
        ev = engine(config).simulate(
            config.system,
            config.run.seed,
            replication,
            config.run.horizon_days,
            measure=results.measure(config),
        )
        row = {"scenario": scenario, "replication": replication, **results.kpis(ev, config)}
        daily = results.daily(ev, config)
        daily.insert(0, "replication", replication)
        daily.insert(0, "scenario", scenario)
        flows = results.flows(ev, config)
        flows.insert(0, "replication", replication)
        flows.insert(0, "scenario", scenario)
        log_df = None
        if config.run.patient_log:
            log_df = results.patient_log(ev)
            log_df.insert(0, "replication", replication)
            log_df.insert(0, "scenario", scenario)
        return {
            "row": row,
            "daily": daily,
            "flows": flows,
            "patients": log_df,
            "seconds": time.perf_counter() - start,
            "events": ev.tally.counts["records"],
        }
    except Exception as exc:  # kept, reported, never silently dropped
        return {
            "error": {
                "scenario": scenario,
                "replication": replication,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        }


def _logged(stream, total: int, every_s: float = 10.0, quiet_s: float = 60.0):
    """Pass ``stream`` through, logging replications done: at each tenth of the total once
    ``every_s`` seconds have passed since the last line, and at least every ``quiet_s`` seconds.
    A short run logs nothing."""
    start = last = time.perf_counter()
    logged = False
    for k, item in enumerate(stream, start=1):
        now = time.perf_counter()
        milestone = (10 * k) // total > (10 * (k - 1)) // total
        final = k == total and logged
        if (milestone and now - last >= every_s) or now - last >= quiet_s or final:
            left = (now - start) / k * (total - k)
            log.info(
                "replications: %d of %d done (%.0f%%), %.0f s so far, about %.0f s left",
                k, total, 100 * k / total, now - start, left,
            )  # fmt: skip
            last, logged = now, True
        yield item


def run(scenarios: list[tuple[str, Config]], jobs: int = 1, progress: bool = False) -> Outcome:
    """All replications of every (name, config) pair; tables sorted by scenario order and
    replication, so the result is identical whatever the number of workers. ``progress`` shows
    a bar on a terminal, and log lines on a long run whose output goes to a file."""
    tasks = [(name, cfg, r) for name, cfg in scenarios for r in range(cfg.run.replications)]
    if jobs > 1 and len(tasks) > 1:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=min(jobs, len(tasks)), backend="loky", return_as="generator")
        stream = parallel(delayed(replicate)(cfg, name, r) for name, cfg, r in tasks)
    else:
        stream = (replicate(cfg, name, r) for name, cfg, r in tasks)
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        stream = tqdm(stream, total=len(tasks), desc="replications", unit="rep", leave=False)
    elif progress:  # output to a file or a pipe: log lines a person or a scheduler can follow
        stream = _logged(stream, len(tasks))
    done = list(stream)
    order = {name: k for k, (name, _) in enumerate(scenarios)}
    ok = sorted(
        (d for d in done if "error" not in d),
        key=lambda d: (order[d["row"]["scenario"]], d["row"]["replication"]),
    )
    errors = [d["error"] for d in done if "error" in d]
    for e in errors:
        log.error("replication %s of %s failed: %s", e["replication"], e["scenario"], e["error"])
    runs = pd.DataFrame([d["row"] for d in ok])
    spent = [c for c in runs.columns if c.startswith("investment_cost")]
    runs[spent] = runs[spent].fillna(0.0)  # a funder with no investment in a scenario spent 0
    daily = pd.concat([d["daily"] for d in ok], ignore_index=True) if ok else pd.DataFrame()
    flows = pd.concat([d["flows"] for d in ok], ignore_index=True) if ok else None
    logs = [d["patients"] for d in ok if d["patients"] is not None]
    return Outcome(
        runs=runs,
        daily=daily,
        patients=pd.concat(logs, ignore_index=True) if logs else None,
        flows=flows,
        errors=errors,
        seconds=[d["seconds"] for d in ok],
        events=[d["events"] for d in ok],
    )
