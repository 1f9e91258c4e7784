"""Replications, in parallel worker processes, with a progress bar; failures kept as records.

Replication ``r`` of every scenario uses the same random streams (seed, r): common random numbers.
Workers are kept alive across replications (joblib's loky pool), so each pays Numba's start-up once.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field

import pandas as pd

from flowsim import model, results
from flowsim.config import Config

log = logging.getLogger(__name__)


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


def run(scenarios: list[tuple[str, Config]], jobs: int = 1, progress: bool = False) -> Outcome:
    """All replications of every (name, config) pair; tables sorted by scenario order and
    replication, so the result is identical whatever the number of workers."""
    tasks = [(name, cfg, r) for name, cfg in scenarios for r in range(cfg.run.replications)]
    if jobs > 1 and len(tasks) > 1:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=min(jobs, len(tasks)), backend="loky", return_as="generator")
        stream = parallel(delayed(replicate)(cfg, name, r) for name, cfg, r in tasks)
    else:
        stream = (replicate(cfg, name, r) for name, cfg, r in tasks)
    if progress:
        from tqdm import tqdm

        stream = tqdm(stream, total=len(tasks), desc="replications", unit="rep", leave=False)
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
